"""The web demo (Gradio): drop or record speech, turn the compute and strength knobs, listen before and after,
download the result, and see where the compute went.

    adaslim demo [--model M] [--port 7860] [--max-seconds 600]      # serves http://127.0.0.1:7860
    python space/app.py                                             # the same app, laid out as a Space

Two layers, so the numbers can be tested without a browser:

- ``DemoEngine`` (no Gradio): loads the pipeline once, checks an input (no audio, not audio, longer than
  ``max_seconds``: a ``ValueError`` with the pipeline's or the demo's message), runs
  ``SpeechEnhancementPipeline.enhance_file`` (chunked, bounded memory, a progress callback) into a float WAV,
  and draws the picture: the input's spectrogram with the router's factor per 16 ms frame over it.
- ``build_demo(engine)`` -> ``gr.Blocks``: input (upload or microphone) and the bundled examples; the compute
  knob ("auto" or a fixed factor) and the strength knob (``dry``); an "Enhance" tab (players, download,
  picture, MACs / mean utilization / real-time factor) and a "Compare" tab (the same input at two settings,
  side by side). Bad input shows its message in the status line, never a traceback.

``launch_demo`` serves it on 127.0.0.1 (unless told otherwise) with analytics off and system fonts only, so
the page works offline. Gradio and matplotlib are imported only when the demo is built.
"""

from __future__ import annotations

import argparse
import atexit
import html
import itertools
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_MAX_SECONDS = 600.0  # ten minutes: a few tens of seconds of CPU on one core at the default model's speed
DEFAULT_PORT = 7860
REPO_EXAMPLES = Path(__file__).resolve().parent.parent / "examples"  # present in a source checkout
EXAMPLE_PATTERN = "noisy*"
RUN_FOLDER_LIFETIME_S = 3600.0  # outputs of older runs are deleted when a new run starts
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Helvetica", "Arial", "sans-serif"]
SYSTEM_MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------
# Formatting (shared by the page and the tests, so both print a run the same way)
# ----------------------------------------------------------------------------------------------------


def format_utilization(value: float) -> str:
    return f"{value:.3f}"


def format_macs(macs: float) -> str:
    return f"{macs / 1e9:.3f} G"


def format_macs_per_second(macs: float, seconds: float) -> str:
    return f"{macs / seconds / 1e6:.1f} M/s"


def format_rtf(rtf: float) -> str:
    return f"{rtf:.3f}"


def parse_utilization(choice: str | float | None):
    """The compute knob's value -> the pipeline's ``utilization`` ("auto" or a float)."""
    from .configuration_adaslim import parse_utilization

    factor = parse_utilization(choice, what="the compute knob")
    return "auto" if factor is None else factor


# ----------------------------------------------------------------------------------------------------
# The engine: pipeline, input checks, runs, the picture
# ----------------------------------------------------------------------------------------------------


@dataclass
class DemoRun:
    """One enhancement: the float WAV written, the pipeline's summary, and how long it took."""

    output: Path
    picture: Path
    utilization: float  # mean factor over frames and channels
    utilization_per_frame: np.ndarray  # (frames,) or (channels, frames), as the pipeline returns it
    macs: float
    seconds: float  # audio duration
    wall_seconds: float  # the pipeline call, reading and writing included
    sampling_rate: int
    channels: int
    setting: str  # e.g. "auto, dry 0.1"

    @property
    def rtf(self) -> float:
        return self.wall_seconds / self.seconds


def _message(error: Exception, path: str | None) -> str:
    """An error's message with the upload's temporary folder left out (the file's name stays)."""
    text = str(error)
    if path:
        text = text.replace(str(path), Path(path).name)
    return text


