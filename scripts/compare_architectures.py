#!/usr/bin/env python
"""Quality against wall time of several architectures evaluated on the same clips (issue 27's Pareto table):
the paper's architecture beside the options of the config (for example ``slim_bottleneck``).

    python scripts/compare_architectures.py \\
        --architecture "paper=runs/eval-paper/evaluation.json,runs/bench-paper.json" \\
        --architecture "slim bottleneck=runs/eval-slim/evaluation.json,runs/bench-slim.json" \\
        --output_dir docs/results/pareto-wall-time

Each architecture is its evaluation.json (scripts/evaluate.py, the same test set and --max_items for all) and
the JSON of scripts/benchmark.py run on the same model (the same --threads and --seconds for all; time them
one after the other on a quiet machine). Better, time a config option and the model without it in one
round-robin (`benchmark.py --slimming-bounds`) and name the option after that JSON: its rows are read.

    python scripts/compare_architectures.py --architecture "paper=runs/eval-paper/evaluation.json,runs/bench.json" \\
        --architecture "slim bottleneck=runs/eval-slim/evaluation.json,runs/bench.json,slim_bottleneck" ...

Writes architectures.json, architectures.md and pareto_wall_time.png.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

# This folder holds evaluate.py, named like the `evaluate` package: keep it off the import path
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from adaslim_hf.compare import ComparisonError, architectures, load_report, write_architectures


def architecture(text: str) -> tuple[str, str, str, str | None]:
    """LABEL=evaluation.json,benchmark.json[,option] -> (label, evaluation, benchmark, option or None)."""
    label, separator, fields = text.partition("=")
    parts = fields.split(",")
    if not separator or not label or len(parts) not in (2, 3) or not all(parts):
        raise argparse.ArgumentTypeError(f"expected LABEL=evaluation.json,benchmark.json[,option], got {text!r}")
    evaluation, benchmark, option = (*parts, None)[:3]
    return label, evaluation, benchmark, option


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architecture", type=architecture, action="append", required=True,
                        metavar="LABEL=EVALUATION_JSON,BENCHMARK_JSON[,OPTION]",
                        help="one architecture (repeat); OPTION (e.g. slim_bottleneck) reads the benchmark's rows for "
                        "that config option (benchmark.py --slimming-bounds)")
    parser.add_argument("--metric", default="pesq", help="the quality axis (default pesq, wide-band)")
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def load_benchmark(path: str) -> dict:
    try:
        benchmark = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ComparisonError(f"no benchmark JSON at {path} (expected scripts/benchmark.py --json)") from None
    except json.JSONDecodeError as error:
        raise ComparisonError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(benchmark, dict) or "rows" not in benchmark or "seconds_of_audio" not in benchmark:
        raise ComparisonError(f"{path} is not a JSON of scripts/benchmark.py (no 'rows'/'seconds_of_audio')")
    return benchmark


def main(args: argparse.Namespace) -> dict:
    try:
        entries = [(label, load_report(evaluation), load_benchmark(benchmark), option)
                   for label, evaluation, benchmark, option in args.architecture]
        comparison = architectures(entries, metric=args.metric)
    except ComparisonError as error:
        raise SystemExit(f"error: {error}") from None
    comparison["command"] = "python scripts/compare_architectures.py " + shlex.join(args.argv)
    paths = write_architectures(comparison, args.output_dir)
    print(paths["md"].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return comparison


if __name__ == "__main__":
    main(parse_args())
