"""The ``adaslim`` command line: argparse subcommands mapped to functions.

    adaslim enhance IN... -o OUTDIR [--model M] [--utilization auto|U] [--dry D] [--plot] ...
    adaslim info [MODEL] [--json]
    adaslim export MODEL (--utilization U|all | --router) OUT    (cli_export.py)
    adaslim stream IN OUT [--model M] ... | --live               (cli_stream.py)
    adaslim evaluate --model M --output_dir D [--dataset ...]    (cli_evaluate.py)
    adaslim demo [--model M] [--port 7860]                      (demo.py: the web demo on 127.0.0.1)

enhance: files and folders, written atomically; info: parameters and MACs per second per factor; export:
ONNX graphs per factor and of the router; stream: chunk by chunk as a real-time stream would (or live from
an audio device); evaluate: metrics, MACs, utilization and speed per factor and routed, on a test set.

Each subcommand is an ``add_...(subparsers)`` function (its options; it sets ``run``) plus ``run_<name>(args)
-> exit code``; ``SUBCOMMANDS`` lists them (name, one-line help, where the add function lives), so a new one is
one more entry. Only the chosen subcommand's module is imported and its options built: ``adaslim --help``
imports neither torch nor transformers. Exit codes: 0 all went well, 1 some input failed (each failure is
reported and the others still run), 2 unusable arguments (unknown model, bad option value, output folder that
cannot be written), 128 + N when stopped by signal N (Ctrl-C, SIGTERM, SIGHUP: temporary files removed).

Threads: a command that runs the model picks torch's thread count per chunk from the cores no other process
is running on (``--threads auto``, the default; see ``pipeline_adaslim.auto_threads``), and, unless the
environment says otherwise, caps GNU OpenMP's busy-waiting (``GOMP_SPINCOUNT``) before torch is imported:
on a machine where another process holds a core, threads that spin while waiting for a thread without a core
made a call 10x slower and more (issue 25).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the module imports neither at load time (adaslim --help stays fast)

    from .modeling_adaslim import AdaSlimModel

# what the subcommand modules share lives in cli_common (they import it, not this module)
from .cli_common import (  # noqa: F401
    DEFAULT_MODEL,
    PRECISION_CHOICES,
    PRECISION_HELP,
    THREADS_HELP,
    UNTRAINED_SEED,
    UsageError,
    load_model,
    parse_threads,
)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".caf", ".w64", ".rf64", ".au"}
OUTPUT_SUFFIX = "_enhanced"
DEFAULT_CHUNK_SECONDS = 4.0  # SpeechEnhancementPipeline.default_chunk_length_s (test_cli checks they agree)
# GNU OpenMP's waiting threads spin this many times before they sleep (libgomp's default: 300,000, or far more
# with OMP_WAIT_POLICY=ACTIVE): long enough to catch the next parallel region of a busy call, short enough that
# a thread waiting for one that has no core gives its own core up within microseconds.
OPENMP_SPIN_COUNT = "10000"


# ----------------------------------------------------------------------------------------------------
# adaslim enhance
# ----------------------------------------------------------------------------------------------------


def add_enhance_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "enhance",
        help="enhance audio files and folders",
        description="Enhance speech in audio files (and audio files found in folders, recursively). Each output is "
        f"written atomically to OUTDIR as <name>{OUTPUT_SUFFIX}.wav (folder structure kept), at the input's rate, "
        "never over an input, and over an existing file only with --overwrite. OUTDIR is created when a file is "
        "written into it (not when every input fails).",
    )
    parser.add_argument("inputs", nargs="+", metavar="IN", help="audio files or folders")
    parser.add_argument("-o", "--output-dir", required=True, metavar="OUTDIR", help="folder for the enhanced files")
    parser.add_argument("--model", default=None, help="model folder or Hub id (default: the packaged model)")
    parser.add_argument("--utilization", default="auto",
                        help="'auto' (the router picks a width per frame) or one of the model's factors, e.g. 0.25")
    parser.add_argument("--dry", type=float, default=0.0, help="share of the input mixed back, 0..1 (default 0)")
    parser.add_argument("--plot", action="store_true",
                        help="also write <name>_enhanced.png: input/output spectrograms with the per-frame utilization")
    parser.add_argument("--batch-size", type=int, default=1, help="chunks per model call (default 1)")
    parser.add_argument("--chunk-seconds", type=float, default=DEFAULT_CHUNK_SECONDS,
                        help="seconds of audio per model call; memory grows with it (default %(default)s)")
    parser.add_argument("--context-seconds", type=float, default=None,
                        help="non-causal models only: left context per chunk, computed and discarded (default 3); "
                        "causal models carry their state from chunk to chunk and need none")
    parser.add_argument("--subtype", default="FLOAT",
                        help="sample format of the output WAV: FLOAT (default, never clips), PCM_16, PCM_24")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files (never inputs)")
    parser.add_argument("--threads", default="auto", help=THREADS_HELP)
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="fp32", help=PRECISION_HELP)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_enhance)


def collect_inputs(inputs: list[str], output_dir: Path) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """-> ([(input file, output file)], [(input, error)]). Folders are searched recursively for audio files
    (by extension), skipping OUTDIR when it lies inside them; files named explicitly are always tried."""
    jobs, failures, seen = [], [], {}
    output_root = output_dir.resolve()
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            root = path.resolve()
            found = []
            for folder, subfolders, files in os.walk(path):
                subfolders[:] = sorted(d for d in subfolders if (Path(folder) / d).resolve() != output_root
                                       or output_root == root)
                found += [Path(folder) / f for f in sorted(files) if Path(f).suffix.lower() in AUDIO_SUFFIXES
                          and not f.startswith(".")]
            if not found:
                failures.append((name, "no audio files found in this folder"))
            for file in found:
                relative = file.relative_to(path)
                jobs.append((file, output_dir / relative.parent / f"{relative.stem}{OUTPUT_SUFFIX}.wav"))
        elif path.exists():
            jobs.append((path, output_dir / f"{path.stem}{OUTPUT_SUFFIX}.wav"))
        else:
            failures.append((name, "no such file or folder"))
    unique = []
    for source, target in jobs:
        key = os.path.realpath(target)
        if key in seen:
            failures.append((str(source), f"its output {target} would also be written for {seen[key]}; rename one"))
            continue
        seen[key] = source
        unique.append((source, target))
    return unique, failures


class CreatedFolders:
    """Folders a command creates, so that those left empty (every input meant for them failed, or the command
    was stopped) are removed again: a failed run leaves the file system as it found it."""

    def __init__(self):
        self.created: list[Path] = []

    def make(self, folder: Path) -> None:
        """``folder.mkdir(parents=True, exist_ok=True)``, remembering each folder it creates."""
        missing = []
        for candidate in (folder, *folder.parents):
            if candidate.exists():
                break
            missing.append(candidate)
        folder.mkdir(parents=True, exist_ok=True)
        self.created += reversed(missing)

    def remove_empty(self) -> None:
        for folder in sorted(set(self.created), key=lambda path: len(path.parts), reverse=True):  # deepest first
            try:
                folder.rmdir()  # only succeeds when empty
            except OSError:
                pass


def _prepare_output_dir(output_dir: Path, folders: CreatedFolders) -> None:
    try:
        folders.make(output_dir)
    except OSError as error:
        raise UsageError(f"cannot create the output folder {output_dir}: {error.strerror or error}") from None
    if not output_dir.is_dir():
        raise UsageError(f"the output path {output_dir} exists and is not a folder")
    probe = output_dir / f".adaslim-write-test-{os.getpid()}"
    try:  # a real write: permission bits do not tell for root, read-only mounts or full disks
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as error:
        raise UsageError(f"the output folder {output_dir} is not writable ({error.strerror or error})") from None


def _without_name(message: str, source: Path) -> str:
    """Error messages of audio_io start with the file's name; the report names it already."""
    return message.removeprefix(f"{source}: ")