class DemoEngine:
    """The demo without its page: one pipeline, checked inputs, runs into float WAVs, pictures.

    model: a ``save_pretrained`` folder, a Hub id, or None for the packaged default model. max_seconds: the
    longest input accepted (None: no limit). work_dir: where runs write (default: a fresh temporary folder).
    """

    def __init__(self, model: str | os.PathLike | None = None, *, max_seconds: float | None = DEFAULT_MAX_SECONDS,
                 work_dir: str | os.PathLike | None = None):
        from transformers import pipeline

        from .pipeline_adaslim import PACKAGED_MODEL, TASK

        if max_seconds is not None and not (max_seconds > 0 and math.isfinite(max_seconds)):
            raise ValueError(f"max_seconds must be a positive number of seconds or None, got {max_seconds!r}.")
        self.model_name = str(PACKAGED_MODEL if model is None else model)
        self.model_label = "the packaged default model" if model is None else self.model_name
        if model is not None:
            name = str(model)
            looks_like_path = name.startswith((os.sep, ".", "~")) or name.endswith(os.sep) or os.path.exists(name)
            if looks_like_path and not os.path.isdir(os.path.expanduser(name)):
                raise ValueError(f"no model folder at {name!r} (expected a save_pretrained folder or a Hub id "
                                 "'org/name').")
            self.model_name = os.path.expanduser(name) if looks_like_path else name
        try:
            self.pipe = pipeline(TASK, model=self.model_name)
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot load model {self.model_name!r}: {error}") from None
        self.config = self.pipe.model.config
        self.factors = [float(f) for f in self.config.utilization_factors]
        self.max_seconds = max_seconds
        if work_dir is None:  # ours: removed when the process exits
            work_dir = tempfile.mkdtemp(prefix="adaslim-demo-")
            atexit.register(shutil.rmtree, work_dir, ignore_errors=True)
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one model call at a time (the CPU is the limit anyway)

    # ---- the knobs ----

    def utilization_choices(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the compute knob: "auto" first, then every factor."""
        default = self.config.default_utilization
        auto = "auto (router decides)" if default is None else f"auto ({default:g}: router untrained)"
        return [(auto, "auto")] + [(f"{f:g}", f"{f:g}") for f in self.factors]

    def describe_model(self) -> str:
        factors = ", ".join(f"{f:g}" for f in self.factors)
        hop_ms = 1000 * self.config.router_hop / self.config.sampling_rate
        return (f"{self.model_label}: {self.config.sampling_rate} Hz, factors {factors}, "
                f"one router decision per {hop_ms:g} ms")

    # ---- input ----

    def check_input(self, path: str | None):
        """The input's ``AudioSource`` (header only), or a ValueError saying what is wrong with it."""
        from .audio_io import open_audio

        if path is None or (isinstance(path, str) and not path.strip()):
            raise ValueError("No audio: upload a file, record from the microphone or pick an example.")
        try:
            if os.path.isfile(path) and os.path.getsize(path) == 0:  # say "empty", not "format not recognised"
                source = open_audio(b"", name=Path(path).name)
            source = open_audio(path)
        except ValueError as error:  # AudioError: empty, not audio, truncated, ...
            raise ValueError(_message(error, path)) from None
        if self.max_seconds is not None and source.seconds > self.max_seconds:
            raise ValueError(
                f"{Path(path).name}: {source.seconds:.1f} s long; this demo accepts at most {self.max_seconds:g} s "
                "(set when it starts: `adaslim demo --max-seconds`, ADASLIM_MAX_SECONDS on a Space; "
                "`adaslim enhance` takes files of any length)."
            )
        return source

    # ---- a run ----

    def _run_folder(self) -> Path:
        """A new folder for one run's files; those of runs older than RUN_FOLDER_LIFETIME_S are deleted."""
        now = time.time()
        for old in self.work_dir.glob("run-*"):
            try:
                if now - old.stat().st_mtime > RUN_FOLDER_LIFETIME_S:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
        return Path(tempfile.mkdtemp(prefix="run-", dir=self.work_dir))

    def enhance(self, path: str | None, utilization="auto", dry: float = 0.0, progress=None) -> DemoRun:
        """Enhance one file with the pipeline (``enhance_file``: chunked, written as float WAV).
        progress(fraction, seconds_done, seconds_total) is called after each chunk. Bad input -> ValueError."""
        source = self.check_input(path)
        utilization = parse_utilization(utilization)
        folder = self._run_folder()
        output = folder / f"{Path(path).stem}_enhanced.wav"

        def report(seconds_done):
            if progress is not None:
                progress(min(seconds_done / source.seconds, 1.0), seconds_done, source.seconds)

        with self._lock:
            start = time.perf_counter()
            try:
                summary = self.pipe.enhance_file(path, output, utilization=utilization, dry=float(dry),
                                                 progress=report)
            except ValueError as error:
                raise ValueError(_message(error, path)) from None
            wall = time.perf_counter() - start
        setting = f"{'auto' if utilization == 'auto' else f'{utilization:g}'}, dry {float(dry):g}"
        run = DemoRun(output=output, picture=folder / "utilization.png", utilization=summary["utilization"],
                      utilization_per_frame=np.asarray(summary["utilization_per_frame"]), macs=summary["macs"],
                      seconds=source.seconds, wall_seconds=wall, sampling_rate=source.sampling_rate,
                      channels=source.channels, setting=setting)
        self.draw(path, run)
        return run

    # ---- the picture ----

    def draw(self, path: str, run: DemoRun) -> Path:
        """PNG of the input's spectrogram (channel 1) with the router's factor per frame drawn over it."""
        import matplotlib.patheffects as effects
        from matplotlib.figure import Figure  # no pyplot: no global state, safe in Gradio's worker threads

        from .audio_io import open_audio, spectrogram_db

        source = open_audio(path)
        rate = source.sampling_rate
        n_fft = 1 << max(8, round(math.log2(512 * rate / 16000)))
        spectrum, column_seconds = spectrogram_db(source, 0, n_fft, max_columns=1000)
        usage = np.asarray(run.utilization_per_frame, dtype=np.float32)
        usage = usage[0] if usage.ndim == 2 else usage
        frame_seconds = self.config.router_hop / self.config.sampling_rate
        per = max(1, math.ceil(usage.shape[0] / 800))  # long inputs: the mean per bucket of frames
        if per > 1:
            padded = np.pad(usage, (0, -usage.shape[0] % per), constant_values=np.nan)
            usage = np.nanmean(padded.reshape(-1, per), axis=1)
        step = per * frame_seconds
        times = np.arange(usage.shape[0] + 1) * step
        levels = np.interp(usage, self.factors, np.arange(len(self.factors)))  # one evenly spaced band per factor

        figure = Figure(figsize=(10, 3.3), dpi=100, layout="constrained")
        axis = figure.subplots()
        top = float(spectrum.max())
        axis.imshow(spectrum, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                    extent=(0, spectrum.shape[1] * column_seconds, 0, rate / 2000), interpolation="nearest")
        axis.set_xlim(0, source.seconds)
        axis.set_xlabel("time (s)")
        axis.set_ylabel("frequency (kHz)")
        twin = axis.twinx()
        twin.step(times, np.append(levels, levels[-1]), where="post", color="#3cf0ff", linewidth=1.6,
                  path_effects=[effects.Stroke(linewidth=3.4, foreground="black"), effects.Normal()])
        twin.set_ylim(-0.6, len(self.factors) - 0.4)
        twin.set_yticks(range(len(self.factors)))
        twin.set_yticklabels([f"{f:g}" for f in self.factors])
        twin.set_ylabel("utilization", color="#008fb3")
        twin.tick_params(axis="y", colors="#008fb3")
        channels = "" if source.channels == 1 else f", channel 1 of {source.channels}"
        unit = f"{frame_seconds * 1000:g} ms frame" if per == 1 else f"{step:.2f} s (mean)"
        axis.set_title(f"input{channels}; cyan: width per {unit}; {run.setting}; mean utilization "
                       f"{format_utilization(run.utilization)}", loc="left", fontsize=10)
        figure.savefig(run.picture)
        return run.picture


# ----------------------------------------------------------------------------------------------------
# The page
# ----------------------------------------------------------------------------------------------------


def stats_html(run: DemoRun) -> str:
    """The numbers of a run as a small table; each value carries ``data-stat`` (and the exact number in
    ``data-value``) so a test can read it back."""
    channels = "mono" if run.channels == 1 else f"{run.channels} channels"
    rows = [
        ("setting", "setting", run.setting, run.setting),
        ("mean utilization", "utilization", format_utilization(run.utilization), repr(run.utilization)),
        ("MACs", "macs", format_macs(run.macs), repr(run.macs)),
        ("MACs per second of audio", "macs-per-second", format_macs_per_second(run.macs, run.seconds),
         repr(run.macs / run.seconds)),
        ("real-time factor", "rtf", f"{format_rtf(run.rtf)} ({run.wall_seconds:.2f} s for {run.seconds:.2f} s)",
         repr(run.rtf)),
        ("input", "input", f"{run.seconds:.2f} s, {run.sampling_rate} Hz, {channels}", repr(run.seconds)),
    ]
    body = "".join(
        f'<tr><th>{html.escape(label)}</th><td data-stat="{key}" data-value="{html.escape(value)}">'
        f"{html.escape(text)}</td></tr>"
        for label, key, text, value in rows
    )
    return f'<table class="adaslim-stats">{body}</table>'


def status_html(text: str, error: bool = False, serial: int = 0) -> str:
    """The status line; ``data-run`` counts the presses answered, so a test can tell a new answer from an old one."""
    kind = "error" if error else "ok"
    return (f'<div class="adaslim-status adaslim-{kind}" data-status="{kind}" data-run="{serial}">'
            f"{html.escape(text)}</div>")


CSS = """
.adaslim-stats { border-collapse: collapse; font-size: 0.95em; }
.adaslim-stats th { text-align: left; padding: 2px 14px 2px 0; font-weight: 600; }
.adaslim-stats td { padding: 2px 0; font-variant-numeric: tabular-nums; }
.adaslim-status { padding: 6px 10px; border-radius: 6px; }
.adaslim-error { background: #fde8e8; color: #8a1c1c; border: 1px solid #f5b5b5; }
.adaslim-ok { color: #355; }
"""


def failure_message(error: Exception) -> str:
    """What the page says about a failed run: the message of a ValueError (bad input: the pipeline's or the
    demo's own words); for anything else the error's type and message, its traceback going to the server log."""
    if isinstance(error, ValueError):
        return str(error)
    logger.exception("enhancement failed")
    return f"Enhancement failed ({type(error).__name__}: {error}); the server log has the details."


def find_examples(folder: str | os.PathLike | None = None) -> list[Path]:
    """The bundled noisy examples (``examples/noisy*`` of a source checkout or of a Space)."""
    folder = Path(folder) if folder is not None else REPO_EXAMPLES
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(EXAMPLE_PATTERN) if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3"))


def build_demo(engine: DemoEngine, examples: list[str | os.PathLike] | None = None):
    """The Gradio page around ``engine``. examples: audio files offered one click away (default: the
    bundled ones). Returns a ``gr.Blocks``; serve it with ``launch_demo``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    examples = find_examples() if examples is None else [Path(p) for p in examples]
    choices = engine.utilization_choices()
    hop_ms = f"{1000 * engine.config.router_hop / engine.config.sampling_rate:g} ms"
    serial = itertools.count(1)

    def status(text: str, error: bool = False) -> str:
        return status_html(text, error, next(serial))

    def progress_callback(progress, offset=0.0, share=1.0, label=""):
        def report(fraction, done, total):
            progress(offset + share * fraction, desc=f"{label}enhancing: {done:.1f} of {total:.1f} s")
        return report

    def enhance(path, utilization, dry, progress=gr.Progress()):
        try:
            run = engine.enhance(path, utilization, dry, progress=progress_callback(progress))
        except Exception as error:  # noqa: BLE001 - the page gets a message, the server log the traceback
            return status(failure_message(error), error=True), None, None, None, ""
        done = f"Enhanced {run.seconds:.2f} s ({run.setting}) in {run.wall_seconds:.2f} s."
        return status(done), str(run.output), str(run.output), str(run.picture), stats_html(run)

    def compare(path, utilization_a, utilization_b, dry, progress=gr.Progress()):
        outputs, runs = [], []
        try:
            for index, utilization in enumerate((utilization_a, utilization_b)):
                label = "A: " if index == 0 else "B: "
                report = progress_callback(progress, index / 2, 0.5, label)
                run = engine.enhance(path, utilization, dry, progress=report)
                outputs += [str(run.output), str(run.picture), stats_html(run)]
                runs.append(run)
        except Exception as error:  # noqa: BLE001 - as in enhance
            return [status(failure_message(error), error=True)] + [None, None, ""] * 2
        summary = "; ".join(f"{name} ({run.setting}): {format_macs(run.macs)}MACs, mean utilization "
                            f"{format_utilization(run.utilization)}" for name, run in zip("AB", runs))
        summary += f"; B costs {runs[1].macs / runs[0].macs:.2f}x the MACs of A."
        return [status(summary)] + outputs

    # Gradio's copies of uploads and results: files older than the run folders' lifetime go, checked as often
    lifetime = int(RUN_FOLDER_LIFETIME_S)
    blocks = gr.Blocks(title="AdaSlim speech enhancement", analytics_enabled=False, delete_cache=(lifetime, lifetime))
    with blocks as demo:
        gr.Markdown(
            "# AdaSlim speech enhancement\n"
            f"Adaptive-slimming DEMUCS: a router picks the width of the network for every {hop_ms} of audio, so easy "
            "audio costs less compute. Upload a recording (any rate, mono or stereo) or record one, choose the "
            "compute (**auto** lets the router decide, a number fixes the width) and how much of the original to "
            "keep (**dry**), then **Enhance**. The picture shows where the compute went.\n\n"
            f"<small>{html.escape(engine.describe_model())}"
            + (f"; inputs up to {engine.max_seconds:g} s" if engine.max_seconds else "") + "</small>"
        )
        with gr.Row():
            with gr.Column(scale=3):
                noisy = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Input (before)",
                                 elem_id="input-audio")
                if examples:
                    gr.Examples(examples=[[str(p)] for p in examples], inputs=[noisy], label="Examples",
                                elem_id="examples")
            with gr.Column(scale=2):
                utilization = gr.Radio(choices, value="auto", label="Compute (utilization factor)",
                                       info=f"auto: the router picks a width per {hop_ms} frame; a number: every "
                                       "frame at that width", elem_id="utilization")
                dry = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="Dry (share of the original mixed back)",
                                info="0 = fully enhanced, 1 = the input unchanged", elem_id="dry")
        status_box = gr.HTML(status_html("Ready."), elem_id="status")
        with gr.Tabs():
            with gr.Tab("Enhance", id="enhance-tab"):
                button = gr.Button("Enhance", variant="primary", elem_id="enhance")
                with gr.Row():
                    with gr.Column(scale=3):
                        enhanced = gr.Audio(type="filepath", label="Output (after)", interactive=False,
                                            elem_id="output-audio")
                    with gr.Column(scale=2):
                        download = gr.File(label="Download (32-bit float WAV, the input's rate)",
                                           interactive=False, elem_id="download")
                        stats = gr.HTML("", elem_id="stats")
                picture = gr.Image(type="filepath", format="png", label="Input spectrogram and the router's "
                                   "choice per frame", show_label=False, interactive=False, elem_id="picture")
            with gr.Tab("Compare", id="compare-tab"):
                gr.Markdown("The same input at two settings, side by side (dry as set above).")
                compare_knobs = []
                with gr.Row():
                    for name, default in (("A", "auto"), ("B", f"{engine.factors[-1]:g}")):
                        with gr.Column():
                            knob = gr.Radio(choices, value=default, label=f"{name}: compute",
                                            elem_id=f"utilization-{name.lower()}")
                            compare_knobs.append(knob)
                compare_button = gr.Button("Compare A and B", variant="primary", elem_id="compare")
                compare_results = []
                with gr.Row():
                    for name in ("a", "b"):
                        with gr.Column():
                            compare_results += [
                                gr.Audio(type="filepath", label=f"{name.upper()}: output", interactive=False,
                                         elem_id=f"output-audio-{name}"),
                                gr.Image(type="filepath", format="png", label=f"{name.upper()}: where the compute "
                                         "went", show_label=False, interactive=False, elem_id=f"picture-{name}"),
                                gr.HTML("", elem_id=f"stats-{name}"),
                            ]
        button.click(enhance, inputs=[noisy, utilization, dry],
                     outputs=[status_box, enhanced, download, picture, stats], concurrency_id="model")
        compare_button.click(compare, inputs=[noisy, *compare_knobs, dry], outputs=[status_box, *compare_results],
                             concurrency_id="model")
    demo.adaslim_examples = examples  # launch_demo allows Gradio to serve these files
    return demo


def launch_demo(engine: DemoEngine | None = None, *, model=None, host: str = "127.0.0.1", port: int | None = None,
                max_seconds: float | None = DEFAULT_MAX_SECONDS, examples=None, block: bool = True,
                quiet: bool = False):
    """Build and serve the demo on ``host:port`` (127.0.0.1 by default: this machine only). Returns the
    ``gr.Blocks`` (serving in the background when ``block`` is False; ``.close()`` stops it)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    engine = engine or DemoEngine(model, max_seconds=max_seconds)
    demo = build_demo(engine, examples)
    allowed = sorted({str(Path(p).resolve().parent) for p in demo.adaslim_examples} | {str(engine.work_dir)})
    theme = gr.themes.Soft(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS)  # no web fonts: works offline
    demo.queue(default_concurrency_limit=1)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=quiet, share=False,
                show_error=False, allowed_paths=allowed, ssr_mode=False, mcp_server=False, theme=theme, css=CSS,
                max_file_size="500mb", footer_links=["gradio", "settings"])
    return demo


