#!/usr/bin/env python
"""Evaluate an AdaSlim model on a test set: every metric, MACs per sample, mean utilization and real-time
factor for each static utilization factor and for dynamic routing, beside the noisy input and RNNoise.

Writes to --output_dir: evaluation.json (atomic), evaluation.md, pareto.png, utilization_vs_snr.png and the
per-item cache items.jsonl (a rerun skips the items already there).

    python scripts/evaluate.py --model path/to/model --dataset corpus --data_dir data/corpus \
        --output_dir runs/eval --max_items 100 --metrics pesq,stoi,si_sdr,dnsmos

The same command as `adaslim evaluate` (adaslim_hf/cli_evaluate.py holds its options and code).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

# This file is named like the `evaluate` package the metrics load through: keep its folder off the import path
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.modules.pop("evaluate", None) if getattr(sys.modules.get("evaluate"), "__file__", "") == __file__ else None
sys.path.insert(0, str(_HERE.parent))

from adaslim_hf.cli import UsageError
from adaslim_hf.cli_evaluate import DESCRIPTION, add_evaluate_arguments, evaluate_from_args


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    args = add_evaluate_arguments(parser).parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(args: argparse.Namespace) -> dict:
    try:
        return evaluate_from_args(args, "python scripts/evaluate.py " + shlex.join(args.argv))
    except UsageError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main(parse_args())