def _release_free_memory() -> None:
    """Hand the heap memory freed after a file back to the OS (glibc keeps it otherwise). Keeps the resident
    size between files, and when torch's interpreter shutdown maps in its libraries (~130 MB), near the
    size of the loaded model rather than that plus the largest chunk. A no-op off glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _duration(path: Path) -> float:
    from .audio_io import AudioError, open_audio

    try:
        return open_audio(path).seconds
    except (AudioError, OSError):
        return 0.0


def run_enhance(args) -> int:
    if not 0.0 <= args.dry <= 1.0 or math.isnan(args.dry):
        raise UsageError(f"--dry must be in [0, 1], got {args.dry}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    import soundfile

    if not soundfile.check_format("WAV", args.subtype):  # the writer would fall back to PCM_16 without a word
        raise UsageError(f"--subtype must be a WAV sample format (FLOAT, PCM_16, PCM_24, PCM_32, ...), "
                         f"got {args.subtype!r}")
    args.threads = parse_threads(args.threads)
    from .pipeline_adaslim import SpeechEnhancementPipeline

    output_dir = Path(args.output_dir)
    network, extractor, description = load_model(args.model)
    pipe = SpeechEnhancementPipeline(model=network, feature_extractor=extractor, device=-1)
    for option, parameter, value in (("--utilization", "utilization", args.utilization),
                                     ("--chunk-seconds", "chunk_length_s", args.chunk_seconds),
                                     ("--context-seconds", "context_s", args.context_seconds)):
        try:  # every option the pipeline checks, before any file is touched
            pipe._sanitize_parameters(**{parameter: value})
        except ValueError as error:
            raise UsageError(f"{option}: {error}") from None
    folders = CreatedFolders()
    try:
        return _enhance_all(args, pipe, network, description, output_dir, folders)
    finally:
        folders.remove_empty()


def _enhance_all(args, pipe, network, description: str, output_dir: Path, folders: CreatedFolders) -> int:
    _prepare_output_dir(output_dir, folders)
    jobs, failures = collect_inputs(args.inputs, output_dir)
    protected = [source for source, _ in jobs]

    from tqdm.auto import tqdm

    from .audio_io import AudioError

    durations = [_duration(source) for source, _ in jobs]
    bar = tqdm(total=sum(durations), unit="s", desc="enhancing", disable=args.quiet, file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]")
    done = 0
    for (source, target), seconds in zip(jobs, durations):
        bar.set_postfix_str(source.name, refresh=False)
        start = bar.n

        def progress(seconds_done, start=start):
            bar.update(max(0.0, start + seconds_done - bar.n))

        try:
            folders.make(target.parent)
            result = pipe.enhance_file(
                source, target, utilization=args.utilization, dry=args.dry, chunk_length_s=args.chunk_seconds,
                context_s=args.context_seconds, threads=args.threads, precision=args.precision,
                batch_size=args.batch_size,
                subtype=args.subtype, overwrite=args.overwrite, progress=progress, protect=protected,
            )
            line = (f"{source} -> {target}  utilization {result['utilization']:.3f}, "
                    f"{result['macs'] / 1e9:.2f} GMAC")
            if args.plot:
                png = target.with_suffix(".png")
                plot_enhancement(source, target, result["utilization_per_frame"], network.config, png,
                                 overwrite=args.overwrite)
                line += f", plot {png}"
            tqdm.write(line)
            done += 1
        except (ValueError, OSError) as error:  # AudioError and every input check are ValueErrors
            message = _without_name(str(error), source)
            if isinstance(error, AudioError) and message.endswith("refusing to overwrite it."):
                message += " Pass --overwrite to replace it."
            failures.append((str(source), message))
            tqdm.write(f"FAILED {source}: {failures[-1][1]}", file=sys.stderr)
        except Exception as error:  # noqa: BLE001 - one broken file must not stop the others; reported below
            failures.append((str(source), f"{type(error).__name__}: {error}"))
            tqdm.write(f"FAILED {source}: {failures[-1][1]}", file=sys.stderr)
        bar.update(max(0.0, start + seconds - bar.n))
        _release_free_memory()
    bar.close()
    print(f"enhanced {done} file(s) into {output_dir} with model {description}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} input(s) failed:", file=sys.stderr)
        for name, error in failures:
            print(f"  {name}: {error}", file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------------------------------
# The plot
# ----------------------------------------------------------------------------------------------------


def plot_enhancement(noisy_path, enhanced_path, utilization_per_frame, config, png_path, overwrite: bool = False):
    """PNG of the input and output spectrograms (channel 1) with the router's per-frame utilization drawn
    over both (right axis, one step per decision; averaged per pixel column on long files)."""
    import matplotlib
    import numpy as np

    from .audio_io import AudioError, open_audio, spectrogram_db

    matplotlib.use("Agg")
    import matplotlib.patheffects as effects
    import matplotlib.pyplot as plt

    png_path = Path(png_path)
    if png_path.exists() and not overwrite:
        raise AudioError(f"{png_path}: already exists; refusing to overwrite it.")
    noisy, enhanced = open_audio(noisy_path), open_audio(enhanced_path)
    rate = noisy.sampling_rate
    n_fft = 1 << max(8, round(math.log2(512 * rate / 16000)))
    spectra = [spectrogram_db(audio, 0, n_fft, 1600) for audio in (noisy, enhanced)]
    top = max(float(s.max()) for s, _ in spectra)
    usage = np.asarray(utilization_per_frame, dtype=np.float32)
    usage = usage[0] if usage.ndim == 2 else usage
    frame_seconds = config.router_hop / config.sampling_rate
    times = np.arange(usage.shape[0]) * frame_seconds
    label = f"utilization per {frame_seconds * 1000:.0f} ms frame"
    if usage.shape[0] > 2000:  # too many decisions for the pixels: show the mean per bucket
        per = math.ceil(usage.shape[0] / 2000)
        padded = np.pad(usage, (0, -usage.shape[0] % per), constant_values=np.nan)
        usage = np.nanmean(padded.reshape(-1, per), axis=1)
        times = np.arange(usage.shape[0]) * per * frame_seconds
        label = f"mean utilization per {per * frame_seconds:.2f} s"
    factors = list(config.utilization_factors)
    levels = np.interp(usage, factors, np.arange(len(factors)))  # one evenly spaced band per factor
    chosen = np.asarray(utilization_per_frame, dtype=np.float32)
    mean = float(chosen[chosen > 0].mean()) if (chosen > 0).any() else float("nan")

    figure, axes = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True, constrained_layout=True)
    duration = noisy.seconds
    channels = "" if noisy.channels == 1 else f" (channel 1 of {noisy.channels})"
    step = times[1] - times[0] if len(times) > 1 else frame_seconds
    for axis, (spectrum, seconds), title in zip(axes, spectra, ("input (noisy)", "output (enhanced)")):
        image = axis.imshow(spectrum, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                            extent=(0, spectrum.shape[1] * seconds, 0, rate / 2000), interpolation="nearest")
        axis.set_ylabel("frequency (kHz)")
        axis.set_title(f"{title}{channels}", loc="left", fontsize=11)
        twin = axis.twinx()
        twin.step(np.append(times, times[-1] + step), np.append(levels, levels[-1]), where="post", color="#3cf0ff",
                  linewidth=1.6, path_effects=[effects.Stroke(linewidth=3.4, foreground="black"), effects.Normal()])
        twin.set_ylim(-0.6, len(factors) - 0.4)
        twin.set_yticks(range(len(factors)))
        twin.set_yticklabels([f"{f:g}" for f in factors])
        twin.set_ylabel("utilization", color="#008fb3")
        twin.tick_params(axis="y", colors="#008fb3")
    axes[0].set_xlim(0, duration)
    axes[1].set_xlabel("time (s)")
    figure.colorbar(image, ax=axes, label="level (dB, relative)", pad=0.01, shrink=0.9, aspect=30)
    factor_list = "/".join(f"{f:g}" for f in factors)
    figure.suptitle(
        f"{Path(noisy_path).name}: mean utilization {mean:.3f} (factors {factor_list})\n"
        f"cyan line, right axis: width the router chose, {label}",
        fontsize=11,
    )
    temporary = png_path.with_name(f".{png_path.name}.tmp.png")
    try:
        figure.savefig(temporary, dpi=110)
        os.replace(temporary, png_path)
    finally:
        plt.close(figure)
        if temporary.exists():
            temporary.unlink()
    return png_path


# ----------------------------------------------------------------------------------------------------
# adaslim info
# ----------------------------------------------------------------------------------------------------


def add_info_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "info", help="parameters, MACs per second of audio per factor, router overhead",
        description="Describe a model: its architecture, parameter counts, MACs per second of audio at each static "
        "utilization factor, and what the router adds.",
    )
    parser.add_argument("model", nargs="?", default=None, metavar="MODEL",
                        help="model folder or Hub id (default: the packaged model)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.set_defaults(run=run_info)


def model_info(network: AdaSlimModel) -> dict:
    """Parameters and compute of a model, as plain numbers."""
    from . import macs

    config = network.config
    rate = config.sampling_rate
    parameters = macs.count_parameters(network)
    per_factor = []
    for factor in config.utilization_factors:
        parts = macs.macs_per_sample(config, factor, router=False)
        per_factor.append({"utilization": factor, **{f"{key}_per_second": value * rate for key, value in parts.items()}})
    router = macs.router_macs_per_frame(config) / config.router_hop * rate
    full = per_factor[-1]["total_per_second"]
    return {
        "sample_rate": rate,
        "router_hop_samples": config.router_hop,
        "utilization_factors": list(config.utilization_factors),
        "parameters": parameters,
        "macs_per_second": per_factor,
        "router_macs_per_second": router,
        "router_macs_percent_of_full_width": 100.0 * router / full,
    }


def run_info(args) -> int:
    network, _, description = load_model(args.model)
    info = model_info(network)
    if args.json:
        print(json.dumps({"model": description, **info}, indent=2))
        return 0
    config = network.config
    p = info["parameters"]
    bottleneck = (f"grouped GRU ({config.bottleneck_groups} groups, {config.bottleneck_layers} layer)"
                  if config.bottleneck == "gru" else f"LSTM ({config.bottleneck_layers} layers)")
    rate, hop = info["sample_rate"], config.router_hop
    architecture = (f"{'causal' if config.causal else 'non-causal'} DEMUCS: hidden={config.hidden} depth={config.depth} "
                    f"kernel={config.kernel_size} stride={config.stride} resample={config.resample}, {bottleneck} bottleneck")
    counts = (f"backbone {p['backbone']:,} + router {p['router']:,} ({p['router_percent']:.2f} % of the backbone) "
              f"= {p['total']:,}")
    lines = [
        f"model         {description}",
        f"backbone      {architecture}",
        f"sample rate   {rate} Hz; one router decision per {hop} samples ({1000 * hop / rate:.1f} ms)",
        f"parameters    {counts}",
        "",
        "MACs per second of audio, static factor (steady state; millions):",
        f"  {'factor':>7} {'convs':>10} {'bottleneck':>11} {'resampling':>11} {'total':>10} {'vs full':>8}",
    ]
    full = info["macs_per_second"][-1]["total_per_second"]
    for row in info["macs_per_second"]:
        lines.append(
            f"  {row['utilization']:>7g} {row['conv_per_second'] / 1e6:>10.1f} {row['bottleneck_per_second'] / 1e6:>11.1f} "
            f"{row['resampling_per_second'] / 1e6:>11.1f} {row['total_per_second'] / 1e6:>10.1f} "
            f"{row['total_per_second'] / full:>8.3f}"
        )
    router = (f"router overhead: {info['router_macs_per_second'] / 1e6:.3f} M MACs per second "
              f"({info['router_macs_percent_of_full_width']:.3f} % of full width), spent only with --utilization auto, "
              "which then runs each frame at the factor the router picks.")
    lines += ["", router]
    print("\n".join(lines))
    return 0


# ----------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------


# name -> (one-line help for the command list, "module:function" that adds its parser). A new subcommand is one
# more entry; its module is imported only when the command is the one run (or by build_parser() without
# arguments), so `adaslim --help` stays fast.
SUBCOMMANDS = {
    "enhance": ("enhance audio files and folders", ".cli:add_enhance_parser"),
    "info": ("parameters, MACs per second of audio per factor, router overhead", ".cli:add_info_parser"),
    "export": ("write ONNX graphs (one per static utilization factor, and the router)",
               ".cli_export:add_export_subcommand"),
    "stream": ("stream a file (or a live audio device) through the model chunk by chunk",
               ".cli_stream:add_stream_subcommand"),
    "evaluate": ("metrics, MACs, utilization and speed per factor and routed, on a test set",
                 ".cli_evaluate:add_evaluate_subcommand"),
    "demo": ("the web demo (Gradio) on http://127.0.0.1:PORT", ".demo:add_demo_subcommand"),
}


def _add_subcommand(subparsers, name: str) -> None:
    module, function = SUBCOMMANDS[name][1].split(":")
    getattr(importlib.import_module(module, __package__), function)(subparsers)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``adaslim`` parser. ``command``: build only that subcommand's options (the others are listed by name
    and help, which is all ``adaslim --help`` shows; a name that is no subcommand builds none); None builds
    every subcommand."""
    parser = argparse.ArgumentParser(prog="adaslim", description="Adaptive-slimming DEMUCS speech enhancement.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (summary, _) in SUBCOMMANDS.items():
        if command is None or name == command:
            _add_subcommand(subparsers, name)
        else:
            subparsers.add_parser(name, help=summary, add_help=False)
    return parser


# commands that run the model over audio: they keep freed memory for reuse (adaslim_hf.memory)
REUSES_FREED_MEMORY = ("enhance", "evaluate", "stream")
# signals that stop a command the way Ctrl-C does: temporary files removed, exit code 128 + N
STOP_SIGNALS = ("SIGTERM", "SIGHUP")


class Stopped(BaseException):
    """Raised in the main thread when a stop signal arrives. A BaseException, as KeyboardInterrupt is, so that
    no ``except Exception`` (one failed file must not stop the others) swallows it; the ``with`` blocks it
    unwinds remove their temporary files."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum, _frame):
    raise Stopped(signum)


def limit_openmp_spinning(environ=os.environ, modules=sys.modules) -> bool:
    """Before torch is imported: unless the environment already chooses (GOMP_SPINCOUNT, OMP_WAIT_POLICY), let
    GNU OpenMP's idle threads spin only OPENMP_SPIN_COUNT times before sleeping. libgomp reads this once, when
    torch loads it; afterwards it has no effect (then False is returned, as when the user chose)."""
    if "torch" in modules or "GOMP_SPINCOUNT" in environ or "OMP_WAIT_POLICY" in environ:
        return False
    environ["GOMP_SPINCOUNT"] = OPENMP_SPIN_COUNT
    return True


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in argv if not word.startswith("-")), None)
    if command in SUBCOMMANDS:
        limit_openmp_spinning()
    args = build_parser(command or "").parse_args(argv)  # an unknown command: argparse lists the known ones
    args.argv = argv  # the command line, for reports that record it
    from . import register

    register()  # the Auto classes and the pipeline task, as `import adaslim_hf` does outside this command
    if args.command in REUSES_FREED_MEMORY:
        from .memory import reuse_freed_memory

        reuse_freed_memory()  # the process is ours: keep freed tensors' memory (adaslim_hf.memory)
    previous = {}
    if threading_is_main():
        for name in STOP_SIGNALS:
            if hasattr(signal, name):
                previous[name] = signal.signal(getattr(signal, name), _raise_stopped)
    try:
        return args.run(args)
    except UsageError as error:
        print(f"adaslim {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Stopped as stop:
        print(f"stopped by {signal.Signals(stop.signum).name}", file=sys.stderr)
        return 128 + stop.signum
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


def threading_is_main() -> bool:
    """Signal handlers can only be installed from the main thread (main() may run elsewhere, e.g. in tests)."""
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