# ----------------------------------------------------------------------------------------------------
# `adaslim demo`
# ----------------------------------------------------------------------------------------------------


def add_demo_subcommand(subparsers) -> argparse.ArgumentParser:
    """Add ``demo`` to an ``argparse`` subparsers object; the namespace carries ``run=run_demo``."""
    parser = subparsers.add_parser(
        "demo", help="the web demo (Gradio) on http://127.0.0.1:PORT",
        description="Serve the web demo: upload or record, the compute and strength knobs, before/after players "
        "and download, the router's choice per frame over the spectrogram, and a side-by-side comparison. "
        "Needs gradio (pip install 'adaslim_hf[demo]'). Works offline with the packaged model.",
    )
    parser.add_argument("--model", default=None, help="model folder or Hub id (default: the packaged model)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                        help="longest input accepted, seconds (default %(default)g; 0 = no limit)")
    parser.add_argument("--examples", default=None, metavar="DIR",
                        help=f"folder with example files ({EXAMPLE_PATTERN}; default: the checkout's examples/)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice; 1 is faster on a busy machine)")
    parser.set_defaults(run=run_demo)
    return parser


def run_demo(args) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("adaslim demo: needs gradio: pip install 'adaslim_hf[demo]' (or bash scripts/bootstrap.sh --dev)",
              file=sys.stderr)
        return 2
    if args.threads is not None:
        if args.threads < 1:
            print(f"adaslim demo: --threads must be >= 1, got {args.threads}", file=sys.stderr)
            return 2
        import torch

        torch.set_num_threads(args.threads)
    try:
        engine = DemoEngine(args.model, max_seconds=args.max_seconds or None)
    except ValueError as error:
        print(f"adaslim demo: error: {error}", file=sys.stderr)
        return 2
    examples = find_examples(args.examples) if args.examples else None
    launch_demo(engine, host=args.host, port=args.port, examples=examples)
    return 0


__all__ = ["DemoEngine", "DemoRun", "add_demo_subcommand", "build_demo", "find_examples", "launch_demo"]
