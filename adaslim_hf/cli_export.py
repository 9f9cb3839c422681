"""``adaslim export``: portable ONNX graphs of a model, one per static utilization factor, and its router.

    adaslim export MODEL --utilization 0.25 out.onnx     # one static factor: input_values -> enhanced_values
    adaslim export MODEL --router router.onnx            # the router alone: input_values -> router_logits
    adaslim export MODEL --utilization all out_dir/      # every factor, the router and export.json

MODEL is a save_pretrained folder or a Hub id (resolved from the local cache when offline). Graphs take any
batch and any number of samples at the model's sampling rate (mono: [batch, samples]) unless
--fixed-samples asks for a static shape. Each graph is run by onnxruntime against the torch model on random
inputs and the largest difference is printed; the exit code is 1 when it exceeds --tolerance.

cli.py registers this with ``add_export_subcommand(subparsers)``; ``args.run(args)`` runs it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_TOLERANCE = 1e-4


def add_export_subcommand(subparsers) -> argparse.ArgumentParser:
    """Add ``export`` to an ``argparse`` subparsers object; the parsed namespace carries ``run`` (and ``func``)
    = ``run_export``."""
    parser = subparsers.add_parser(
        "export",
        help="write ONNX graphs (one per static utilization factor, and the router)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="model folder (save_pretrained) or Hub id")
    parser.add_argument("output", help="the .onnx file to write, or a folder with --utilization all")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--utilization", "-u", metavar="U",
                      help="a configured factor (e.g. 0.25), or 'all' for every factor plus the router")
    what.add_argument("--router", action="store_true", help="export the router (per-frame logits) alone")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.add_argument("--fixed-samples", type=int, metavar="N",
                        help="static shape [1, N] instead of dynamic batch and length")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"largest accepted |onnx - torch| (default {DEFAULT_TOLERANCE:g})")
    parser.set_defaults(func=run_export, run=run_export)  # cli.py dispatches on `run`
    return parser


def _error(message: str) -> int:
    print(f"adaslim export: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _parse_utilization(text: str, factors: list[float]) -> list[float] | None:
    if text.strip().lower() == "all":
        return list(factors)
    try:
        value = float(text)
    except ValueError:
        return None
    matches = [u for u in factors if abs(u - value) < 1e-9]
    return matches or None


def _describe(path: Path) -> str:
    return f"{path} ({path.stat().st_size / 1e6:.1f} MB)"


def run_export(args: argparse.Namespace) -> int:
    """Run ``adaslim export`` for parsed ``args``; returns the exit code (0 ok, 1 check failed, 2 usage)."""
    if args.fixed_samples is not None and args.fixed_samples < 1:
        return _error(f"--fixed-samples must be >= 1, got {args.fixed_samples}.")
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        return _error(f"ONNX export needs onnx and onnxscript ({error.name} is missing): "
                      "pip install 'adaslim_hf[export]'.")
    from .export import check_onnx, export_onnx, export_router_onnx
    from .macs import macs_per_sample
    from .modeling_adaslim import AdaSlimModel

    try:
        model = AdaSlimModel.from_pretrained(args.model).eval()
    except (OSError, ValueError) as error:
        return _error(f"cannot load the model {args.model!r}: {error}")
    config = model.config

    factors: list[float] = []
    if args.utilization is not None:
        factors = _parse_utilization(args.utilization, config.utilization_factors)
        if factors is None:
            return _error(f"--utilization {args.utilization!r} is not one of the model's factors "
                          f"{config.utilization_factors} (or 'all').")
    export_all = args.utilization is not None and args.utilization.strip().lower() == "all"
    output = Path(args.output)

    # (kind, utilization or None, path)
    if export_all:
        if output.exists() and not output.is_dir():
            return _error(f"{output} exists and is not a folder; --utilization all writes a folder of graphs.")
        jobs = [("static", u, output / f"static-u{u:g}.onnx") for u in factors]
        jobs.append(("router", None, output / "router.onnx"))
    else:
        if output.is_dir():
            return _error(f"{output} is a folder; give the .onnx file to write (or use --utilization all).")
        jobs = [("router", None, output)] if args.router else [("static", factors[0], output)]
    try:
        for _, _, path in jobs:
            path.parent.mkdir(parents=True, exist_ok=True)
            probe = path.parent / f".{path.name}.probe"
            probe.write_bytes(b"")
            probe.unlink()
    except OSError as error:
        return _error(f"cannot write to {jobs[0][2].parent}: {error.strerror or error}")

    dynamic = args.fixed_samples is None
    lengths = (args.fixed_samples,) if not dynamic else (1, 4001, config.sample_rate)
    batch = 1 if not dynamic else 2
    status, manifest = EXIT_OK, {"sample_rate": config.sample_rate, "utilization_factors": config.utilization_factors,
                                 "router_hop": config.router_hop, "dynamic_axes": dynamic, "static": []}
    for kind, utilization, path in jobs:
        if kind == "static":
            export_onnx(model, path, utilization, opset=args.opset, dynamic=dynamic, example_samples=args.fixed_samples)
            macs = macs_per_sample(config, utilization, router=False)["total"]
            label = f"static u={utilization:g}, {macs:,.0f} MACs/sample"
            manifest["static"].append({"utilization": utilization, "file": path.name, "macs_per_sample": macs})
        else:
            export_router_onnx(model, path, opset=args.opset, dynamic=dynamic, example_samples=args.fixed_samples)
            label = "router, logits per router frame"
            manifest["router"] = {"file": path.name}
        print(f"wrote {_describe(path)}: {label}")
        if args.no_check:
            continue
        try:
            worst = check_onnx(model, path, utilization, lengths=lengths, batch=batch)
        except ImportError:
            print("  not checked: onnxruntime is not installed", file=sys.stderr)
            continue
        print(f"  onnxruntime vs torch: max |diff| {worst:.2e} on lengths {list(lengths)}")
        if worst > args.tolerance:
            print(f"adaslim export: CHECK FAILED for {path}: {worst:.2e} > tolerance {args.tolerance:g}",
                  file=sys.stderr)
            status = EXIT_CHECK_FAILED
    if export_all:
        (output / "export.json").write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"wrote {output / 'export.json'}")
    return status


def main(argv: list[str] | None = None) -> int:
    """``python -m adaslim_hf.cli_export export MODEL ...``: the subcommand on its own."""
    parser = argparse.ArgumentParser(prog="adaslim")
    add_export_subcommand(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
