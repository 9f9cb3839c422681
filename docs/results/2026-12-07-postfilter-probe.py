"""Does a spectral post-filter on the model's output close the DNSMOS BAK / OVRL gap to RNNoise? On the corpus'
test clips (spread evenly over the split): the model's output (routed, or a static factor), then the same output
with more suppression where the model already suppressed, in the STFT (512 / 128, Hann) with the model's gain
G = min(|E| / |N|, 1) (E the output, N the noisy input; the output's phase is kept):

- ``pf<beta>``: PercepNet's envelope post-filter (Valin et al. 2020) written on G: G_w = G sin(pi G / 2),
  G_pf = (1 + beta) G / (1 + beta (G / G_w)^2), the output scaled by min(G_pf / G, 1);
- ``exp<a>``: the gain raised to a power, the output scaled by G^(a - 1).

Beside them the noisy input and RNNoise; prints the mean PESQ-WB, SI-SDR and DNSMOS SIG / BAK / OVRL of each.
Run from the repository root:

    OMP_NUM_THREADS=1 python docs/results/2026-12-07-postfilter-probe.py runs/s2-pesq-d/model 40 auto
"""

import sys

import numpy as np
import torch

from adaslim_hf import AdaSlimModel
from adaslim_hf.evaluation import load_test_set, run_model, score_items
from adaslim_hf.peers import run_peer

N_FFT, HOP = 512, 128
KEYS = ("pesq", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")


def spectrum(signal: np.ndarray) -> torch.Tensor:  # [T] -> [F, N] complex
    return torch.stft(torch.from_numpy(signal), N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)


def waveform(values: torch.Tensor, length: int) -> np.ndarray:
    return torch.istft(values, N_FFT, HOP, window=torch.hann_window(N_FFT), length=length).numpy().astype(np.float32)


def post_filtered(enhanced: np.ndarray, noisy: np.ndarray) -> dict[str, np.ndarray]:
    """The output and its post-filtered variants, by name."""
    values = spectrum(enhanced)
    gain = (values.abs() / (spectrum(noisy).abs() + 1e-8)).clamp(0, 1)
    variants = {"model": enhanced}
    for beta in (0.02, 0.05, 0.1):
        warped = gain * torch.sin(np.pi / 2 * gain)
        filtered = ((1 + beta) * gain / (1 + beta * (gain / (warped + 1e-8)) ** 2)).clamp(0, 1)
        variants[f"pf{beta}"] = waveform(values * (filtered / (gain + 1e-8)).clamp(0, 1), len(enhanced))
    for power in (1.5, 2.0):
        variants[f"exp{power}"] = waveform(values * gain ** (power - 1), len(enhanced))
    return variants


def main(model_dir: str, items: int, utilization: str) -> None:
    torch.set_num_threads(1)
    model = AdaSlimModel.from_pretrained(model_dir).eval()
    factor = None if utilization == "auto" else float(utilization)
    scores: dict[str, list[dict]] = {}
    for row in load_test_set("data/corpus-git-v1", split="test", max_items=items):
        noisy = np.asarray(row["noisy"]["array"], np.float32)
        clean = np.asarray(row["clean"]["array"], np.float32)
        variants = post_filtered(run_model(model, noisy, factor)["enhanced"], noisy)
        variants["rnnoise"], variants["noisy"] = run_peer("rnnoise", noisy, 16000)[0], noisy
        names = list(variants)
        for name, entry in zip(names, score_items([variants[n] for n in names], [clean] * len(names), 16000,
                                                  ["pesq", "si_sdr", "dnsmos"])):
            scores.setdefault(name, []).append(entry)
    print(f"{model_dir}, utilization {utilization}, {items} test clips")
    print("| variant | " + " | ".join(KEYS) + " |")
    for name, entries in scores.items():
        print(f"| {name} | " + " | ".join(f"{np.nanmean([e[k] for e in entries]):.3f}" for k in KEYS) + " |")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
