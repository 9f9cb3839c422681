"""Training step times: float32 against bfloat16, stage 1 against its budget, threads and processes.

A stage-1 step computes L_SE at every factor with sliced weights (adaslim_hf.training.slimmable_loss), so
its cost should follow the MACs: about (0.125 + 0.25 + 0.5 + 1.0) = 1.875 backbones. This script times,
in one run and interleaved round-robin (so drifting load on a shared machine hits every row alike), for
each precision asked for (``--precision fp32 bf16``; bf16 is ``torch.autocast("cpu", torch.bfloat16)``, as
accelerate's ``mixed_precision="bf16"`` runs it):

  - the stage-1 step (forward at every factor, backward, Adam step), and with the widest factor and k narrower
    ones drawn per step (``narrow_factors_per_step``; rows "stage 1, k narrow"),
  - a training step at each single factor (the 1.0 row is the reference),
  - the stage-2 step (masked path with the router),

and prints a markdown table with each row's bf16 speed-up over float32, and the ratio
stage-1 / (sum of factors x step at 1.0) in wall and CPU time (time.process_time).

``--processes P`` runs P copies of the whole measurement at once (each with ``--num_threads``) and reports
the steps per second of all of them together: one process of two threads against two processes of one
thread (two data-parallel training processes) on this 2-core machine.

    python scripts/benchmark_training.py --num_threads 1 --batch_size 8 --seconds 4     # corpus_cpu.yaml's batch
    python scripts/benchmark_training.py --num_threads 2 --batch_size 8 --seconds 4 --json runs/bt.json
    python scripts/benchmark_training.py --num_threads 1 --processes 2 --batch_size 8 --seconds 4

Measured figures and their commands are in docs/training.md ("Training throughput").
"""

import argparse
import contextlib
import json
import multiprocessing
import resource
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
from adaslim_hf.memory import reuse_freed_memory
from adaslim_hf.training import TrainingObjective, backward_terms, freeze_router


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="*", default=[], metavar="KEY=VALUE",
                        help="AdaSlimConfig fields (default: the paper's backbone)")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0, help="segment length in seconds")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--processes", type=int, default=1,
                        help="copies of the measurement run at once (data-parallel processes); default 1")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS,
                        help="precisions to time side by side (default: fp32 bf16)")
    parser.add_argument("--rows", nargs="+", default=None,
                        help="time only these rows (e.g. 'stage 1' 'static 1'); default: all")
    parser.add_argument("--system_allocator", action="store_true",
                        help="leave glibc's malloc as it is (default: keep freed memory, as scripts/train.py does)")
    parser.add_argument("--torch_compile", action="store_true",
                        help="compile the backbone (stage 1 and static rows) with torch.compile (inductor) first; "
                             "the warm-up rounds then include the compilation; stage 2 stays eager")
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args(argv)


PRECISIONS = ("fp32", "bf16")


def _config(pairs) -> AdaSlimConfig:
    import yaml

    values = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        values[key] = yaml.safe_load(value)
    return AdaSlimConfig(**values)


