#!/usr/bin/env python
"""Compare models evaluated on the same clips: the static curve of a slimmable backbone against the dynamic
points of routed models (the paper's Pareto claim), and every dynamic point against RNNoise and the noisy input.

    python scripts/compare_models.py --static stage1=runs/eval-stage1/evaluation.json \\
        --dynamic "target 0.25=runs/eval-t0.25/evaluation.json" \\
        --dynamic "target 0.1=runs/eval-t0.1/evaluation.json" --output_dir runs/compare

Each evaluation.json comes from scripts/evaluate.py (the same --dataset, --data_dir and --max_items for every
model). Writes comparison.json, comparison.md and pareto_models.png to --output_dir.
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

from adaslim_hf.compare import ComparisonError, compare, load_report, write


def labelled(text: str) -> tuple[str, str]:
    label, separator, path = text.partition("=")
    if not separator or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=path/to/evaluation.json, got {text!r}")
    return label, path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--static", type=labelled, required=True, metavar="LABEL=JSON",
                        help="the report whose static factors make the curve (the stage-1 backbone)")
    parser.add_argument("--dynamic", type=labelled, action="append", required=True, metavar="LABEL=JSON",
                        help="a report whose dynamic setting is one point (repeat for several models)")
    parser.add_argument("--metric", default="pesq", help="the quality axis (default pesq, wide-band)")
    parser.add_argument("--tolerance", type=float, default=0.02,
                        help="quality within this of the static value counts as reaching it (default 0.02)")
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def _target(report: dict) -> float | None:
    """The target utilization from the evaluated model's config.json, when the model is a local folder."""
    config = Path(str(report.get("model"))) / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("target_utilization")
    return None


def main(args: argparse.Namespace) -> dict:
    try:
        static = (args.static[0], load_report(args.static[1]))
        dynamic = []
        for label, path in args.dynamic:
            report = load_report(path)
            report.setdefault("target_utilization", _target(report))
            dynamic.append((label, report))
        comparison = compare(static, dynamic, metric=args.metric, tolerance=args.tolerance)
    except ComparisonError as error:
        raise SystemExit(f"error: {error}") from None
    comparison["command"] = "python scripts/compare_models.py " + shlex.join(args.argv)
    paths = write(comparison, args.output_dir)
    print(paths["md"].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return comparison


if __name__ == "__main__":
    main(parse_args())
