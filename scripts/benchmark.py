"""Wall-clock cost of the adaptive-slimming DEMUCS against its MACs, on this machine.

    python scripts/benchmark.py                      # 10 s of the example speech, 2 threads, table + JSON
    python scripts/benchmark.py --model adaslim_hf/pretrained/adaslim-demucs --threads 1
    python scripts/benchmark.py --input random --seconds 30 --json bench.json

For one input it times: every static factor (sliced weights), dynamic routing with forced mixes of factors
(a new random factor every router frame, and runs of several frames: the adversarial rows) and with the
router deciding (the realistic row, with a trained router when --model is one), the LSTM variant at 1.0
beside facebookresearch/denoiser's Demucs on the same config and input (when denoiser is installed), and a
dense matmul for the machine's peak. Each row reports MACs (adaslim_hf.macs), the mean length of its runs
of one decision, and the ratio wall(row) / wall(static 1.0) against MACs(row) / MACs(static 1.0): a ratio
of ratios near 1 means the MAC savings are real wall-clock savings. The checks at the end are the speed
targets the rows can decide (``speed_checks``).

Timing: one warm-up call per row, then --repeats rounds in which every row runs once, round-robin, so a
load that drifts during the benchmark (a training job on the same cores) hits every row alike; medians of
wall seconds, of this process's CPU seconds (which leave out the time spent waiting for a core on a loaded
machine) and of the page faults per call (the JSON has them: fresh memory the allocator had to map).

The process keeps freed memory for reuse, as the `adaslim` commands do (adaslim_hf.memory; --system_allocator
times glibc's default, which faults every large tensor's pages in again).

--model: a save_pretrained folder (default: the untrained default config, seeded). --input: a WAV file
(default: examples/noisy_example.wav, mono-mixed, resampled to the model rate, tiled or cut to
--seconds) or "random" (Gaussian noise, the previous default).

--profile: where the time of a call goes instead, stage by stage (the input checks and normalisation, the
up-sampling, the router, the plans, each encoder block, the bottleneck, each decoder block, the down-sampling,
the output's assembly), at every static factor and with the router deciding (and in bfloat16 with --bf16):

    python scripts/benchmark.py --profile --threads 1 --seconds 10 --repeats 5 --json profile.json

The stages are the ``record_function`` labels the model places around them (modeling_adaslim.stage), read
from torch.profiler; each profiled call is one profiler session, rows round-robin as above, medians over
--repeats. The profiler adds a little time per operator it records, so the table also gives each row's
median wall time without it, and the operator events per stage (the count that per-operator overhead scales
with). "unlabelled" is what the call spent outside every stage (argument handling): the call's time minus the
sum of the labelled stages.
"""

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from adaslim_hf import AdaSlimConfig, AdaSlimModel
from adaslim_hf.atomic import write_json
from adaslim_hf.audio_io import load_audio, resample
from adaslim_hf.memory import reuse_freed_memory
from adaslim_hf.modeling_adaslim import STAGE_PREFIX, router_runs

