"""``adaslim stream``: enhance a file the way a real-time stream would, or live from an audio device.

    adaslim stream IN OUT [--model M] [--utilization auto|U] [--max-utilization U] [--block-size N]
    adaslim stream --live [IN_DEVICE] [OUT_DEVICE] [--model M] [--seconds S] ...

File mode feeds IN to an ``AdaSlimStreamer`` block by block (``--block-size`` samples, default one router
frame) and writes what each block returns to OUT (atomically, never over IN, over an existing file only with
--overwrite), delayed internally by the streamer's fixed latency and trimmed back. What it equals:

- ``--normalization file``: the offline enhancement of IN (``model(IN)``), to float rounding: the stream
  divides by the whole file's standard deviation, read in a first pass, as the offline model does.
- ``--normalization running`` (the default, and all a live stream can do): the model without its input
  normalisation applied to ``IN / (floor + s_m)`` and multiplied by ``s_m``, s_m the standard deviation of the
  input up to sample m. It differs from the offline enhancement while s_m differs from the whole file's
  (mostly the first seconds; for the packaged models on examples/noisy_example.wav up to about 0.1 in
  amplitude, tests/test_streaming.py measures both statements).

IN must be at the model's sampling rate; a mono model streams each channel of a multi-channel file on its own.
``--guard`` turns on the real-time guard as if the blocks arrived in real time.

Live mode (``--live``) reads the input device and plays the enhanced audio on the output device through
sounddevice (PortAudio) until Ctrl-C or ``--seconds``, with the real-time guard on. Without sounddevice it
exits with a message saying what to install.

Both end with a report: latency, processing time against audio time, mean utilization, and how often the
budget cap and the guard lowered the factor. cli.py registers this with ``add_stream_subcommand(subparsers)``;
the parsed namespace carries ``run=run_stream`` (exit codes: 0 done, 1 failed while streaming, 2 unusable
arguments).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
THREADS_EVERY = 32  # blocks between two choices of the thread count (--threads auto)


def add_stream_subcommand(subparsers) -> argparse.ArgumentParser:
    """Add ``stream`` to an ``argparse`` subparsers object; the namespace carries ``run=run_stream``."""
    parser = subparsers.add_parser(
        "stream",
        help="stream a file (or a live audio device) through the model chunk by chunk",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", nargs="?", metavar="IN", help="input audio file (--live: input device, optional)")
    parser.add_argument("target", nargs="?", metavar="OUT", help="output audio file (--live: output device, optional)")
    parser.add_argument("--model", default=None, help="model folder or Hub id (default: the packaged model)")
    parser.add_argument("--utilization", default="auto",
                        help="'auto' (the router picks a width per frame as audio arrives) or one of the model's factors")
    parser.add_argument("--max-utilization", type=float, default=None, metavar="U",
                        help="compute budget: never run wider than the largest factor <= U")
    parser.add_argument("--dry", type=float, default=0.0, help="share of the input mixed back, 0..1 (default 0)")
    parser.add_argument("--block-size", type=int, default=None, metavar="N",
                        help="samples per chunk fed to the streamer (default: one router frame, 256 = 16 ms)")
    parser.add_argument("--resample-lookahead", type=int, default=None, metavar="K",
                        help="samples each sinc resampling stage waits for: 56 (default) is exact; fewer lowers "
                        "the latency by 3 samples each and approximates (20: 655 samples for the paper's model)")
    parser.add_argument("--guard", action="store_true",
                        help="file mode: real-time guard, as if blocks arrived in real time (always on with --live)")
    parser.add_argument("--live", action="store_true", help="read from and play to audio devices (needs sounddevice)")
    parser.add_argument("--seconds", type=float, default=None, help="--live: stop after this many seconds")
    parser.add_argument("--normalization", choices=("running", "file"), default="running",
                        help="file mode: 'running' (default, as live): divide by the std of the input so far; 'file': "
                        "by the whole file's std (a first pass), so that OUT equals the offline enhancement")
    parser.add_argument("--subtype", default="FLOAT", help="sample format of the output WAV (default FLOAT)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT (never IN)")
    from .cli_common import PRECISION_CHOICES, PRECISION_HELP, THREADS_HELP

    parser.add_argument("--threads", default="auto", help=THREADS_HELP.replace("per chunk", "now and then"))
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32", help=PRECISION_HELP)
    parser.set_defaults(run=run_stream)
    return parser


def _error(message: str, code: int = EXIT_USAGE) -> int:
    print(f"adaslim stream: error: {message}", file=sys.stderr)
    return code


def _load(args):
    """(model, description) through cli_common.load_model (folders, Hub ids, the packaged default)."""
    from .cli_common import UsageError, load_model

    try:
        model, _, description = load_model(args.model)
    except UsageError as error:
        raise ValueError(str(error)) from None
    return model, description


def _streamer_options(args) -> dict:
    """Streamer keyword arguments from the command line; ValueError for values the model cannot take."""
    from .configuration_adaslim import parse_utilization
    from .modeling_adaslim import SINC_ZEROS

    utilization = parse_utilization(args.utilization, what="--utilization")  # None: the router
    if args.block_size is not None and args.block_size < 1:
        raise ValueError(f"--block-size must be >= 1, got {args.block_size}.")
    return {"utilization": "auto" if utilization is None else utilization, "max_utilization": args.max_utilization,
            "dry": args.dry, "resample_lookahead": SINC_ZEROS if args.resample_lookahead is None else args.resample_lookahead,
            "precision": args.precision}


def run_stream(args: argparse.Namespace) -> int:
    """Run ``adaslim stream`` for parsed ``args``; returns the exit code."""
    if args.live:
        try:
            import sounddevice
        except (ImportError, OSError) as error:  # not installed, or PortAudio missing
            return _error(f"--live needs the sounddevice package and the PortAudio library ({error}); install "
                          "them with `pip install sounddevice` (and your system's libportaudio2), or stream a file: "
                          "adaslim stream IN OUT.")
    elif args.source is None or args.target is None:
        return _error("give IN and OUT audio files (or --live for audio devices).")
    from .cli_common import UsageError, parse_threads

    try:
        args.threads = parse_threads(args.threads)
    except UsageError as error:
        return _error(str(error))
    from .streaming import AdaSlimStreamer

    try:
        model, description = _load(args)
        options = _streamer_options(args)
        block = args.block_size or model.config.router_hop
        if args.live:
            streamer = AdaSlimStreamer(model, realtime_guard=True, **options)
            return _run_live(streamer, sounddevice, args, block, description)
        channels = _check_file(args, model)
        stds = _file_stds(args.source, channels) if args.normalization == "file" else [None] * channels
        streamers = [AdaSlimStreamer(model, realtime_guard=args.guard, input_std=std, **options) for std in stds]
    except ValueError as error:
        return _error(str(error))
    return _run_file(streamers, args, block, description)


def _file_stds(path, streams: int, block: int = 1 << 20) -> list[float | None]:
    """Standard deviation of each channel of the file (or of their mean, for a model taking every channel at
    once), Bessel-corrected as the model computes it, read block by block; None where the model does not
    normalise (the streamer ignores it then)."""
    from .audio_io import open_audio

    source = open_audio(path)
    count, total, squares = 0, np.zeros(streams), np.zeros(streams)
    shift = None
    for start in range(0, source.frames, block):
        samples = source.read(start, start + block).astype(np.float64)  # [channels, n]
        samples = samples if streams == source.channels else samples.mean(axis=0, keepdims=True)
        _check_finite(samples, path, start, source.sampling_rate)
        shift = samples[:, :1].copy() if shift is None else shift  # shifted sums: no cancellation for large DC
        total += (samples - shift).sum(axis=1)
        squares += ((samples - shift) ** 2).sum(axis=1)
        count += samples.shape[1]
    variance = (squares - total**2 / count) / max(count - 1, 1)
    return [float(np.sqrt(max(value, 0.0))) for value in variance]


def _check_finite(samples: np.ndarray, path, start: int, rate: int) -> None:
    """ValueError naming the file, channel and time of the first NaN or Inf sample of a block read at ``start``."""
    if np.isfinite(samples).all():
        return
    channel, index = np.argwhere(~np.isfinite(samples))[0]
    raise ValueError(f"{path}: contains NaN or Inf samples (first in channel {channel} near "
                     f"{(start + index) / rate:.3f} s); a waveform must be finite.")


def _check_file(args, model) -> int:
    """Streams needed for IN: one per channel for a mono model, one for a model of IN's channel count."""
    from .audio_io import open_audio

    source = open_audio(args.source)
    config = model.config
    if source.sampling_rate != config.sample_rate:
        raise ValueError(f"{args.source} is at {source.sampling_rate} Hz, the model streams at {config.sample_rate} "
                         "Hz; resample it first (or use `adaslim enhance`, which resamples).")
    if config.chin == 1:
        return source.channels
    if source.channels != config.chin:
        raise ValueError(f"{args.source} has {source.channels} channel(s), the model takes {config.chin}.")
    return 1


