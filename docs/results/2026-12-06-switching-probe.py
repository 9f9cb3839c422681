"""What switching width costs by itself: two widths alternating with a fixed period, against each static width.

Half the frames at factor a and half at factor b, switching every `period` router frames (16 ms each), on the
validation clips. With no switching cost, any period scores near the mean of the two static scores; the gap below
that mean at period 1 (a switch every frame) and its shrinking as the period grows measure the transient. Run from
the repository root:

    OMP_NUM_THREADS=1 python docs/results/2026-12-06-switching-probe.py runs/s2-t025-a/model 40 0.25 0.5

With "hold" instead of two factors, the router decides and each decision is held for k frames (the decision of
the first frame of every block of k, a causal rule a stream can follow), against static 0.25 and 0.5:

    OMP_NUM_THREADS=1 python docs/results/2026-12-06-switching-probe.py runs/s2-t025-a/model 40 hold
"""

import sys

import numpy as np
import torch

from adaslim_hf import AdaSlimModel
from adaslim_hf.evaluation import load_test_set
from adaslim_hf.metrics import compute_all

PERIODS = (1, 4, 32)
HOLDS = (1, 4, 8, 16, 32)


def alternating_choice(num_frames: int, index_a: int, index_b: int, period: int) -> torch.Tensor:
    """[1, num_frames] factor indices: `period` frames of a, then `period` frames of b, and so on."""
    frame = torch.arange(num_frames)
    return torch.where((frame // period) % 2 == 0, index_a, index_b)[None]


def held(choice: torch.Tensor, hold: int) -> torch.Tensor:
    """[1, frames] choice with every block of `hold` frames taking its first frame's decision (-1 padding kept)."""
    frame = torch.arange(choice.shape[1])
    return torch.where(choice >= 0, choice[:, (frame // hold) * hold], choice)


def score(outputs: dict, cleans: list, utilizations: dict | None = None) -> dict:
    scores = {}
    for name, enhanced in outputs.items():
        enhanced = [np.clip(e.reshape(-1)[: len(c)], -1, 1) for e, c in zip(enhanced, cleans, strict=True)]
        scores[name] = compute_all(enhanced, cleans, metrics=("pesq", "si_sdr"))
        mean_u = "" if not utilizations or name not in utilizations else f" u {np.mean(utilizations[name]):.3f}"
        print(f"{name:22s}{mean_u} pesq {scores[name]['pesq']:.3f} si_sdr {scores[name]['si_sdr']:.2f}", flush=True)
    return scores


def main_hold(model_dir: str, max_items: int) -> None:
    torch.set_num_threads(1)
    model = AdaSlimModel.from_pretrained(model_dir).eval()
    data = load_test_set("data/corpus-git-v1", "corpus", split="validation", max_items=max_items)
    outputs: dict[str, list[np.ndarray]] = {}
    utilizations: dict[str, list[float]] = {}
    cleans = []
    for row in data:
        noisy = torch.from_numpy(np.asarray(row["noisy"]["array"], dtype=np.float32))[None]
        cleans.append(np.asarray(row["clean"]["array"], dtype=np.float32))
        with torch.no_grad():
            choice = model(noisy).choice
            settings = {"static 0.25": 0.25, "static 0.5": 0.5}
            settings |= {f"router, hold {k}": held(choice, k) for k in HOLDS}
            for name, utilization in settings.items():
                out = model(noisy, utilization=utilization)
                outputs.setdefault(name, []).append(out.enhanced_values[0].numpy())
                utilizations.setdefault(name, []).append(float(out.mean_utilization[0]))
    score(outputs, cleans, utilizations)


def main(model_dir: str, max_items: int, factor_a: float, factor_b: float) -> None:
    torch.set_num_threads(1)
    model = AdaSlimModel.from_pretrained(model_dir).eval()
    index_a, index_b = model.config.factor_index(factor_a), model.config.factor_index(factor_b)
    data = load_test_set("data/corpus-git-v1", "corpus", split="validation", max_items=max_items)
    outputs: dict[str, list[np.ndarray]] = {}
    cleans = []
    for row in data:
        noisy = torch.from_numpy(np.asarray(row["noisy"]["array"], dtype=np.float32))[None]
        cleans.append(np.asarray(row["clean"]["array"], dtype=np.float32))
        with torch.no_grad():
            num_frames = model(noisy, utilization=factor_a).choice.shape[1]
            settings = {f"static {factor_a}": factor_a, f"static {factor_b}": factor_b}
            for period in PERIODS:
                settings[f"alternate every {period}"] = alternating_choice(num_frames, index_a, index_b, period)
            for name, utilization in settings.items():
                enhanced = model(noisy, utilization=utilization).enhanced_values[0].numpy()
                outputs.setdefault(name, []).append(enhanced)
    outputs["noisy"] = [np.asarray(row["noisy"]["array"], dtype=np.float32) for row in data]
    scores = score(outputs, cleans)
    for metric in ("pesq", "si_sdr"):
        mean = (scores[f"static {factor_a}"][metric] + scores[f"static {factor_b}"][metric]) / 2
        gaps = ", ".join(f"every {p}: {scores[f'alternate every {p}'][metric] - mean:+.3f}" for p in PERIODS)
        print(f"{metric}: mean of the two static widths {mean:.3f}; alternating minus that mean: {gaps}")


if __name__ == "__main__":
    if sys.argv[3] == "hold":
        main_hold(sys.argv[1], int(sys.argv[2]))
    else:
        main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