DEFAULT_INPUT = Path(__file__).resolve().parent.parent / "examples" / "noisy_example.wav"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None,
                        help="a save_pretrained folder (default: the untrained default config, seeded)")
    parser.add_argument("--input", default=str(DEFAULT_INPUT),
                        help="WAV file tiled or cut to --seconds, or 'random' (default: examples/noisy_example.wav)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the input (default 10 s)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (median; default 5)")
    parser.add_argument("--hidden", type=int, default=None, help="override the default config's hidden (default: paper's 32; not with --model)")
    parser.add_argument("--run-frames", type=int, default=8, help="router frames per run in the 'runs' mix")
    parser.add_argument("--router-strides", default="4,16",
                        help="also time a random factor per router frame at these router_stride values")
    parser.add_argument("--system_allocator", action="store_true",
                        help="leave glibc's malloc as it is (default: keep freed memory, as `adaslim enhance` does)")
    parser.add_argument("--slimming-bounds", action="store_true",
                        help="also time issue 27's slimming options: the model with config.slim_bottleneck (static 0.25 "
                             "and routed; the same weights), and the lower bound of every block and the "
                             "bottleneck at 0.25 (a model of hidden x 0.25 at full width)")
    parser.add_argument("--bf16", action="store_true",
                        help="also time every static factor and the router's row with the blocks in bfloat16 "
                             "(torch.autocast, as the pipeline's precision='bf16')")
    parser.add_argument("--profile", action="store_true",
                        help="time each stage of a call (torch.profiler) at every static factor and routed, "
                             "instead of the rows above")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None,
                        help="where to write the results (default benchmark.json, profile.json with --profile)")
    args = parser.parse_args(argv)
    if args.json is None:
        args.json = Path("profile.json" if args.profile else "benchmark.json")
    return args


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(fns: list, repeats: int) -> list[dict]:
    """Per fn, medians over ``repeats`` round-robin rounds (every fn once per round, so that a load drifting
    during the benchmark hits every row alike) of its wall seconds, its CPU seconds (this process's, so time
    spent waiting for a core under load is left out) and the page faults it took (fresh memory touched).
    Call each fn once beforehand to warm up."""
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for fn, row_samples in zip(fns, samples):
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            row_samples.append((time.perf_counter() - wall, time.process_time() - cpu,
                                resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults))
    return [{key: statistics.median(sample[index] for sample in row_samples)
             for index, key in enumerate(("seconds", "cpu_seconds", "page_faults"))} for row_samples in samples]


def dense_matmul_gflops(repeats: int) -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    seconds = median_seconds(lambda: a @ b, repeats)
    return 2 * 1024**3 / seconds / 1e9


def load_model(args) -> AdaSlimModel:
    """--model's save_pretrained folder, or the default config (with --hidden) freshly initialised from --seed."""
    if args.model is not None:
        if args.hidden is not None:
            raise SystemExit("--hidden overrides the default config; it cannot be combined with --model.")
        return AdaSlimModel.from_pretrained(args.model).eval()
    torch.manual_seed(args.seed)
    return AdaSlimModel(AdaSlimConfig(**({} if args.hidden is None else {"hidden": args.hidden}))).eval()


def variant(model: AdaSlimModel, seed: int, **changes) -> AdaSlimModel:
    """The same model with config ``changes``; parameters whose shapes still match are copied (the router's
    front end changes with router_stride, the bottleneck with its kind), the others freshly initialised."""
    torch.manual_seed(seed)
    other = AdaSlimModel(AdaSlimConfig.from_dict({**model.config.to_dict(), **changes})).eval()
    own = other.state_dict()
    same_shape = {k: v for k, v in model.state_dict().items() if k in own and own[k].shape == v.shape}
    other.load_state_dict(same_shape, strict=False)
    return other


