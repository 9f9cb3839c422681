"""Streaming cost and latency of AdaSlimStreamer, beside facebookresearch/denoiser's DemucsStreamer.

    python scripts/benchmark_streaming.py                     # paper config, 10 s of speech, 1 thread
    python scripts/benchmark_streaming.py --seconds 30 --chunk 256 --json streaming.json
    python scripts/benchmark_streaming.py --smoke             # tiny config, 1 s (what the test runs)

Part 1, the paper's configuration (hidden 32, grouped-GRU bottleneck): the input is fed in chunks of --chunk
samples (default 256 = one 16 ms router frame, DemucsStreamer's hop); for every static factor, for factor
1.0 with the shortened resampler look-ahead (--lookahead, the low-latency setting) and for the router
deciding, it reports the per-chunk processing time (median, 95th percentile, max), the real-time factor on
one thread (wall clock and process CPU time; the CPU figure is the fairer one on a shared
machine), the latency, and the mean utilization. The weights are untrained, so an untrained router would
pick whatever its initialisation favours; the "router" row sharpens its scores (x5) so that it switches
factors often, as a trained router does, and reports the mean it reached.

Part 2, the same network with DEMUCS' LSTM bottleneck (AdaSlimConfig(bottleneck="lstm")) and the same
weights loaded into denoiser's Demucs: DemucsStreamer(num_frames=1) against AdaSlimStreamer at factor 1.0,
exact and with a shortened resampler look-ahead. Latency is measured by feeding one sample at a time:
the largest number of samples fed but not yet returned. Deviation is against the offline forward on the
same input, with normalisation off in this part: with it, both streamers divide by a running estimate of
the input level, which on a file that starts quietly differs from the whole-file level by tens of percent
and would hide what the streaming itself changes.
"""

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from adaslim_hf import AdaSlimConfig, AdaSlimModel
from adaslim_hf.streaming import AdaSlimStreamer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "noisy_example.wav"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="audio streamed per row (default 10 s)")
    parser.add_argument("--chunk", type=int, default=256, help="samples per feed (default 256 = 16 ms)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--lookahead", type=int, default=20,
                        help="resample_lookahead of the low-latency row (default 20: 655 samples)")
    parser.add_argument("--smoke", action="store_true", help="tiny config and 1 s of audio (a quick end-to-end run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser.parse_args(argv)


def speech(seconds: float, rate: int) -> torch.Tensor:
    """The packaged noisy example (real speech plus hiss), looped to ``seconds``; noise if it is missing."""
    length = int(seconds * rate)
    try:
        import soundfile

        audio, file_rate = soundfile.read(EXAMPLE, dtype="float32", always_2d=True)
        if file_rate != rate:
            raise ValueError(file_rate)
        audio = torch.from_numpy(audio[:, 0].copy())
    except (ImportError, OSError, ValueError, RuntimeError):
        audio = torch.randn(rate, generator=torch.Generator().manual_seed(0)) * 0.1
    return audio.repeat(math.ceil(length / len(audio)))[:length]


def time_stream(streamer: AdaSlimStreamer, noisy: torch.Tensor, chunk: int) -> dict:
    """Feed ``noisy`` chunk by chunk after a 1 s warm-up stream; per-chunk wall times and totals."""
    warm = noisy[: streamer.sample_rate]
    for piece in warm.split(chunk):
        streamer.feed(piece)
    streamer.reset()
    times, outputs = [], []
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for piece in noisy.split(chunk):
        start = time.perf_counter()
        outputs.append(streamer.feed(piece))
        times.append(time.perf_counter() - start)
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    outputs.append(streamer.flush())
    audio = len(noisy) / streamer.sample_rate
    times_ms = sorted(1000 * t for t in times)
    return {
        "latency_samples": streamer.latency,
        "latency_ms": 1000 * streamer.latency_seconds,
        "chunk_ms_median": statistics.median(times_ms),
        "chunk_ms_p95": times_ms[int(0.95 * (len(times_ms) - 1))],
        "chunk_ms_max": times_ms[-1],
        "rtf": wall / audio,
        "rtf_cpu": cpu / audio,
        "mean_utilization": streamer.stats["mean_utilization"],
        "output": torch.cat(outputs),
    }


def measured_latency(feed, flush_free_samples: int) -> int:
    """Largest (samples fed - samples returned) over one-sample feeds of ``flush_free_samples`` samples."""
    returned = worst = 0
    generator = torch.Generator().manual_seed(1)
    for fed in range(1, flush_free_samples + 1):
        returned += feed(torch.randn(1, generator=generator) * 0.1)
        worst = max(worst, fed - returned)
    return worst


def to_denoiser(model: AdaSlimModel):
    """denoiser's Demucs holding an LSTM-bottleneck AdaSlimModel's weights (the inverse of convert_denoiser)."""
    from denoiser.demucs import Demucs

    config = model.config
    demucs = Demucs(chin=config.chin, chout=config.chout, hidden=config.hidden, depth=config.depth,
                    kernel_size=config.kernel_size, stride=config.stride, causal=config.causal,
                    resample=config.resample, growth=config.growth, max_hidden=config.max_hidden,
                    normalize=config.normalize, glu=config.glu, rescale=0, floor=config.floor,
                    sample_rate=config.sample_rate)
    names = {"conv_in": "0", "conv_out": "2", "conv_tr": "2"}
    state = {}
    for key, tensor in model.state_dict().items():
        parts = key.split(".")
        if parts[0] in ("encoder", "decoder"):
            parts[2] = names[parts[2]]
        elif parts[0] == "bottleneck":
            parts[0] = "lstm"
        else:
            continue  # the router has no place in Demucs
        state[".".join(parts)] = tensor
    demucs.load_state_dict(state)
    return demucs.eval()


def deviation(streamed: torch.Tensor, offline: torch.Tensor) -> dict:
    error = streamed - offline
    return {"max_abs": float(error.abs().max()), "relative_rms": float(error.norm() / offline.norm())}


def main(args) -> int:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    base = {"hidden": 8, "depth": 4} if args.smoke else {}
    seconds = 1.0 if args.smoke else args.seconds
    config = AdaSlimConfig(**base)
    noisy = speech(seconds, config.sample_rate)
    print(f"{seconds:g} s of audio in chunks of {args.chunk} samples, {args.threads} thread(s), torch "
          f"{torch.__version__}; config hidden={config.hidden} depth={config.depth} resample={config.resample}")

    # ---- part 1: every factor and the router, paper config ----
    model = AdaSlimModel(config).eval()
    routed = AdaSlimModel(config).eval()
    routed.load_state_dict(model.state_dict())
    with torch.no_grad():
        routed.router.projection.weight.mul_(5)
    rows = []
    runs = [(f"static {u:g}", model, u, {}) for u in config.utilization_factors]
    runs += [(f"static 1, resample_lookahead={args.lookahead}", model, 1.0, {"resample_lookahead": args.lookahead}),
             ("router (sharpened)", routed, "auto", {})]
    for label, network, utilization, options in runs:
        result = time_stream(AdaSlimStreamer(network, utilization=utilization, **options), noisy, args.chunk)
        result.pop("output")
        rows.append({"run": label, **result})
    print("\n| run | latency | chunk median | p95 | max | RTF wall | RTF CPU | mean u |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['run']} | {row['latency_samples']} ({row['latency_ms']:.1f} ms) | {row['chunk_ms_median']:.2f} ms "
              f"| {row['chunk_ms_p95']:.2f} ms | {row['chunk_ms_max']:.2f} ms | {row['rtf']:.3f} | {row['rtf_cpu']:.3f} "
              f"| {row['mean_utilization']:.3f} |")

    # ---- part 2: LSTM bottleneck beside DemucsStreamer on the same weights ----
    lstm_config = AdaSlimConfig(**base, bottleneck="lstm", normalize=False)
    lstm = AdaSlimModel(lstm_config).eval()
    comparison = []
    with torch.no_grad():
        offline = lstm(noisy[None], utilization=1.0).enhanced_values[0]
    variants = [
        ("AdaSlimStreamer 1.0, exact", {}),
        (f"AdaSlimStreamer 1.0, resample_lookahead={args.lookahead}", {"resample_lookahead": args.lookahead}),
    ]
    for label, options in variants:
        streamer = AdaSlimStreamer(lstm, utilization=1.0, **options)
        result = time_stream(streamer, noisy, args.chunk)
        streamer.reset()
        measured = measured_latency(lambda piece, s=streamer: s.feed(piece).shape[-1], 3 * streamer.latency)
        comparison.append({"streamer": label, "measured_latency_samples": measured,
                           **deviation(result.pop("output"), offline), **result})
    try:
        from denoiser.demucs import DemucsStreamer
    except ImportError:
        print("\ndenoiser is not installed: no DemucsStreamer row", file=sys.stderr)
        DemucsStreamer = None
    if DemucsStreamer is not None:
        demucs = to_denoiser(lstm)
        with torch.no_grad():
            reference = demucs(noisy[None, None])[0, 0]
            assert float((reference - offline).abs().max()) < 1e-4, "the weight copy does not reproduce the model"
            streamer = DemucsStreamer(demucs, num_frames=1)
            for piece in noisy[: config.sample_rate].split(args.chunk):  # warm-up, then a fresh streamer
                streamer.feed(piece[None])
            streamer = DemucsStreamer(demucs, num_frames=1)
            times, outputs = [], []
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            for piece in noisy.split(args.chunk):
                start = time.perf_counter()
                outputs.append(streamer.feed(piece[None]))
                times.append(time.perf_counter() - start)
            wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
            outputs.append(streamer.flush())
            streamed = torch.cat(outputs, dim=1)[0, : len(noisy)]
            fresh = DemucsStreamer(demucs, num_frames=1)
            measured = measured_latency(lambda piece: fresh.feed(piece[None]).shape[-1], 3 * fresh.total_length)
        times_ms = sorted(1000 * t for t in times)
        audio = len(noisy) / config.sample_rate
        comparison.append({
            "streamer": "denoiser DemucsStreamer(num_frames=1)", "measured_latency_samples": measured,
            **deviation(streamed, offline), "latency_samples": fresh.total_length,
            "latency_ms": 1000 * fresh.total_length / config.sample_rate,
            "chunk_ms_median": statistics.median(times_ms), "chunk_ms_p95": times_ms[int(0.95 * (len(times_ms) - 1))],
            "chunk_ms_max": times_ms[-1], "rtf": wall / audio, "rtf_cpu": cpu / audio, "mean_utilization": 1.0,
        })
    print("\nLSTM bottleneck, same weights, factor 1.0 (deviation: against the model's offline forward)")
    print("| streamer | latency held back (samples, ms) | chunk median | RTF wall | RTF CPU | max abs dev | rel RMS dev |")
    print("|---|---|---|---|---|---|---|")
    rate = config.sample_rate
    for row in comparison:
        print(f"| {row['streamer']} | {row['measured_latency_samples']} ({1000 * row['measured_latency_samples'] / rate:.1f}"
              f" ms) | {row['chunk_ms_median']:.2f} ms | {row['rtf']:.3f} | {row['rtf_cpu']:.3f} | {row['max_abs']:.2e} "
              f"| {row['relative_rms']:.2e} |")

    if args.json is not None:
        args.json.write_text(json.dumps({
            "seconds": seconds, "chunk": args.chunk, "threads": args.threads, "torch": torch.__version__,
            "config": {"hidden": config.hidden, "depth": config.depth}, "rows": rows, "comparison": comparison,
        }, indent=2, default=lambda value: float(value) if isinstance(value, np.floating) else str(value)))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
