"""``adaslim stream``: enhance a file the way a real-time stream would, or live from an audio device.

    adaslim stream IN OUT [--model M] [--utilization auto|U] [--max-utilization U] [--block-size N]
    adaslim stream --live [IN_DEVICE] [OUT_DEVICE] [--model M] [--seconds S] ...

File mode feeds IN to an ``AdaSlimStreamer`` block by block (``--block-size`` samples, default one router
frame) and writes what each block returns to OUT (atomically, never over IN or an existing file): the
result equals the offline enhancement, delayed internally by the streamer's fixed latency and trimmed back.
IN must be at the model's sampling rate; a mono model streams each channel of a multi-channel file on its
own. ``--guard`` turns on the real-time guard as if the blocks arrived in real time.

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
    parser.add_argument("--subtype", default="FLOAT", help="sample format of the output WAV (default FLOAT)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT (never IN)")
    parser.set_defaults(run=run_stream)
    return parser


def _error(message: str, code: int = EXIT_USAGE) -> int:
    print(f"adaslim stream: error: {message}", file=sys.stderr)
    return code


def _load(args):
    """(model, description) through cli.load_model (folders, Hub ids, the packaged default)."""
    from .cli import UsageError, load_model

    try:
        model, _, description = load_model(args.model)
    except UsageError as error:
        raise ValueError(str(error)) from None
    return model, description


def _streamer_options(args) -> dict:
    """Streamer keyword arguments from the command line; ValueError for values the model cannot take."""
    from .modeling_adaslim import SINC_ZEROS

    if args.utilization.strip().lower() == "auto":
        utilization = "auto"
    else:
        try:
            utilization = float(args.utilization)
        except ValueError:
            raise ValueError(f"--utilization must be 'auto' or a number, got {args.utilization!r}.") from None
    if args.block_size is not None and args.block_size < 1:
        raise ValueError(f"--block-size must be >= 1, got {args.block_size}.")
    return {"utilization": utilization, "max_utilization": args.max_utilization, "dry": args.dry,
                "resample_lookahead": SINC_ZEROS if args.resample_lookahead is None else args.resample_lookahead}


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
    from .streaming import AdaSlimStreamer

    try:
        model, description = _load(args)
        options = _streamer_options(args)
        block = args.block_size or model.config.router_hop
        if args.live:
            streamer = AdaSlimStreamer(model, realtime_guard=True, **options)
            return _run_live(streamer, sounddevice, args, block, description)
        channels = _check_file(args, model)
        streamers = [AdaSlimStreamer(model, realtime_guard=args.guard, **options) for _ in range(channels)]
    except ValueError as error:
        return _error(str(error))
    return _run_file(streamers, args, block, description)


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
    started = time.perf_counter()
    try:
        with writer:
            for start in range(0, source.frames, block):
                samples = source.read(start, start + block)  # [channels, n] float32
                writer.write(_step(streamers, samples, mono_model, flush=False))
            writer.write(_step(streamers, None, mono_model, flush=True))
    except (AudioError, ValueError) as error:
        return _error(str(error), EXIT_FAILED)
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