def load_input(spec: str, sample_rate: int, length: int, seed: int) -> tuple[torch.Tensor, str]:
    """[1, length] input: Gaussian noise for "random", else the WAV file (channels averaged, resampled to the
    model rate) repeated end to end and cut to ``length``. Also a description for the report."""
    if spec == "random":
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(1, length, generator=generator) * 0.1, "Gaussian noise (std 0.1)"
    samples, rate = load_audio(spec)  # float32 [channels, samples]
    mono = resample(torch.from_numpy(samples).mean(dim=0), rate, sample_rate)  # [samples at the model rate]
    repeats = -(-length // mono.shape[0])
    tiled = mono.repeat(repeats)[:length]
    return tiled[None], f"{spec} ({mono.shape[0] / sample_rate:.2f} s, x{length / mono.shape[0]:.2f})"


def mean_run_frames(choice: torch.Tensor) -> float:
    """Mean length, in router frames, of the runs of one decision in ``choice`` [B, N] (-1 frames skipped)."""
    runs = router_runs(choice)
    return sum(end - first for _, first, end, _ in runs) / max(len(runs), 1)


def set_up(args) -> tuple:
    """Threads, allocator, model and input of a run -> (model, input [1, T], the result's description of the
    run, to which the rows are added)."""
    torch.set_num_threads(args.threads)
    reused = False if args.system_allocator else reuse_freed_memory()  # what the adaslim commands do
    model = load_model(args)
    config = model.config
    length = int(args.seconds * config.sample_rate)
    noisy, input_description = load_input(args.input, config.sample_rate, length, args.seed)
    description = {
        "command": "python " + " ".join([sys.argv[0]] + sys.argv[1:]),
        "model": str(args.model) if args.model is not None else "untrained default config",
        "input": input_description,
        "seconds_of_audio": args.seconds,
        "sample_rate": config.sample_rate,
        "threads": args.threads,
        "reuse_freed_memory": reused,
        "repeats": args.repeats,
        "config": {k: getattr(config, k) for k in ("hidden", "depth", "bottleneck", "router_stride")},
    }
    return model, noisy, description


def run(args) -> dict:
    model, noisy, description = set_up(args)
    config = model.config
    input_description, length = description["input"], noisy.shape[-1]
    frames = config.num_router_frames(length)
    generator = torch.Generator().manual_seed(args.seed + 1)
    every_frame = torch.randint(0, config.num_factors, (1, frames), generator=generator)
    runs = torch.randint(0, config.num_factors, (1, -(-frames // args.run_frames)), generator=generator)
    runs = runs.repeat_interleave(args.run_frames, dim=1)[:, :frames]

    rows, fns = [], []

    def add(name, fn, note="", router_hop=config.router_hop):
        """Register a row; its first call (warm-up) gives the compute trace."""
        with torch.no_grad():
            output = fn()
        row = {"name": name, "macs": None, "mean_utilization": None, "mean_run_frames": None, "note": note}
        if hasattr(output, "macs"):
            row["macs"] = float(output.macs.sum())
            row["mean_utilization"] = float(output.mean_utilization.mean())
            if name.startswith("dynamic"):
                row["mean_run_frames"] = mean_run_frames(output.choice)
                row["mean_run_ms"] = row["mean_run_frames"] * router_hop / config.sample_rate * 1000
        rows.append(row)
        fns.append(fn)
        return row

    for factor in config.utilization_factors:
        add(f"static {factor}", lambda f=factor: model(noisy, utilization=f))
    base = rows[-1]
    add("dynamic: random factor every router frame", lambda: model(noisy, utilization=every_frame))
    add(f"dynamic: random factor every {args.run_frames} router frames", lambda: model(noisy, utilization=runs))
    router_kind = f"router of {args.model.name}" if args.model is not None else "untrained router"
    add(f"dynamic: router decides ({router_kind})", lambda: model(noisy), note=input_description)
    if args.bf16:
        def in_bf16(utilization):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(noisy, utilization=utilization)

        for factor in config.utilization_factors:
            add(f"static {factor}, bf16", lambda f=factor: in_bf16(f))
        add(f"dynamic: router decides ({router_kind}), bf16", lambda: in_bf16(None), note=input_description)
    for router_stride in [int(v) for v in args.router_strides.split(",") if v]:
        strided = variant(model, args.seed, router_stride=router_stride)  # same backbone, new router front end
        n = strided.config.num_router_frames(length)
        mix = torch.randint(0, config.num_factors, (1, n), generator=torch.Generator().manual_seed(args.seed + 2))
        add(f"dynamic: random factor every router frame, router_stride={router_stride}",
            lambda m=strided, c=mix: m(noisy, utilization=c), router_hop=strided.config.router_hop)

    if args.slimming_bounds:
        if config.bottleneck != "gru" or not config.causal or config.bottleneck_layers != 1:
            raise SystemExit("--slimming-bounds needs the paper's one-layer causal grouped-GRU bottleneck.")
        slimmed = variant(model, args.seed, slim_bottleneck=True)  # the same weights, the groups slimmed
        for factor in config.utilization_factors[:-1]:  # the widest runs every group: no row of its own
            groups = slimmed.config.bottleneck_active_groups(config.factor_index(factor))
            add(f"slim_bottleneck: static {factor}, the recurrence over {groups} of {config.bottleneck_groups} "
                "groups", lambda f=factor: slimmed(noisy, utilization=f), note="issue 27 item 3")
        add("slim_bottleneck: dynamic, router decides", lambda: slimmed(noisy), note=input_description)
        quarter = variant(model, args.seed, hidden=config.hidden // 4, utilization_factors=[1.0])  # full width only
        add(f"bound: every block and the bottleneck at 0.25 (hidden {config.hidden // 4} at full width)",
            lambda: quarter(noisy, utilization=1.0), note="issue 27 item 3, a lower bound")
    lstm_model = variant(model, args.seed, bottleneck="lstm", slim_bottleneck=False)  # DEMUCS: the whole LSTM
    lstm_row = add("static 1.0, LSTM bottleneck (DEMUCS)", lambda: lstm_model(noisy, utilization=1.0))
    try:
        from denoiser.demucs import Demucs
    except ImportError:
        pass  # no reference row
    else:
        demucs = Demucs(hidden=config.hidden, depth=config.depth, kernel_size=config.kernel_size,
                        stride=config.stride, resample=config.resample, causal=config.causal).eval()
        denoiser_row = add("denoiser Demucs (reference, LSTM)", lambda: demucs(noisy[:, None]),
                           note="same config and input")
        denoiser_row["macs"] = lstm_row["macs"]  # identical network: our analytic count of the LSTM variant

    with torch.no_grad():
        for row, timing in zip(rows, interleaved_medians(fns, args.repeats)):
            row.update(timing)
    peak = dense_matmul_gflops(args.repeats)
    for row in rows:
        row["rtf"] = row["seconds"] / args.seconds
        row["wall_ratio"] = row["seconds"] / base["seconds"]
        row["cpu_ratio"] = row["cpu_seconds"] / base["cpu_seconds"]
        if row["macs"] is not None:
            row["mac_ratio"] = row["macs"] / base["macs"]
            row["wall_over_mac_ratio"] = row["wall_ratio"] / row["mac_ratio"]
            row["cpu_over_mac_ratio"] = row["cpu_ratio"] / row["mac_ratio"]
            row["achieved_gmacs_per_s"] = row["macs"] / row["seconds"] / 1e9
    return {**description, "dense_matmul_gflops": peak, "rows": rows, "checks": speed_checks(rows)}


def speed_checks(rows: list[dict]) -> dict[str, bool]:
    """The speed targets (issue 27) that these rows can decide: static 0.25 at most 0.40 of the full width's
    wall time (0.33 with ``slim_bottleneck``), the trained router's wall ratio at most 1.5x its MAC ratio (the
    router-decides row, when the model has a router), the full width at least 4x faster than denoiser's
    ``Demucs`` and its LSTM variant no slower than it (when denoiser is installed)."""
    named = {row["name"]: row for row in rows}
    checks = {}
    if "static 0.25" in named:
        checks["static 0.25: wall ratio <= 0.40"] = named["static 0.25"]["wall_ratio"] <= 0.40
    for row in rows:
        if row["name"].startswith("slim_bottleneck: static 0.25"):  # the option's own, tighter target
            checks[f"{row['name']}: wall ratio <= 0.33"] = row["wall_ratio"] <= 0.33
        if row["name"].startswith("dynamic: router decides"):
            checks[f"{row['name']}: wall ratio <= 1.5 x MAC ratio"] = row["wall_over_mac_ratio"] <= 1.5
    denoiser = named.get("denoiser Demucs (reference, LSTM)")
    if denoiser is not None:
        checks["static 1.0: at least 4x faster than denoiser's Demucs"] = (
            4 * named["static 1.0"]["seconds"] <= denoiser["seconds"])
        checks["static 1.0, LSTM bottleneck: no slower than denoiser's Demucs"] = (
            named["static 1.0, LSTM bottleneck (DEMUCS)"]["seconds"] <= denoiser["seconds"])
    return checks


def markdown(result: dict) -> str:
    lines = [
        (
            f"{result['seconds_of_audio']:g} s of {result['sample_rate'] / 1000:g} kHz audio ({result['input']}), "
            f"model: {result['model']}, {result['threads']} thread(s), median of {result['repeats']} interleaved "
            f"rounds; dense matmul peak {result['dense_matmul_gflops']:.1f} GFLOP/s."
        ),
        "",
        (
            "| run | mean u | mean run (ms) | MACs/sample | MAC ratio | wall (s) | wall ratio | wall/MAC ratio | "
            "CPU (s) | CPU ratio | CPU/MAC ratio | RTF |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        macs = f"{row['macs'] / (result['seconds_of_audio'] * result['sample_rate']):,.0f}" if row["macs"] else "-"
        utilization = f"{row['mean_utilization']:.3f}" if row["mean_utilization"] is not None else "-"
        run_ms = f"{row['mean_run_ms']:.0f}" if row.get("mean_run_ms") is not None else "-"
        lines.append(
            f"| {row['name']} | {utilization} | {run_ms} | {macs} | {row.get('mac_ratio', float('nan')):.3f} | "
            f"{row['seconds']:.4f} | {row['wall_ratio']:.3f} | {row.get('wall_over_mac_ratio', float('nan')):.2f} | "
            f"{row['cpu_seconds']:.4f} | {row['cpu_ratio']:.3f} | {row.get('cpu_over_mac_ratio', float('nan')):.2f} | "
            f"{row['rtf']:.4f} |"
        )
    lines.append("")
    for check, passed in result["checks"].items():
        lines.append(f"- {'PASS' if passed else 'MISS'}: {check}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# --profile: stage by stage
# ----------------------------------------------------------------------------------------------------


def profiled_call(fn) -> dict:
    """One call of ``fn`` as one torch.profiler session -> its wall seconds under the profiler, and per stage
    (the model's ``STAGE_PREFIX`` labels; "unlabelled" for operators outside every stage) the seconds its
    ranges took and the operator events recorded inside them (nested ones included)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as session:
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
    stages = {}
    for event in session.events():
        if event.name.startswith(STAGE_PREFIX):
            entry = stages.setdefault(event.name[len(STAGE_PREFIX):], {"seconds": 0.0, "operators": 0})
            entry["seconds"] += event.time_range.elapsed_us() / 1e6
            continue
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith(STAGE_PREFIX):
            parent = parent.cpu_parent
        name = "unlabelled" if parent is None else parent.name[len(STAGE_PREFIX):]
        stages.setdefault(name, {"seconds": 0.0, "operators": 0})["operators"] += 1
    labelled = sum(entry["seconds"] for entry in stages.values())
    stages.setdefault("unlabelled", {"seconds": 0.0, "operators": 0})["seconds"] = seconds - labelled
    return {"seconds": seconds, "labelled_seconds": labelled, "stages": stages}


def stage_order(rows: list[dict]) -> list[str]:
    """Every row's stages in the order a call runs them (the routed row's router between the up-sampling and
    the plans), "unlabelled" last."""
    order = []
    for row in rows:
        names = [name for name in row["stages"] if name != "unlabelled"]
        for index, name in enumerate(names):
            if name not in order:
                order.insert(order.index(names[index - 1]) + 1 if index else 0, name)
    return [*order, "unlabelled"]


def run_profile(args) -> dict:
    """--profile: per row (every static factor, the router deciding; bfloat16 too with --bf16), the median
    over --repeats round-robin rounds of each stage's seconds under torch.profiler, its operator events, the
    call's total under the profiler and, timed apart, without it."""
    model, noisy, description = set_up(args)
    config = model.config

    def call(utilization, bf16=False):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model(noisy, utilization=utilization)

    settings = [(f"static {factor}", factor) for factor in config.utilization_factors] + [("routed", None)]
    calls = [(name, lambda u=utilization: call(u)) for name, utilization in settings]
    if args.bf16:
        calls += [(f"{name}, bf16", lambda u=utilization: call(u, bf16=True)) for name, utilization in settings]
    samples = [[] for _ in calls]
    with torch.no_grad():
        for _, fn in calls:
            fn()  # warm-up: caches of sliced weights, the compiled recurrence, allocations
        plain = interleaved_medians([fn for _, fn in calls], args.repeats)
        for _ in range(args.repeats):
            for (_, fn), row_samples in zip(calls, samples):
                row_samples.append(profiled_call(fn))
    rows = []
    for (name, _), row_samples, timing in zip(calls, samples, plain):
        names = list(row_samples[0]["stages"])
        stages = {stage: {"seconds": statistics.median(sample["stages"][stage]["seconds"] for sample in row_samples),
                          "operators": row_samples[-1]["stages"][stage]["operators"]} for stage in names}
        rows.append({"name": name, "plain_seconds": timing["seconds"], "plain_cpu_seconds": timing["cpu_seconds"],
                     "profiled_seconds": statistics.median(sample["seconds"] for sample in row_samples),
                     "labelled_seconds": statistics.median(sample["labelled_seconds"] for sample in row_samples),
                     "stages": stages})
    return {**description, "stages": stage_order(rows), "rows": rows}


def profile_markdown(result: dict) -> str:
    """Two tables, stages down and rows across: milliseconds (with the share of the profiled call), then
    operator events."""
    rows, stages = result["rows"], result["stages"]
    header = "| stage | " + " | ".join(row["name"] for row in rows) + " |"
    rule = "|---" * (len(rows) + 1) + "|"

    def cell(row, stage, key):
        entry = row["stages"].get(stage)
        if entry is None:
            return "-"
        if key == "operators":
            return f"{entry['operators']:,}"
        return f"{entry['seconds'] * 1000:.2f} ({entry['seconds'] / row['profiled_seconds']:.0%})"

    lines = [
        (
            f"{result['seconds_of_audio']:g} s of {result['sample_rate'] / 1000:g} kHz audio ({result['input']}), "
            f"model: {result['model']}, {result['threads']} thread(s), median of {result['repeats']} interleaved "
            "rounds. Milliseconds per stage under torch.profiler (share of the profiled call):"
        ),
        "",
        header,
        rule,
    ]
    lines += [f"| {stage} | " + " | ".join(cell(row, stage, "seconds") for row in rows) + " |" for stage in stages]
    lines.append("| sum of the labelled stages | " + " | ".join(
        f"{row['labelled_seconds'] * 1000:.2f}" for row in rows) + " |")
    lines.append("| call under the profiler | " + " | ".join(
        f"{row['profiled_seconds'] * 1000:.2f}" for row in rows) + " |")
    lines.append("| call without the profiler | " + " | ".join(
        f"{row['plain_seconds'] * 1000:.2f}" for row in rows) + " |")
    lines += ["", "Operator events recorded per stage (nested ones included):", "", header, rule]
    lines += [f"| {stage} | " + " | ".join(cell(row, stage, "operators") for row in rows) + " |" for stage in stages]
    return "\n".join(lines)


def main(args) -> int:
    if args.profile:
        result = run_profile(args)
        print(profile_markdown(result))
        write_json(args.json, result)
        print(f"\nwrote {args.json}")
        return 0
    result = run(args)
    print(markdown(result))
    write_json(args.json, result)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
