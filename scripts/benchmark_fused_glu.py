"""Training steps with the blocks' fused 1x1 conv + GLU (products.linear_glu) against autograd's
F.glu(linear(...)), both in one process, interleaved round by round (so a drifting load hits both alike).

    OMP_NUM_THREADS=1 python scripts/benchmark_fused_glu.py             # batch 8 x 4 s, 5 rounds, one thread

Per variant: forward + backward CPU seconds (median over the rounds after the first) of a static step at
0.125 and at 1.0 and of the stage-1 step (every factor), and the stage-1 ratio of issue 5,
stage-1 / (1.875 x step at 1.0). No optimizer step (scripts/benchmark_training.py times whole steps).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import torch
import torch.nn.functional as F

from adaslim_hf import AdaSlimConfig, AdaSlimModel, blocks, products
from adaslim_hf.memory import reuse_freed_memory
from adaslim_hf.training import TrainingObjective, backward_terms, freeze_router


def plain_linear_glu(x, weight, bias=None):
    return F.glu(products.linear(x, weight, bias), dim=-1)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the first is a warm-up")
    parser.add_argument("--num_threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    torch.manual_seed(0)
    reuse_freed_memory()
    model = AdaSlimModel(AdaSlimConfig()).train()
    freeze_router(model)
    length = int(args.seconds * model.config.sample_rate)
    noisy, clean = torch.randn(args.batch_size, length) * 0.1, torch.randn(args.batch_size, length) * 0.1
    objectives = {"static 0.125": TrainingObjective(model, "static", 0.125),
                  "static 1": TrainingObjective(model, "static", 1.0), "stage 1": TrainingObjective(model, "1")}
    variants = {"F.glu(linear)": plain_linear_glu, "linear_glu (fused)": products.linear_glu}
    times = {}
    try:
        for round_index in range(args.rounds):
            for variant, function in variants.items():
                blocks.linear_glu = function  # the name the blocks call
                for row, objective in objectives.items():
                    start = time.process_time()
                    backward_terms(objective, objective.terms(), noisy, clean)
                    model.zero_grad(set_to_none=True)
                    if round_index:
                        times.setdefault((variant, row), []).append(time.process_time() - start)
    finally:
        blocks.linear_glu = variants["linear_glu (fused)"]
    print(f"forward + backward, batch {args.batch_size} x {args.seconds:g} s, {args.num_threads} thread(s), "
          f"CPU seconds, median of {args.rounds - 1} rounds")
    print("| variant | " + " | ".join(objectives) + " | stage-1 ratio |")
    print("|---" * (len(objectives) + 2) + "|")
    results = {}
    for variant in variants:
        medians = {row: statistics.median(times[(variant, row)]) for row in objectives}
        ratio = medians["stage 1"] / (1.875 * medians["static 1"])
        results[variant] = {**medians, "ratio": ratio}
        print(f"| {variant} | " + " | ".join(f"{medians[row]:.3f}" for row in objectives) + f" | {ratio:.3f} |")
    return results


if __name__ == "__main__":
    main()