def _run_file(streamers, args, block: int, description: str) -> int:
    from .audio_io import AudioError, AudioWriter, open_audio

    source = open_audio(args.source)
    mono_model = streamers[0].config.chin == 1
    try:
        writer = AudioWriter(args.target, source.sampling_rate, source.channels, args.subtype,
                             protect=[args.source], overwrite=args.overwrite)
    except AudioError as error:
        return _error(str(error))
    import torch

    from .pipeline_adaslim import auto_threads

    started = time.perf_counter()
    previous_threads = torch.get_num_threads()
    try:
        with writer:
            for index, start in enumerate(range(0, source.frames, block)):
                if index % THREADS_EVERY == 0:  # 'auto': follow the machine's load as the stream goes
                    torch.set_num_threads(auto_threads(previous_threads) if args.threads == "auto" else args.threads)
                samples = source.read(start, start + block)  # [channels, n] float32
                _check_finite(samples, args.source, start, source.sampling_rate)
                writer.write(_step(streamers, samples, mono_model, flush=False))
            writer.write(_step(streamers, None, mono_model, flush=True))
    except (AudioError, ValueError) as error:
        return _error(str(error), EXIT_FAILED)
    finally:
        torch.set_num_threads(previous_threads)
    wall = time.perf_counter() - started
    print(f"wrote {args.target}: {source.frames / source.sampling_rate:.2f} s of audio in {wall:.2f} s")
    _report(streamers, description)
    return EXIT_OK


