#!/usr/bin/env python
"""Where an enhancer leaves noise and where it distorts speech: pauses and speech frames scored apart.

PESQ weighs residual noise in speech pauses heavily, SI-SDR over a whole clip mixes both errors. This splits
each test clip into frames by the clean speech's energy (20 ms, relative to the clip's loudest frame) and
reports, per setting, mean over the clips:

- ``pause_attenuation_db``: 10 log10(noisy energy / output energy) over the *pause* frames (clean energy at
  least ``--pause_db`` below the loudest frame, 40 dB by default). The clean speech is all but absent there,
  so this is how far the noise is pushed down where nothing should be heard (0 dB for the noisy input).
- ``speech_si_sdr_db``: SI-SDR over the *speech* frames only (clean energy within ``--speech_db`` of the
  loudest frame, 20 dB by default), the samples of those frames joined: how much the speech is distorted
  where it is present.
- ``speech_gain``: <output, clean> / <clean, clean> over the speech frames (about 1 for the noisy input, below 1
  when the output is quieter than the speech).
- the shares of pause and speech frames.

    python scripts/residual_breakdown.py --model adaslim_hf/pretrained/adaslim-demucs --data_dir data/corpus \\
        --max_items 100 --rnnoise

Each ``--model`` runs at ``--utilization`` ("auto": its router or its default width; or a factor). Prints a
markdown table and, with ``--output``, writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

MEASURES = ("pause_attenuation_db", "speech_si_sdr_db", "speech_gain", "pause_share", "speech_share")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="*", default=[], help="save_pretrained folders or Hub ids")
    parser.add_argument("--utilization", default="auto", help='"auto" or a utilization factor (default: auto)')
    parser.add_argument("--data_dir", default="data/corpus")
    parser.add_argument("--dataset", default="corpus", choices=["corpus", "voicebank"])
    parser.add_argument("--split", default="test")
    parser.add_argument("--max_items", type=int, default=100, help="clips, spread evenly over the split")
    parser.add_argument("--rnnoise", action="store_true", help="also score RNNoise (pyrnnoise) on the same clips")
    parser.add_argument("--frame_ms", type=float, default=20.0, help="frame length (default: %(default)s ms)")
    parser.add_argument("--pause_db", type=float, default=40.0,
                        help="a pause frame lies at least this far below the clip's loudest clean frame")
    parser.add_argument("--speech_db", type=float, default=20.0,
                        help="a speech frame lies within this much of the clip's loudest clean frame")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None, help="write the table's numbers to this JSON file")
    return parser.parse_args(argv)


def frame_classes(clean: np.ndarray, frame: int, pause_db: float, speech_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks ``(pause, speech)`` over the ``len(clean) // frame`` whole frames of a clip.

    A frame's energy is compared with the clip's loudest frame: ``pause`` below -pause_db, ``speech`` above
    -speech_db (frames between are in neither)."""
    if frame < 1:
        raise ValueError(f"frame must be at least one sample, got {frame}.")
    count = len(clean) // frame
    if count == 0:
        raise ValueError(f"the clip has {len(clean)} samples, fewer than one frame of {frame}.")
    energy = (clean[: count * frame].astype(np.float64).reshape(count, frame) ** 2).sum(-1)  # [frames]
    peak = energy.max()
    if peak <= 0:
        raise ValueError("the clean clip is silent: no frame can be called speech.")
    relative = energy / peak
    return relative < 10 ** (-pause_db / 10), relative > 10 ** (-speech_db / 10)


def _frames(signal: np.ndarray, frame: int, mask: np.ndarray) -> np.ndarray:
    """The samples of the frames in ``mask``, joined: [mask.sum() * frame]."""
    count = len(mask)
    return signal[: count * frame].astype(np.float64).reshape(count, frame)[mask].reshape(-1)


