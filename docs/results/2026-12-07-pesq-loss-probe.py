"""Does L_PESQ (``adaslim_hf.losses.pesq_loss``, torch-pesq's differentiable P.862 disturbances) rank clips as the
real PESQ-WB does? On the corpus' test mixtures: the noisy input against its clean reference, and with a model the
enhanced output too; prints each pair, the rank correlation (Spearman) and the share of clips where the loss
saturates (both disturbances at P.862's clamp of 45: no gradient). Run from the repository root:

    OMP_NUM_THREADS=1 python docs/results/2026-12-07-pesq-loss-probe.py data/corpus-git-v1 30
    OMP_NUM_THREADS=1 python docs/results/2026-12-07-pesq-loss-probe.py data/corpus-git-v1 30 runs/s1-slim-t2/model 1.0
"""

import sys

import numpy as np
import torch

from adaslim_hf import AdaSlimModel
from adaslim_hf.evaluation import load_test_set
from adaslim_hf.losses import pesq_loss
from adaslim_hf.metrics import compute_all

SATURATED = 0.1 * 45 + 0.0309 * 45  # both disturbances clamped


def ranks(values: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(values))


def main(data_dir: str, items: int, model_path: str | None = None, factor: float | None = None) -> None:
    torch.set_num_threads(1)
    data = load_test_set(data_dir, split="test", max_items=items)
    model = AdaSlimModel.from_pretrained(model_path).eval() if model_path else None
    pairs = {"noisy": [], "enhanced": []}
    for row in data:
        clean = torch.tensor(row["clean"]["array"], dtype=torch.float32)[None]
        noisy = torch.tensor(row["noisy"]["array"], dtype=torch.float32)[None]
        signals = {"noisy": noisy}
        if model is not None:
            with torch.no_grad():
                signals["enhanced"] = model(noisy, utilization=factor).enhanced_values
        for name, signal in signals.items():
            reference = compute_all(signal[0].numpy(), clean[0].numpy(), 16000, metrics=("pesq",))["pesq"]
            pairs[name].append((reference, float(pesq_loss(signal, clean, 16000))))
    for name, values in pairs.items():
        if not values:
            continue
        table = np.array(values)
        rho = np.corrcoef(ranks(table[:, 0]), ranks(table[:, 1]))[0, 1]
        print(f"{name}: {len(table)} clips, PESQ-WB {table[:, 0].mean():.3f}, L_PESQ {table[:, 1].mean():.3f}, "
              f"Spearman {rho:.3f}, saturated {np.mean(table[:, 1] >= SATURATED - 1e-3):.0%}")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(arguments[0], int(arguments[1]), *(arguments[2:3] or [None]),
         *([float(arguments[3])] if len(arguments) > 3 else []))
