"""How much of the speech's spectrum does a model keep? On N clips of the git test split (spread over the split), each
model at one utilization (a factor, or ``auto``: the router), per band (0-1, 1-2, 2-4, 4-8 kHz), whole-clip spectra:

- ``clean in``: the clean speech itself fed as the input. ``energy`` = sum |Y|^2 / sum |S|^2 (1 = the band's level
  kept, 0.1 = 10 dB down) and ``kept`` = Re <Y, S> / <S, S> (the share of the speech kept in phase);
- ``noisy in``: the mixture fed as the input, ``kept`` on the clean speech as above (noise left in does not raise it).

Also the lag of the output's cross-correlation peak with the clean speech (noisy in, samples, parabolic
interpolation), to rule out a misalignment behind a low ``kept``. Run from the repository root:

    OMP_NUM_THREADS=1 python docs/results/2026-12-07-band-keep-probe.py 1.0 20 runs/s1-slim-t2/model runs/s2-sup01-i/model
"""

import sys

import numpy as np
import torch

from adaslim_hf import AdaSlimModel
from adaslim_hf.evaluation import load_test_set, run_model

BANDS = ((0, 1000), (1000, 2000), (2000, 4000), (4000, 8000))
RATE = 16000


def band_ratios(output: np.ndarray, clean: np.ndarray) -> tuple[list[float], list[float]]:
    """(energy, kept) per band of BANDS, whole-clip spectra."""
    spectrum, reference = np.fft.rfft(output), np.fft.rfft(clean)
    frequencies = np.fft.rfftfreq(len(clean), 1 / RATE)
    energy, kept = [], []
    for low, high in BANDS:
        band = (frequencies >= low) & (frequencies < high)
        power = np.sum(np.abs(reference[band]) ** 2)
        energy.append(float(np.sum(np.abs(spectrum[band]) ** 2) / power))
        kept.append(float(np.real(np.sum(spectrum[band] * np.conj(reference[band]))) / power))
    return energy, kept


def peak_lag(output: np.ndarray, clean: np.ndarray, reach: int = 20) -> float:
    """The lag (samples, output after clean > 0) of the cross-correlation peak within +-reach."""
    size = 1 << (2 * len(clean)).bit_length()
    correlation = np.fft.irfft(np.fft.rfft(output, size) * np.conj(np.fft.rfft(clean, size)), size)
    window = np.concatenate([correlation[-reach:], correlation[: reach + 1]])
    peak = int(np.clip(np.argmax(window), 1, 2 * reach - 1))
    before, at, after = window[peak - 1], window[peak], window[peak + 1]
    curvature = before - 2 * at + after
    return peak - reach + (0.5 * (before - after) / curvature if curvature else 0.0)


def main(utilization: float | None, items: int, model_dirs: list[str]) -> None:
    torch.set_num_threads(1)
    rows = list(load_test_set("data/corpus-git-v1", split="test", max_items=items))
    print(f"{len(rows)} test clips, utilization {'auto (the router)' if utilization is None else utilization}; bands {', '.join(f'{a}-{b}' for a, b in BANDS)} Hz")
    print("| model | clean in: energy | clean in: kept | noisy in: kept | lag (samples) |")
    print("|---|---|---|---|---:|")
    for model_dir in model_dirs:
        model = AdaSlimModel.from_pretrained(model_dir).eval()
        clean_energy, clean_kept, noisy_kept, lags = [], [], [], []
        for row in rows:
            noisy = np.asarray(row["noisy"]["array"], np.float32)
            clean = np.asarray(row["clean"]["array"], np.float32)
            energy, kept = band_ratios(run_model(model, clean, utilization)["enhanced"], clean)
            clean_energy.append(energy)
            clean_kept.append(kept)
            enhanced = run_model(model, noisy, utilization)["enhanced"]
            noisy_kept.append(band_ratios(enhanced, clean)[1])
            lags.append(peak_lag(enhanced, clean))

        def cells(values):
            return " / ".join(f"{value:.2f}" for value in np.mean(values, axis=0))

        print(f"| {model_dir} | {cells(clean_energy)} | {cells(clean_kept)} | {cells(noisy_kept)} | "
              f"{np.mean(lags):+.3f} |")


if __name__ == "__main__":
    main(None if sys.argv[1] == "auto" else float(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