def precision_context(precision: str):
    """The autocast region a training step runs in: bf16 as accelerate's mixed_precision="bf16" on CPU."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_step(objective: TrainingObjective, optimizer, noisy, clean, precision: str = "fp32"):
    """One optimizer step exactly as the training loop takes it: forward + backward per term (the narrow
    factors drawn anew each step with ``narrow_per_step``), then Adam."""
    draws = torch.Generator().manual_seed(0)

    def step():
        with precision_context(precision):
            backward_terms(objective, objective.terms(draws), noisy, clean)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _rows(args, config) -> dict:
    """name -> step function, for every row and precision asked for."""
    length = int(args.seconds * config.sample_rate)
    generator = torch.Generator().manual_seed(0)
    clean = 0.1 * torch.randn(args.batch_size, length, generator=generator)
    noisy = clean + 0.05 * torch.randn(args.batch_size, length, generator=generator)
    # stage 1 and the single factors share one model (router frozen, as stage 1 trains it)
    backbone = AdaSlimModel(config).train()
    freeze_router(backbone)
    if args.torch_compile:
        backbone.compile()
    optimizer = torch.optim.Adam([p for p in backbone.parameters() if p.requires_grad], lr=1e-6)
    routed = AdaSlimModel(config).train()
    routed_optimizer = torch.optim.Adam(routed.parameters(), lr=1e-6)
    objectives = {"stage 1": (TrainingObjective(backbone, "1"), optimizer)}
    for narrow in range(1, len(config.utilization_factors) - 1):  # the widest and this many narrow factors a step
        objectives[f"stage 1, {narrow} narrow"] = (TrainingObjective(backbone, "1", narrow_per_step=narrow), optimizer)
    for factor in config.utilization_factors:
        objectives[f"static {factor:g}"] = (TrainingObjective(backbone, "static", static_utilization=factor), optimizer)
    objectives["stage 2"] = (TrainingObjective(routed, "2"), routed_optimizer)
    steps = {}
    for name, (objective, step_optimizer) in objectives.items():
        if args.rows and name not in args.rows:
            continue
        for precision in args.precision:
            steps[f"{name} {precision}"] = make_step(objective, step_optimizer, noisy, clean, precision)
    return steps


def measure(args) -> dict:
    """Time every row round-robin in this process: -> {"wall": {row: [s...]}, "cpu": ..., "faults": ...}."""
    torch.set_num_threads(args.num_threads)
    torch.manual_seed(0)
    reused = False if args.system_allocator else reuse_freed_memory()  # the training loop's default
    steps = _rows(args, _config(args.model))
    times = {name: [] for name in steps}
    cpu_times = {name: [] for name in steps}
    faults = {name: [] for name in steps}
    for round_index in range(args.warmup + args.repeats):
        for name, step in steps.items():
            faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            started, cpu_started = time.perf_counter(), time.process_time()
            step()
            if round_index >= args.warmup:
                times[name].append(time.perf_counter() - started)
                cpu_times[name].append(time.process_time() - cpu_started)
                faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before)
    return {"wall": times, "cpu": cpu_times, "faults": faults, "reuse_freed_memory": reused}


def main(args) -> dict:
    config = _config(args.model)
    if args.processes > 1:
        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            runs = pool.map(measure, [args] * args.processes)
    else:
        runs = [measure(args)]
    rows = list(runs[0]["wall"])
    # all processes' rounds together: a row's median step, and the steps per second of all processes at once
    median = {row: statistics.median([t for run in runs for t in run["wall"][row]]) for row in rows}
    cpu_median = {row: statistics.median([t for run in runs for t in run["cpu"][row]]) for row in rows}
    throughput = {row: sum(1 / statistics.median(run["wall"][row]) for run in runs) for row in rows}
    factor_sum = sum(config.utilization_factors)

    print(f"Training step times, batch {args.batch_size} x {args.seconds:g} s, hidden={config.hidden}, "
          f"depth={config.depth}, {args.processes} process(es) x {args.num_threads} thread(s), median of "
          f"{args.repeats} rounds per process, freed memory "
          f"{'kept for reuse' if runs[0]['reuse_freed_memory'] else 'returned to the system'}"
          f"{', backbone compiled (torch.compile)' if args.torch_compile else ''}\n")
    print("| step | precision | seconds | CPU seconds | steps/s (all processes) | fp32 / this (wall) | page faults |")
    print("|---|---|---|---|---|---|---|")
    speedups = {}
    for row in rows:
        name, precision = row.rsplit(" ", 1)
        reference = f"{name} fp32"
        speedup = median[reference] / median[row] if reference in median else None
        if precision != "fp32" and speedup is not None:
            speedups[row] = speedup
        faults = statistics.median([f for run in runs for f in run["faults"][row]])
        print(f"| {name} | {precision} | {median[row]:.3f} | {cpu_median[row]:.3f} | {throughput[row]:.3f} | "
              f"{'-' if speedup is None else f'{speedup:.2f}'} | {faults:,.0f} |")
    print()
    stage1_ratios = {}
    for precision in args.precision:
        stage1, full = f"stage 1 {precision}", f"static 1 {precision}"
        if stage1 in median and full in median:
            stage1_ratios[precision] = median[stage1] / (factor_sum * median[full])
            print(f"{precision}: stage-1 step / ({factor_sum:g} x step at 1.0) = {stage1_ratios[precision]:.2f} (wall)")
    for row, speedup in speedups.items():
        print(f"{row}: {speedup:.2f}x the float32 step (target >= 1.7 for stage 1 and static rows)")
    result = {"batch_size": args.batch_size, "seconds": args.seconds, "num_threads": args.num_threads,
              "processes": args.processes, "precision": args.precision,
              "config": {"hidden": config.hidden, "depth": config.depth,
                         "utilization_factors": config.utilization_factors},
              "torch_compile": args.torch_compile, "median_seconds": median, "median_cpu_seconds": cpu_median,
              "steps_per_second": throughput, "speedup_over_fp32": speedups, "stage1_ratio": stage1_ratios,
              "runs": runs, "factor_sum": factor_sum}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(parse_args())
