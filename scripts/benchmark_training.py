"""Stage-1 training step time against its budget: sum of the factors x the step of the 1.0 backbone alone.

A stage-1 step computes L_SE at every factor with sliced weights (adaslim_hf.training.slimmable_loss), so
its cost should follow the MACs: about (0.125 + 0.25 + 0.5 + 1.0) = 1.875 backbones. This script times,
in one run and interleaved round-robin (so drifting load on a shared machine hits every row alike):

  - the stage-1 step (forward at every factor, backward, Adam step),
  - a training step at each single factor (the 1.0 row is the reference),
  - the stage-2 step (masked path with the router), for scale,

and prints a markdown table with the ratio  stage-1 / (sum of factors x step at 1.0)  (target <= 1.2).

    python scripts/benchmark_training.py                      # the paper's backbone, batch 4 x 2 s
    python scripts/benchmark_training.py --batch_size 16 --seconds 4.5 --json runs/benchmark_training.json
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

# scripts/ holds evaluate.py, named like the `evaluate` library: keep this folder off the import path
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import torch

from adaslim_hf import AdaSlimConfig, AdaSlimModel
from adaslim_hf.training import TrainingObjective, backward_terms, freeze_router


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="*", default=[], metavar="KEY=VALUE",
                        help="AdaSlimConfig fields (default: the paper's backbone)")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0, help="segment length in seconds")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args(argv)


def _config(pairs) -> AdaSlimConfig:
    import yaml

    values = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        values[key] = yaml.safe_load(value)
    return AdaSlimConfig(**values)


def make_step(objective: TrainingObjective, optimizer, noisy, clean):
    """One optimizer step exactly as the training loop takes it: forward + backward per term, then Adam."""
    terms = objective.terms()

    def step():
        backward_terms(objective, terms, noisy, clean)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main(args) -> dict:
    torch.set_num_threads(args.num_threads)
    torch.manual_seed(0)
    config = _config(args.model)
    length = int(args.seconds * config.sample_rate)
    generator = torch.Generator().manual_seed(0)
    clean = 0.1 * torch.randn(args.batch_size, length, generator=generator)
    noisy = clean + 0.05 * torch.randn(args.batch_size, length, generator=generator)

    steps = {}
    # stage 1 and the single factors share one model (router frozen, as stage 1 trains it)
    backbone = AdaSlimModel(config).train()
    freeze_router(backbone)
    optimizer = torch.optim.Adam([p for p in backbone.parameters() if p.requires_grad], lr=1e-6)
    steps["stage 1 (all factors)"] = make_step(TrainingObjective(backbone, "1"), optimizer, noisy, clean)
    for factor in config.utilization_factors:
        objective = TrainingObjective(backbone, "static", static_utilization=factor)
        steps[f"static {factor:g}"] = make_step(objective, optimizer, noisy, clean)
    routed = AdaSlimModel(config).train()
    steps["stage 2 (router, masked)"] = make_step(TrainingObjective(routed, "2"),
                                                 torch.optim.Adam(routed.parameters(), lr=1e-6), noisy, clean)

    times = {name: [] for name in steps}
    for round_index in range(args.warmup + args.repeats):
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            if round_index >= args.warmup:
                times[name].append(time.perf_counter() - started)
    median = {name: statistics.median(values) for name, values in times.items()}
    reference = median["static 1"]
    factor_sum = sum(config.utilization_factors)
    ratio = median["stage 1 (all factors)"] / (factor_sum * reference)

    print(f"Training step times, batch {args.batch_size} x {args.seconds:g} s, hidden={config.hidden}, "
          f"depth={config.depth}, {args.num_threads} threads, median of {args.repeats}\n")
    print("| step | seconds | / step at 1.0 | budget (MACs) |")
    print("|---|---|---|---|")
    for name, seconds in median.items():
        if name.startswith("static"):
            budget = f"{float(name.split()[1]):g}"
        elif name.startswith("stage 1"):
            budget = f"{factor_sum:g}"
        else:
            budget = "1 (masked: full width)"
        print(f"| {name} | {seconds:.3f} | {seconds / reference:.2f} | {budget} |")
    print(f"\nstage-1 step / ({factor_sum:g} x step at 1.0) = {ratio:.2f} (target <= 1.2: "
          f"{'met' if ratio <= 1.2 else 'missed'})")
    result = {"batch_size": args.batch_size, "seconds": args.seconds, "num_threads": args.num_threads,
              "config": {"hidden": config.hidden, "depth": config.depth,
                         "utilization_factors": config.utilization_factors},
              "median_seconds": median, "all_seconds": times, "factor_sum": factor_sum,
              "stage1_ratio": ratio, "target": 1.2}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(parse_args())
