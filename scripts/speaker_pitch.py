"""Minutes and median pitch of every speaker of a corpus, split by split.

Which voices a model trains on, and which it is tested on, decides much of what it learns to keep. The
corpus of ``scripts/build_corpus.py`` stores its speech as ``pool/speech/<split>/<speaker>/*.wav``:

    python scripts/speaker_pitch.py --data_dir data/corpus [--clips 4] [--seconds 10]

prints a markdown table, one row per speaker: its split, minutes of speech, and the median fundamental
frequency of its voiced frames (``librosa.pyin``, 60-400 Hz) over ``--clips`` clips spread over its files,
the first ``--seconds`` of each. Adult male voices usually lie near 85-155 Hz and adult female voices near
165-255 Hz. The estimate says how low a voice is, not who speaks, so read it as a hint, not a label.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from adaslim_hf.data.audio import audio_info, read_audio

SPLITS = ("train", "valid", "test")
RATE = 16000  # the corpus' rate; files at another rate are resampled on reading


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, required=True, help="the corpus folder (holds pool/speech/)")
    parser.add_argument("--clips", type=int, default=4, help="clips per speaker to estimate pitch on (default: 4)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of each clip to use (default: 10)")
    args = parser.parse_args(argv)
    if args.clips < 1 or args.seconds <= 0:
        parser.error(f"--clips must be >= 1 and --seconds > 0, got {args.clips} and {args.seconds}.")
    return args


def median_pitch(files: list[Path], *, clips: int, seconds: float) -> float:
    """Median F0 in Hz of the voiced frames of up to ``clips`` files spread over ``files`` (NaN: none voiced)."""
    try:
        import librosa  # deferred: importing librosa takes a few seconds
    except ImportError:
        raise ValueError("speaker_pitch.py needs librosa, from the metrics extra: "
                         "pip install -e '.[metrics]'.") from None

    chosen = files[:: max(1, len(files) // clips)][:clips]
    voiced_f0: list[np.ndarray] = []
    for path in chosen:
        audio, _ = read_audio(path, sampling_rate=RATE, downmix=True, stop=int(seconds * RATE))
        if audio.size < 2048:
            continue
        f0, voiced, _ = librosa.pyin(audio, fmin=60, fmax=400, sr=RATE, frame_length=1024)
        voiced_f0.append(f0[voiced])
    values = np.concatenate(voiced_f0) if voiced_f0 else np.empty(0)
    return float(np.median(values)) if values.size else float("nan")


def speaker_rows(data_dir: Path, *, clips: int, seconds: float) -> list[dict]:
    speech = data_dir / "pool" / "speech"
    if not speech.is_dir():
        raise ValueError(f"{data_dir} holds no pool/speech/ folder: expected a corpus built by "
                         f"scripts/build_corpus.py (e.g. data/corpus).")
    rows = []
    for split in SPLITS:
        for speaker in sorted(p for p in (speech / split).glob("*") if p.is_dir()):
            files = sorted(speaker.glob("*.wav"))
            if not files:
                continue
            minutes = sum(audio_info(f).duration for f in files) / 60
            rows.append({"split": split, "speaker": speaker.name, "minutes": minutes,
                         "f0": median_pitch(files, clips=clips, seconds=seconds)})
    if not rows:
        raise ValueError(f"{speech} holds no speaker folders with .wav files.")
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| split | speaker | minutes | median F0 (Hz) |", "|---|---|---:|---:|"]
    lines += [f"| {r['split']} | {r['speaker']} | {r['minutes']:.1f} | {r['f0']:.0f} |" for r in rows]
    for split in SPLITS:
        total = sum(r["minutes"] for r in rows if r["split"] == split)
        low = sum(r["minutes"] for r in rows if r["split"] == split and r["f0"] < 160)
        if total:
            lines.append(f"| {split} | all | {total:.1f} | {low:.1f} min ({100 * low / total:.0f}%) below 160 Hz |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        rows = speaker_rows(args.data_dir, clips=args.clips, seconds=args.seconds)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
