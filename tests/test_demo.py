"""The web demo (adaslim_hf/demo.py) in a real browser: headless Chromium (Debian's ``chromium``, launched by
Playwright through ``executable_path``) against the app served on 127.0.0.1.

What a person does, and what the page must show:
- upload the bundled example, move the compute and dry knobs, press Enhance: the downloaded WAV is the
  pipeline's output for those settings, the picture is rendered, and the numbers on the page are the run's;
- the bundled example one click away, and the comparison view (auto against 1.0) with both runs' numbers;
- a recording from the microphone (Chromium's fake device plays the example) enhanced like an upload;
- bad input (no audio, not audio, an empty file, longer than the configured limit) and a failure inside the
  model: the message on the page, no traceback;
- the page loads nothing from outside this machine (the demo works offline).
Without the browser: a long stereo file at 22.05 kHz in chunks with progress, any save_pretrained folder, and
the `adaslim demo` entry.

The README's and the model card's screenshot (docs/demo.png) comes from the first test; it is written there
when ADASLIM_UPDATE_SCREENSHOT=1 (every run takes it, into the test's temporary folder otherwise).
Skipped without gradio, playwright or a chromium binary, except under CI (CI=true), where that fails.
"""

import io
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "noisy_example.wav"
SCREENSHOT = REPO / "docs" / "demo.png"
SCREENSHOT_MAX_BYTES = 300_000
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _missing() -> str | None:
    for module in ("gradio", "playwright", "pytest_playwright"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[test]')"
    if CHROMIUM is None:
        return "no chromium binary (apt-get install chromium; bash scripts/bootstrap.sh --dev does it)"
    return None


if _missing():
    if os.environ.get("CI"):
        raise RuntimeError(f"the browser tests cannot run in CI: {_missing()}")
    pytest.skip(_missing(), allow_module_level=True)

import soundfile

from adaslim_hf.demo import (
    DEFAULT_MAX_SECONDS,
    DemoEngine,
    format_macs,
    format_macs_per_second,
    format_rtf,
    format_utilization,
    launch_demo,
)

# ----------------------------------------------------------------------------------------------------
# The server and the browser
# ----------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, engine): the demo with the packaged model, served on 127.0.0.1 for this module."""
    engine = DemoEngine(work_dir=tmp_path_factory.mktemp("demo-runs"))  # the default input limit
    port = _free_port()
    demo = launch_demo(engine, host="127.0.0.1", port=port, block=False, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", engine
    finally:
        demo.close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # a fake microphone that plays the example (for the recording test); no permission prompt
    microphone = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={EXAMPLE}"]
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": [*browser_type_launch_args.get("args", []), *microphone]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1200, "height": 900}, "accept_downloads": True,
            "permissions": ["microphone"]}


@pytest.fixture
def app(page, served):
    """The page, loaded; requests to anything but 127.0.0.1 are refused and listed in ``page.external``."""
    url, engine = served
    page.external = []

    def route(request_route):
        if request_route.request.url.startswith("http://127.0.0.1:"):
            request_route.continue_()
        else:
            page.external.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.set_default_timeout(30_000)
    page.goto(url)
    page.wait_for_selector("#enhance")
    page.engine = engine
    return page


def upload(page, path: Path) -> None:
    page.locator("#input-audio input[type=file]").set_input_files(str(path))
    page.wait_for_selector("#input-audio button[aria-label=Clear]")  # shown once the upload is the value


def clear_input(page) -> None:
    clear = page.locator("#input-audio button[aria-label=Clear]")
    if clear.count():
        clear.first.click()
        page.wait_for_selector("#input-audio button[aria-label=Clear]", state="detached")


def press(page, button: str) -> dict:
    """Click a button and wait for the status line of that press; -> {"status": ok|error, "text": ...}."""
    before = page.locator("#status [data-run]").get_attribute("data-run")  # the server's answer counter
    page.click(button)
    page.wait_for_function(
        "before => { const line = document.querySelector('#status [data-run]'); "
        "return line && line.getAttribute('data-run') !== before; }", arg=before, timeout=60_000)
    line = page.locator("#status [data-run]")
    return {"status": line.get_attribute("data-status"), "text": line.inner_text()}


def choose(page, knob: str, value: str) -> None:
    page.locator(f"{knob} input[type=radio][value='{value}']").check()


def download(page, link: str) -> Path:
    """Click a download link or button; -> the downloaded file (Playwright's copy)."""
    with page.expect_download() as started:
        page.click(link)
    return Path(started.value.path())


def stats(page, box: str) -> dict:
    """{key: (shown text, exact value)} of a stats table."""
    cells = page.locator(f"{box} [data-stat]")
    return {cell.get_attribute("data-stat"): (cell.inner_text(), cell.get_attribute("data-value"))
            for cell in cells.all()}


def picture_size(page, box: str) -> tuple[int, int]:
    image = f"document.querySelector('{box} img')"
    page.wait_for_function(f"() => {{ const i = {image}; return i && i.complete && i.naturalWidth > 0; }}")
    return tuple(page.evaluate(f"() => {{ const i = {image}; return [i.naturalWidth, i.naturalHeight]; }}"))


def check_numbers(shown: dict, result: dict, seconds: float) -> None:
    """The page's numbers are those of the pipeline run with the same settings."""
    assert shown["utilization"] == (format_utilization(result["utilization"]), repr(result["utilization"]))
    assert shown["macs"] == (format_macs(result["macs"]), repr(result["macs"]))
    assert shown["macs-per-second"][0] == format_macs_per_second(result["macs"], seconds)
    rtf = float(shown["rtf"][1])
    assert 0 < rtf < 10
    assert shown["rtf"][0].startswith(format_rtf(rtf))


# ----------------------------------------------------------------------------------------------------
# The tests
# ----------------------------------------------------------------------------------------------------


def test_enhance_matches_the_pipeline(app, tmp_path):
    page, engine = app, app.engine
    seconds = soundfile.info(str(EXAMPLE)).duration
    upload(page, EXAMPLE)
    choose(page, "#utilization", "0.25")
    page.locator("#dry input[type=range]").fill("0.2")
    answer = press(page, "#enhance")
    assert answer["status"] == "ok", answer["text"]

    expected = engine.pipe(str(EXAMPLE), utilization=0.25, dry=0.2)
    assert page.locator("#download a[download]").get_attribute("download") == "noisy_example_enhanced.wav"
    downloaded = download(page, "#download a[download]").read_bytes()
    audio, rate = soundfile.read(io.BytesIO(downloaded), dtype="float32")
    assert rate == expected["sampling_rate"] == 16000
    assert audio.shape == expected["audio"].shape
    # the same pipeline on the same input; only thread-count-dependent float rounding may differ
    np.testing.assert_allclose(audio, expected["audio"], rtol=0, atol=1e-5)
    shown = stats(page, "#stats")
    assert shown["setting"][0] == "0.25, dry 0.2"
    check_numbers(shown, expected, seconds)
    assert picture_size(page, "#picture") == (1000, 330)
    assert download(page, "#output-audio button[aria-label=Download]").read_bytes() == downloaded  # the player's audio

    # back to the router, fully enhanced: the run the screenshot shows
    choose(page, "#utilization", "auto")
    page.locator("#dry input[type=range]").fill("0")
    answer = press(page, "#enhance")
    assert answer["status"] == "ok", answer["text"]
    routed = engine.pipe(str(EXAMPLE), utilization="auto")
    check_numbers(stats(page, "#stats"), routed, seconds)
    assert len(np.unique(routed["utilization_per_frame"])) > 1  # the trained router switches widths on speech
    picture_size(page, "#picture")
    assert page.external == []

    from PIL import Image

    raw = page.screenshot(full_page=True)
    image = Image.open(io.BytesIO(raw)).convert("RGB").quantize(colors=96, method=Image.Quantize.MEDIANCUT)
    target = SCREENSHOT if os.environ.get("ADASLIM_UPDATE_SCREENSHOT") == "1" else tmp_path / "demo.png"
    image.save(target, optimize=True)
    assert target.stat().st_size < SCREENSHOT_MAX_BYTES, f"screenshot {target.stat().st_size} bytes"


def test_example_one_click_and_comparison(app):
    page, engine = app, app.engine
    page.locator("#examples").get_by_text(EXAMPLE.name).click()
    page.wait_for_selector("#input-audio button[aria-label=Clear]")
    page.get_by_role("tab", name="Compare").click()
    choose(page, "#utilization-a", "auto")
    choose(page, "#utilization-b", "1")
    answer = press(page, "#compare")
    assert answer["status"] == "ok", answer["text"]
    seconds = soundfile.info(str(EXAMPLE)).duration
    for box, utilization in (("a", "auto"), ("b", 1.0)):
        result = engine.pipe(str(EXAMPLE), utilization=utilization)
        check_numbers(stats(page, f"#stats-{box}"), result, seconds)
        assert picture_size(page, f"#picture-{box}") == (1000, 330)
    assert "B costs" in answer["text"]
    assert page.external == []


def test_bad_input_shows_the_message(app, tmp_path, monkeypatch):
    page = app
    answer = press(page, "#enhance")  # nothing uploaded
    assert answer["status"] == "error" and answer["text"].startswith("No audio"), answer

    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these are meeting notes, not a recording\n")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    too_long = tmp_path / "long.wav"  # one second over the limit, quiet noise at 8 kHz (9.6 MB)
    seconds = DEFAULT_MAX_SECONDS + 1
    noise = np.random.default_rng(0).integers(-300, 300, int(seconds * 8000), dtype=np.int16)
    soundfile.write(str(too_long), noise, 8000, subtype="PCM_16")
    cases = [
        (not_audio, "notes.wav: not a readable audio file"),
        (empty, "empty.wav: empty (0 bytes)"),
        (too_long, f"long.wav: {seconds:.1f} s long; this demo accepts at most {DEFAULT_MAX_SECONDS:g} s"),
    ]
    for path, message in cases:
        clear_input(page)
        upload(page, path)
        answer = press(page, "#enhance")
        assert answer["status"] == "error", (path.name, answer)
        assert answer["text"].startswith(message), (path.name, answer["text"])
        assert "Traceback" not in page.content()
        assert page.locator("#stats [data-stat]").count() == 0  # no numbers of an earlier run linger

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure inside the model")

    monkeypatch.setattr(app.engine.pipe, "enhance_file", broken)  # a bug, not bad input: still a message
    clear_input(page)
    upload(page, EXAMPLE)
    answer = press(page, "#enhance")
    assert answer["status"] == "error"
    assert answer["text"].startswith("Enhancement failed (RuntimeError: simulated failure inside the model)")
    assert "Traceback" not in page.content()


def test_long_stereo_input_reports_progress(served, tmp_path):
    """Without the browser: a long stereo file at another rate runs in chunks, reports progress after each, and
    the written file is the pipeline's output (the page shows this run's progress through gr.Progress)."""
    _, engine = served
    rate, seconds = 22050, 20.0  # beyond the pipeline's single-chunk limit (12 s): 4 s chunks
    samples, _ = soundfile.read(str(EXAMPLE), dtype="float32")
    left = np.resize(samples, int(rate * seconds))  # the example tiled (at the wrong rate: any audio will do)
    path = tmp_path / "stereo.flac"
    soundfile.write(str(path), np.stack([left, 0.5 * left[::-1]], axis=1), rate, subtype="PCM_24")
    calls = []
    run = engine.enhance(str(path), "0.5", 0.1, progress=lambda fraction, done, total: calls.append((fraction, done)))
    assert len(calls) >= 3 and calls[-1][0] == 1.0
    assert all(b[0] >= a[0] for a, b in zip(calls, calls[1:]))
    expected = engine.pipe(str(path), utilization=0.5, dry=0.1)
    written, written_rate = soundfile.read(str(run.output), dtype="float32", always_2d=True)
    assert written_rate == rate and written.shape == (int(rate * seconds), 2)
    np.testing.assert_allclose(written.T, expected["audio"], rtol=0, atol=1e-5)
    assert run.channels == 2 and run.macs == expected["macs"] and run.picture.stat().st_size > 10_000


def test_microphone_recording(app, tmp_path):
    """Record from the (fake) microphone, enhance: the page's output is the pipeline's output for the recording
    the page holds (downloaded from the input player)."""
    page, engine = app, app.engine
    page.locator("#input-audio button[aria-label='Record audio']").click()
    page.locator("#input-audio").get_by_role("button", name="Record", exact=True).click()
    page.wait_for_timeout(1500)
    page.locator("#input-audio").get_by_role("button", name="Stop", exact=True).first.click()
    page.wait_for_selector("#input-audio button[aria-label=Clear]")
    answer = press(page, "#enhance")
    assert answer["status"] == "ok", answer["text"]
    recording = tmp_path / "recording.wav"
    shutil.copy(download(page, "#input-audio button[aria-label=Download]"), recording)
    enhanced, rate = soundfile.read(str(download(page, "#download a[download]")), dtype="float32")
    expected = engine.pipe(str(recording))
    assert rate == expected["sampling_rate"] and enhanced.shape == expected["audio"].shape
    assert enhanced.shape[0] > rate  # over a second recorded
    np.testing.assert_allclose(enhanced, expected["audio"], rtol=0, atol=1e-5)
    check_numbers(stats(page, "#stats"), expected, soundfile.info(str(recording)).duration)


def test_any_save_pretrained_folder_and_the_cli_entry(tmp_path):
    """The demo runs any save_pretrained folder (here a tiny untrained one) through the same pipeline; a folder
    that is not a model is refused with a message; `adaslim demo` parses to the demo, on 127.0.0.1 by default."""
    import torch

    from adaslim_hf import AdaSlimConfig, AdaSlimModel
    from adaslim_hf.cli import build_parser
    from adaslim_hf.demo import run_demo

    torch.manual_seed(0)
    folder = tmp_path / "tiny-model"
    AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).save_pretrained(folder)
    engine = DemoEngine(str(folder), work_dir=tmp_path / "runs")
    assert engine.describe_model().startswith(f"{folder}: 16000 Hz")
    run = engine.enhance(str(EXAMPLE), "0.5", 0.0)
    expected = engine.pipe(str(EXAMPLE), utilization=0.5)
    written = soundfile.read(str(run.output), dtype="float32")[0]
    np.testing.assert_allclose(written, expected["audio"], rtol=0, atol=1e-5)
    assert run.utilization == 0.5 and run.macs == expected["macs"]
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(ValueError, match="cannot load model"):
        DemoEngine(str(tmp_path / "not-a-model"))
    with pytest.raises(ValueError, match="no model folder at"):
        DemoEngine(str(tmp_path / "missing"))
    args = build_parser().parse_args(["demo", "--model", str(folder)])
    assert args.run is run_demo and args.host == "127.0.0.1" and args.port == 7860
