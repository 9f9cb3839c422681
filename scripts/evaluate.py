#!/usr/bin/env python
"""Evaluate an AdaSlim model on a test set: every metric, MACs per sample, mean utilization and real-time
factor for each static utilization factor and for dynamic routing, beside the noisy input and RNNoise.

Writes to --output_dir: evaluation.json (atomic), evaluation.md, pareto.png, utilization_vs_snr.png and the
per-item cache items.jsonl (a rerun skips the items already there).

    python scripts/evaluate.py --model path/to/model --dataset corpus --data_dir data/corpus \
        --output_dir runs/eval --max_items 100 --metrics pesq,stoi,si_sdr,dnsmos
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

# This file is named like the `evaluate` package the metrics load through: keep its folder off the import path
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
sys.modules.pop("evaluate", None) if getattr(sys.modules.get("evaluate"), "__file__", "") == __file__ else None
sys.path.insert(0, str(_HERE.parent))

from adaslim_hf.evaluation import DATASETS, DNSMOS_INPUTS  # noqa: E402
from adaslim_hf.metrics import ALL_SCORES  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="a save_pretrained folder or a Hub model id")
    parser.add_argument("--dataset", default="corpus", choices=DATASETS,
                        help="corpus: a folder built by scripts/build_corpus.py; voicebank: the VoiceBank layout")
    parser.add_argument("--data_dir", default=None,
                        help="the corpus folder (default data/corpus) or the VoiceBank root (required)")
    parser.add_argument("--split", default="test", choices=("test", "validation", "train"))
    parser.add_argument("--max_items", type=int, default=None, help="only the first N items")
    parser.add_argument("--metrics", default=",".join(ALL_SCORES),
                        help=f"comma-separated, from {','.join(ALL_SCORES)}")
    parser.add_argument("--factors", default=None,
                        help="comma-separated static factors (default: all of the model's)")
    parser.add_argument("--no_rnnoise", action="store_true", help="skip the RNNoise baseline")
    parser.add_argument("--dnsmos_input", default="clip", choices=DNSMOS_INPUTS,
                        help="how outputs outside [-1, 1] are brought into range for DNSMOS only")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (RTF is measured with these)")
    parser.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def _split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def main(args: argparse.Namespace) -> dict:
    import torch

    from adaslim_hf import AdaSlimModel
    from adaslim_hf.evaluation import evaluate, load_test_set, write_report

    metrics = _split_list(args.metrics)
    unknown = [name for name in metrics if name not in ALL_SCORES]
    if unknown or not metrics:
        raise SystemExit(f"error: unknown metric(s) {unknown or metrics}; choose from {list(ALL_SCORES)}.")
    if args.dataset not in DATASETS:
        raise SystemExit(f"error: unknown dataset {args.dataset!r}; choose one of {list(DATASETS)}.")
    data_dir = args.data_dir
    if data_dir is None:
        if args.dataset != "corpus":
            raise SystemExit("error: --data_dir is required for --dataset voicebank.")
        data_dir = "data/corpus"
    if not os.path.isdir(data_dir):
        raise SystemExit(f"error: the data folder {data_dir} does not exist (--data_dir).")
    if args.max_items is not None and args.max_items < 1:
        raise SystemExit(f"error: --max_items must be at least 1, got {args.max_items}.")
    factors = None
    if args.factors is not None:
        try:
            factors = [float(value) for value in _split_list(args.factors)]
        except ValueError as error:
            raise SystemExit(f"error: --factors must be numbers: {error}") from None
    torch.set_num_threads(args.threads)

    model = AdaSlimModel.from_pretrained(args.model)
    model.eval()
    try:
        dataset = load_test_set(data_dir, args.dataset, split=args.split, max_items=args.max_items,
                                sample_rate=model.config.sample_rate)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: cannot read the {args.dataset} {args.split} set in {data_dir}: {error}") from None
    try:
        report = evaluate(model, dataset, args.output_dir, metrics=metrics, include_rnnoise=not args.no_rnnoise,
                          factors=factors, dnsmos_input=args.dnsmos_input, model_name=args.model,
                          dataset_name=f"{args.dataset} {args.split} ({data_dir})", progress=not args.no_progress)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    report["command"] = "python scripts/evaluate.py " + shlex.join(args.argv)
    paths = write_report(report, args.output_dir)
    print(Path(paths["evaluation.md"]).read_text())
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return report


if __name__ == "__main__":
    main(parse_args())