def residual_measures(enhanced: np.ndarray, noisy: np.ndarray, clean: np.ndarray, frame: int,
                      pause_db: float = 40.0, speech_db: float = 20.0, eps: float = 1e-12) -> dict:
    """The measures of the module docstring for one clip (1-D arrays of one length); pause_attenuation_db is
    None when the clip has no pause frame."""
    if not (len(enhanced) == len(noisy) == len(clean)):
        raise ValueError(f"enhanced, noisy and clean must have one length, got {len(enhanced)}, {len(noisy)}, "
                         f"{len(clean)}.")
    pause, speech = frame_classes(clean, frame, pause_db, speech_db)
    result = {"pause_share": float(pause.mean()), "speech_share": float(speech.mean()),
              "pause_attenuation_db": None}
    if pause.any():
        noisy_energy = (_frames(noisy, frame, pause) ** 2).sum()
        output_energy = (_frames(enhanced, frame, pause) ** 2).sum()
        result["pause_attenuation_db"] = float(10 * np.log10((noisy_energy + eps) / (output_energy + eps)))
    target = _frames(clean, frame, speech)
    estimate = _frames(enhanced, frame, speech)
    gain = float((estimate @ target) / max(target @ target, eps))
    projection = gain * target
    error = estimate - projection
    result["speech_gain"] = gain
    result["speech_si_sdr_db"] = float(10 * np.log10((projection @ projection + eps) / (error @ error + eps)))
    return result


def mean_measures(per_clip: list[dict]) -> dict:
    """Mean of each measure over the clips that have it."""
    means = {}
    for key in MEASURES:
        values = [clip[key] for clip in per_clip if clip.get(key) is not None]
        means[key] = float(np.mean(values)) if values else None
    means["clips"] = len(per_clip)
    return means


def format_table(report: dict) -> str:
    header = "| setting | pause attenuation (dB) | speech-frame SI-SDR (dB) | speech gain | pause / speech frames |"
    lines = [header, "|---|---:|---:|---:|---:|"]
    for name, m in report.items():
        pause = "-" if m["pause_attenuation_db"] is None else f"{m['pause_attenuation_db']:.2f}"
        lines.append(f"| {name} | {pause} | {m['speech_si_sdr_db']:.2f} | {m['speech_gain']:.3f} | "
                     f"{100 * m['pause_share']:.0f}% / {100 * m['speech_share']:.0f}% |")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> dict:
    import torch

    from adaslim_hf import AdaSlimModel
    from adaslim_hf.configuration_adaslim import parse_utilization
    from adaslim_hf.evaluation import load_test_set, rnnoise_enhance, run_model

    if not args.model and not args.rnnoise:
        raise SystemExit("error: nothing to score: pass --model (one or more) and/or --rnnoise.")
    try:  # None ("auto"): the router, or the width a static model records (config.default_utilization)
        utilization = parse_utilization(args.utilization, what="--utilization")
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    torch.set_num_threads(args.threads)
    models = {name: AdaSlimModel.from_pretrained(name).eval() for name in args.model}
    sample_rate = next(iter(models.values())).config.sampling_rate if models else 16000
    data = load_test_set(args.data_dir, args.dataset, split=args.split, max_items=args.max_items,
                         sample_rate=sample_rate)
    frame = round(args.frame_ms * sample_rate / 1000)
    per_clip: dict[str, list[dict]] = {"noisy": []}
    per_clip.update({name: [] for name in models})
    if args.rnnoise:
        per_clip["rnnoise"] = []
    with torch.inference_mode():
        for row in data:
            noisy = np.asarray(row["noisy"]["array"], dtype=np.float32)
            clean = np.asarray(row["clean"]["array"], dtype=np.float32)
            outputs = {"noisy": noisy}
            for name, model in models.items():
                outputs[name] = run_model(model, noisy, utilization)["enhanced"]
            if args.rnnoise:
                outputs["rnnoise"] = rnnoise_enhance(noisy, sample_rate)
            for name, enhanced in outputs.items():
                per_clip[name].append(residual_measures(enhanced, noisy, clean, frame, args.pause_db, args.speech_db))
    report = {name: mean_measures(clips) for name, clips in per_clip.items()}
    print(f"{len(data)} {args.split} clips of {args.data_dir}, {args.frame_ms:g} ms frames, pauses below "
          f"-{args.pause_db:g} dB and speech above -{args.speech_db:g} dB of each clip's loudest frame, "
          f"models at utilization {args.utilization}")
    print(format_table(report))
    if args.output is not None:
        from adaslim_hf.atomic import write_json

        write_json(args.output, report)
    return report


if __name__ == "__main__":
    main(parse_args())
