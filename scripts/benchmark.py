"""Wall-clock cost of the adaptive-slimming DEMUCS against its MACs, on this machine.

    python scripts/benchmark.py                      # 10 s of audio, 2 threads, markdown table + JSON
    python scripts/benchmark.py --seconds 30 --threads 1 --json bench.json

For one input it times: every static factor (sliced weights), dynamic routing with forced mixes of factors
(a new random factor every router frame, and runs of several frames) and with the router deciding, the
LSTM variant at 1.0 beside facebookresearch/denoiser's Demucs on the same config and input (when denoiser
is installed), and a dense matmul for the machine's peak. Each row reports MACs (adaslim_hf.macs) and the
ratio wall(row) / wall(static 1.0) against MACs(row) / MACs(static 1.0): a ratio of ratios <= 1.1 means
the MAC savings are real wall-clock savings. Medians over --repeats runs after one warm-up.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from adaslim_hf import AdaSlimConfig, AdaSlimModel


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the input (default 10 s)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (median; default 5)")
    parser.add_argument("--hidden", type=int, default=None, help="override the config's hidden (default: paper's 32)")
    parser.add_argument("--run-frames", type=int, default=8, help="router frames per run in the 'runs' mix")
    parser.add_argument("--router-strides", default="4,16",
                        help="also time a random factor per router frame at these router_stride values")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("benchmark.json"), help="where to write the results")
    return parser.parse_args(argv)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def dense_matmul_gflops(repeats: int) -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    seconds = median_seconds(lambda: a @ b, repeats)
    return 2 * 1024**3 / seconds / 1e9


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config_kwargs = {} if args.hidden is None else {"hidden": args.hidden}
    config = AdaSlimConfig(**config_kwargs)
    model = AdaSlimModel(config).eval()
    length = int(args.seconds * config.sample_rate)
    noisy = torch.randn(1, length, generator=torch.Generator().manual_seed(args.seed)) * 0.1
    frames = config.num_router_frames(length)
    generator = torch.Generator().manual_seed(args.seed + 1)
    every_frame = torch.randint(0, config.num_factors, (1, frames), generator=generator)
    runs = torch.randint(0, config.num_factors, (1, -(-frames // args.run_frames)), generator=generator)
    runs = runs.repeat_interleave(args.run_frames, dim=1)[:, :frames]

    rows = []

    def add(name, fn, note=""):
        with torch.no_grad():
            output = fn()
            seconds = median_seconds(fn, args.repeats)
        macs = float(output.macs.sum()) if hasattr(output, "macs") else None
        utilization = float(output.mean_utilization.mean()) if hasattr(output, "mean_utilization") else None
        rows.append({"name": name, "seconds": seconds, "macs": macs, "mean_utilization": utilization, "note": note})

    for factor in config.utilization_factors:
        add(f"static {factor}", lambda f=factor: model(noisy, utilization=f))
    add("dynamic: random factor every router frame", lambda: model(noisy, utilization=every_frame))
    add(f"dynamic: random factor every {args.run_frames} router frames", lambda: model(noisy, utilization=runs))
    add("dynamic: router decides (untrained router)", lambda: model(noisy))
    for router_stride in [int(v) for v in args.router_strides.split(",") if v]:
        torch.manual_seed(args.seed)  # same backbone weights: only the router's front end differs
        strided = AdaSlimModel(AdaSlimConfig(**config_kwargs, router_stride=router_stride)).eval()
        n = strided.config.num_router_frames(length)
        mix = torch.randint(0, config.num_factors, (1, n), generator=torch.Generator().manual_seed(args.seed + 2))
        add(f"dynamic: random factor every router frame, router_stride={router_stride}",
            lambda m=strided, c=mix: m(noisy, utilization=c))

    reference = {"static 1.0": rows[config.num_factors - 1]}
    lstm_config = AdaSlimConfig(**config_kwargs, bottleneck="lstm")
    lstm_model = AdaSlimModel(lstm_config).eval()
    add("static 1.0, LSTM bottleneck (DEMUCS)", lambda: lstm_model(noisy, utilization=1.0))
    try:
        from denoiser.demucs import Demucs
    except ImportError:
        denoiser_row = None
    else:
        demucs = Demucs(hidden=config.hidden, depth=config.depth, kernel_size=config.kernel_size,
                        stride=config.stride, resample=config.resample, causal=config.causal).eval()
        add("denoiser Demucs (reference, LSTM)", lambda: demucs(noisy[:, None]), note="same config and input")
        denoiser_row = rows[-1]
        denoiser_row["macs"] = rows[-2]["macs"]  # identical network: our analytic count of the LSTM variant

    peak = dense_matmul_gflops(args.repeats)
    base = reference["static 1.0"]
    for row in rows:
        row["rtf"] = row["seconds"] / args.seconds
        row["wall_ratio"] = row["seconds"] / base["seconds"]
        if row["macs"] is not None:
            row["mac_ratio"] = row["macs"] / base["macs"]
            row["wall_over_mac_ratio"] = row["wall_ratio"] / row["mac_ratio"]
            row["achieved_gmacs_per_s"] = row["macs"] / row["seconds"] / 1e9
    result = {
        "command": "python " + " ".join([sys.argv[0]] + sys.argv[1:]),
        "seconds_of_audio": args.seconds,
        "threads": args.threads,
        "repeats": args.repeats,
        "config": {k: getattr(config, k) for k in ("hidden", "depth", "bottleneck", "router_stride")},
        "dense_matmul_gflops": peak,
        "rows": rows,
        "checks": {},
    }
    for row in rows:
        if row["name"].startswith("static") and "LSTM" not in row["name"]:
            factor = float(row["name"].split()[1])
            if factor >= 0.25 and factor < 1.0:
                result["checks"][f"{row['name']}: wall ratio <= 1.1 x MAC ratio"] = row["wall_over_mac_ratio"] <= 1.1
        if row["name"].startswith("dynamic: random"):
            result["checks"][f"{row['name']}: wall ratio <= 1.1 x MAC ratio"] = row["wall_over_mac_ratio"] <= 1.1
    if denoiser_row is not None:
        result["checks"]["static 1.0 (GRU) no slower than denoiser"] = base["seconds"] <= denoiser_row["seconds"]
        result["checks"]["static 1.0 (LSTM) no slower than denoiser"] = rows[-2]["seconds"] <= denoiser_row["seconds"]
    return result


def markdown(result: dict) -> str:
    lines = [
        f"{result['seconds_of_audio']:g} s of 16 kHz audio, {result['threads']} thread(s), median of "
        f"{result['repeats']}; dense matmul peak {result['dense_matmul_gflops']:.1f} GFLOP/s.",
        "",
        "| run | mean u | MACs/sample | MAC ratio | wall (s) | wall ratio | wall/MAC ratio | RTF |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        macs = f"{row['macs'] / (result['seconds_of_audio'] * 16000):,.0f}" if row["macs"] else "-"
        utilization = f"{row['mean_utilization']:.3f}" if row["mean_utilization"] is not None else "-"
        lines.append(
            f"| {row['name']} | {utilization} | {macs} | {row.get('mac_ratio', float('nan')):.3f} | "
            f"{row['seconds']:.4f} | {row['wall_ratio']:.3f} | {row.get('wall_over_mac_ratio', float('nan')):.2f} | "
            f"{row['rtf']:.4f} |"
        )
    lines.append("")
    for check, passed in result["checks"].items():
        lines.append(f"- {'PASS' if passed else 'MISS'}: {check}")
    return "\n".join(lines)


def write_json_atomically(path: Path, data: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        json.dump(data, handle, indent=2)
    os.replace(handle.name, path)


def main(args) -> int:
    result = run(args)
    print(markdown(result))
    write_json_atomically(args.json, result)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