def _step(streamers, samples, mono_model: bool, flush: bool) -> np.ndarray:
    """Feed (or flush) every stream; -> [channels, n] float32."""
    if mono_model:
        outputs = [s.flush() if flush else s.feed(samples[index]) for index, s in enumerate(streamers)]
        return np.stack([np.asarray(out, dtype=np.float32) for out in outputs])
    out = streamers[0].flush() if flush else streamers[0].feed(samples)
    return np.asarray(out, dtype=np.float32).reshape(-1, np.asarray(out).shape[-1])


def _run_live(streamer, sounddevice, args, block: int, description: str) -> int:
    config = streamer.config
    device = (_device(args.source), _device(args.target))
    print(f"streaming live at {config.sample_rate} Hz, {block} samples per block, latency {streamer.latency} samples "
          f"({1000 * streamer.latency_seconds:.1f} ms) + the devices'; Ctrl-C stops", file=sys.stderr)
    played = 0
    limit = None if args.seconds is None else int(args.seconds * config.sample_rate)
    try:
        with sounddevice.Stream(device=device, samplerate=config.sample_rate, blocksize=block,
                                channels=(config.chin, config.chout), dtype="float32") as stream:
            while limit is None or played < limit:
                frames, _ = stream.read(block)  # [block, chin]
                out = streamer.feed(np.ascontiguousarray(frames.T))  # [chout, n]
                if out.shape[-1] < block:  # the first blocks: silence until the latency has passed
                    out = np.concatenate([np.zeros((config.chout, block - out.shape[-1]), np.float32), out], axis=-1)
                stream.write(np.ascontiguousarray(out.T))
                played += block
    except KeyboardInterrupt:
        pass
    except (sounddevice.PortAudioError, ValueError, OSError) as error:  # no such device, unsupported rate, ...
        return _error(f"audio device failed: {error}", EXIT_FAILED)
    _report([streamer], description)
    return EXIT_OK


def _device(name: str | None):
    """A device index when the argument is a number, else the name (sounddevice matches substrings)."""
    if name is None:
        return None
    return int(name) if name.isdigit() else name


def _report(streamers, description: str) -> None:
    stats = [s.stats for s in streamers]
    first = streamers[0]
    audio = sum(s["audio_seconds"] for s in stats)
    processing = sum(s["processing_seconds"] for s in stats)
    frames = sum(s["router_frames"] for s in stats)
    mean = sum(s["mean_utilization"] * s["router_frames"] for s in stats if s["router_frames"]) / max(frames, 1)
    mode = "router per frame" if first.routed else f"static {first.config.utilization_factors[first.static_index]:g}"
    lines = [
        f"model             {description}",
        f"mode              {mode}, latency {first.latency} samples ({1000 * first.latency_seconds:.1f} ms)",
        (f"processing        {processing:.2f} s for {audio:.2f} s of audio (real-time factor "
        f"{processing / max(audio, 1e-9):.3f})"),
        f"utilization       mean {mean:.3f} over {frames} router frames",
        f"budget cap        lowered {sum(s['capped_frames'] for s in stats)} frames",
        (f"real-time guard   {'on' if first.realtime_guard else 'off'}: stepped down "
        f"{sum(s['guard_steps'] for s in stats)} times, lowered {sum(s['guard_lowered_frames'] for s in stats)} frames"),
    ]
    print("\n".join(lines))


__all__ = ["add_stream_subcommand", "run_stream"]
