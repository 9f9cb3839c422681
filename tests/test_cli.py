"""The ``adaslim`` command line (adaslim_hf/cli.py), run in-process through ``main([...])`` with a tiny saved
model: ``enhance`` writes what the pipeline computes in memory, at the input's rate and channels, for files
and folders (searched recursively, structure kept); it never overwrites without --overwrite, reports a
missing input and goes on, and refuses bad options (exit 2) before writing anything. ``info --json``; the
packaged default model and its untrained fallback; the ``stream`` and ``evaluate`` subcommands are wired
(their behaviour is tested in test_streaming.py and test_evaluation.py); the installed console script."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from adaslim_hf import AdaSlimConfig, AdaSlimModel, SpeechEnhancementPipeline, cli, cli_common, macs
from adaslim_hf.cli import main

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "noisy_example.wav"  # 5.3 s, 16 kHz mono
TINY = {"hidden": 8, "depth": 5}

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "tiny"
    torch.manual_seed(0)
    AdaSlimModel(AdaSlimConfig(**TINY)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pipe(tiny):
    return SpeechEnhancementPipeline(model=AdaSlimModel.from_pretrained(tiny).eval())


@pytest.fixture(scope="module")
def example() -> np.ndarray:
    samples, rate = sf.read(EXAMPLE, dtype="float32")
    assert rate == 16000 and samples.ndim == 1
    return samples


def short_clip(example, path: Path, seconds=0.5, rate=16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, example[: int(seconds * rate)], rate)
    return path


def enhance(tiny, *arguments) -> int:
    return main(["enhance", *map(str, arguments), "--model", str(tiny), "-q"])


def read(path: Path) -> tuple[np.ndarray, int]:
    """-> ([channels, samples] float32, rate)."""
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    return samples.T, rate


# ----------------------------------------------------------------------------------------------------
# adaslim enhance
# ----------------------------------------------------------------------------------------------------


def test_enhance_writes_the_pipeline_result_at_the_input_rate_and_channels(tiny, pipe, example, tmp_path, capsys):
    stereo = tmp_path / "in" / "stereo.flac"  # 22.05 kHz, two different channels
    stereo.parent.mkdir()
    sf.write(stereo, np.stack([example, 0.5 * example[::-1]]).T, 22050, subtype="PCM_24")
    out = tmp_path / "out"
    assert enhance(tiny, EXAMPLE, stereo, "-o", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["noisy_example_enhanced.wav", "stereo_enhanced.wav"]
    for source, target, rate, channels in ((EXAMPLE, out / "noisy_example_enhanced.wav", 16000, 1),
                                           (stereo, out / "stereo_enhanced.wav", 22050, 2)):
        written, written_rate = read(target)
        expected = pipe(str(source))["audio"].reshape(channels, -1)
        assert written_rate == rate and written.shape == expected.shape == (channels, sf.info(source).frames)
        assert np.abs(written - expected).max() < 1e-5
    printed = capsys.readouterr()
    assert f"{EXAMPLE} -> {out / 'noisy_example_enhanced.wav'}" in printed.out
    assert f"enhanced 2 file(s) into {out} with model {tiny}" in printed.err


def test_enhance_searches_folders_recursively_and_keeps_their_structure(tiny, example, tmp_path):
    folder = tmp_path / "recordings"
    short_clip(example, folder / "a.wav")
    short_clip(example, folder / "day1" / "late" / "b.flac")
    short_clip(example, folder / "day1" / ".hidden.wav")
    (folder / "day1" / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    assert enhance(tiny, folder, "-o", out) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a_enhanced.wav", os.path.join("day1", "late", "b_enhanced.wav")]
    assert read(out / "day1" / "late" / "b_enhanced.wav")[0].shape == (1, 8000)


def test_existing_outputs_are_kept_unless_overwrite(tiny, example, tmp_path, capsys):
    source = short_clip(example, tmp_path / "take.wav")
    target = tmp_path / "out" / "take_enhanced.wav"
    target.parent.mkdir()
    target.write_bytes(b"keep me")
    assert enhance(tiny, source, "-o", tmp_path / "out") == 1
    assert target.read_bytes() == b"keep me"
    assert "already exists" in capsys.readouterr().err
    assert enhance(tiny, source, "-o", tmp_path / "out", "--overwrite") == 0
    assert read(target)[0].shape == (1, 8000)


def test_a_missing_input_is_reported_and_the_others_still_enhanced(tiny, example, tmp_path, capsys):
    missing = tmp_path / "missing.wav"
    source = short_clip(example, tmp_path / "good.wav")
    assert enhance(tiny, missing, source, "-o", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert f"{missing}: no such file or folder" in err and "1 input(s) failed" in err
    assert (tmp_path / "out" / "good_enhanced.wav").is_file()


@pytest.mark.parametrize("option", [("--dry", "2"), ("--threads", "0"), ("--utilization", "0.3"),
                                    ("--batch-size", "0"), ("--chunk-seconds", "0"),
                                    ("--subtype", "PCM_99")])
def test_bad_option_values_exit_2_naming_the_option_before_writing(tiny, example, tmp_path, capsys, option):
    source = short_clip(example, tmp_path / "in.wav")
    threads = torch.get_num_threads()
    assert enhance(tiny, source, "-o", tmp_path / "out", *option) == 2
    err = capsys.readouterr().err
    assert f"adaslim enhance: error: {option[0]}" in err and option[1] in err.splitlines()[-1], err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert torch.get_num_threads() == threads


def test_unknown_model_exits_2_with_a_clear_message(tmp_path, example, capsys):
    source = short_clip(example, tmp_path / "in.wav")
    assert main(["enhance", str(source), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "nope")]) == 2
    assert f"no model folder at {str(tmp_path / 'nope')!r}" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["enhance", str(source), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert f"adaslim enhance: error: cannot load model {str(tmp_path / 'empty')!r}" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_static_utilization_and_plot(tiny, pipe, example, tmp_path, capsys):
    source = short_clip(example, tmp_path / "in.wav", seconds=2.0)
    out = tmp_path / "out"
    assert enhance(tiny, source, "-o", out, "--utilization", "0.25", "--plot") == 0
    assert "utilization 0.250" in capsys.readouterr().out
    written, _ = read(out / "in_enhanced.wav")
    assert np.abs(written[0] - pipe(str(source), utilization=0.25)["audio"]).max() < 1e-5
    png = (out / "in_enhanced.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert sorted(p.name for p in out.iterdir()) == ["in_enhanced.png", "in_enhanced.wav"]  # no temporaries


# ----------------------------------------------------------------------------------------------------
# adaslim info, and the default model
# ----------------------------------------------------------------------------------------------------


def info_json(capsys, *arguments) -> tuple[dict, str]:
    assert main(["info", *map(str, arguments), "--json"]) == 0
    printed = capsys.readouterr()
    return json.loads(printed.out), printed.err


def test_info_json_has_the_macs_per_factor(tiny, capsys):
    info, _ = info_json(capsys, tiny)
    config = AdaSlimConfig.from_pretrained(tiny)
    assert info["model"] == str(tiny) and info["sample_rate"] == 16000
    assert info["utilization_factors"] == list(config.utilization_factors)
    rows = info["macs_per_second"]
    assert [row["utilization"] for row in rows] == list(config.utilization_factors)
    for row in rows:
        expected = macs.macs_per_sample(config, row["utilization"], router=False)["total"] * 16000
        assert row["total_per_second"] == pytest.approx(expected)
    totals = [row["total_per_second"] for row in rows]
    assert totals == sorted(set(totals))  # wider costs more
    assert info["parameters"]["total"] == sum(p.numel() for p in AdaSlimModel.from_pretrained(tiny).parameters())


def test_default_model_untrained_warning_when_none_is_packaged(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli_common, "DEFAULT_MODEL", tmp_path / "not-packaged")
    info, err = info_json(capsys)
    assert "WARNING: no trained weights at" in err and "RANDOMLY INITIALISED" in err and "NOT enhanced speech" in err
    assert info["model"].startswith("UNTRAINED")
    assert info["utilization_factors"] == list(AdaSlimConfig().utilization_factors)


def test_default_model_is_loaded_when_packaged(monkeypatch, tiny, capsys):
    monkeypatch.setattr(cli_common, "DEFAULT_MODEL", tiny)
    info, err = info_json(capsys)
    assert "WARNING" not in err and info["model"] == str(tiny)
    assert info["parameters"] == info_json(capsys, tiny)[0]["parameters"]


# ----------------------------------------------------------------------------------------------------
# Wiring: stream, evaluate, the console script
# ----------------------------------------------------------------------------------------------------


def test_stream_subcommand_writes_a_file(tiny, example, tmp_path):
    source = short_clip(example, tmp_path / "in.wav")
    assert main(["stream", str(source), str(tmp_path / "out.wav"), "--model", str(tiny)]) == 0
    written, rate = read(tmp_path / "out.wav")
    assert rate == 16000 and written.shape == (1, 8000) and np.isfinite(written).all()


def test_precision_bf16_in_enhance_and_stream_equals_the_pipeline_and_streamer(tiny, pipe, example, tmp_path):
    """--precision bf16 reaches the pipeline (enhance) and the streamer (stream): the files equal their bf16
    results, which differ from float32's (bf16 ran) by at most 1%."""
    from adaslim_hf.cli_common import PRECISION_CHOICES
    from adaslim_hf.products import PRECISIONS
    from adaslim_hf.streaming import AdaSlimStreamer

    assert PRECISION_CHOICES == tuple(PRECISIONS)  # the CLI's torch-free copy of the choices
    source = short_clip(example, tmp_path / "in.wav")
    assert enhance(tiny, source, "-o", tmp_path / "out", "--precision", "bf16") == 0
    written, _ = read(tmp_path / "out" / "in_enhanced.wav")
    expected = pipe(str(source), precision="bf16")["audio"].reshape(1, -1)
    full = pipe(str(source))["audio"].reshape(1, -1)
    assert np.abs(written - expected).max() < 1e-5
    assert 0 < np.linalg.norm(expected - full) / np.linalg.norm(full) <= 0.01
    assert main(["stream", str(source), str(tmp_path / "s.wav"), "--model", str(tiny), "--precision", "bf16",
                 "--threads", "1"]) == 0
    streamed, _ = read(tmp_path / "s.wav")
    model = AdaSlimModel.from_pretrained(tiny)
    samples = torch.from_numpy(sf.read(source, dtype="float32")[0])
    streamer = AdaSlimStreamer(model, precision="bf16")
    reference = torch.cat([streamer.feed(samples[i : i + 256]) for i in range(0, len(samples), 256)] + [streamer.flush()])
    assert np.abs(streamed[0] - reference.numpy()).max() < 1e-5
    with pytest.raises(SystemExit) as stopped:  # argparse's choices: usage error, exit 2
        main(["stream", str(source), str(tmp_path / "t.wav"), "--model", str(tiny), "--precision", "fp16"])
    assert stopped.value.code == 2


def options_in(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--?[a-z][a-z_-]*", help_text.split("options:", 1)[1]))


def test_evaluate_subcommand_has_the_options_of_the_script_and_runs(tiny, example, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    ours = options_in(capsys.readouterr().out)
    script = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate.py"), "--help"], capture_output=True,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True)
    assert ours == options_in(script.stdout)
    assert {"--model", "--dataset", "--data_dir", "--metrics", "--factors", "--output_dir", "--threads"} <= ours
    # errors come back as adaslim's: exit 2 and one line
    assert main(["evaluate", "--model", str(tmp_path / "nope"), "--data_dir", str(tmp_path),
                 "--output_dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"adaslim evaluate: error: no model folder at {str(tmp_path / 'nope')!r} " \
                                      "(expected a save_pretrained folder or a Hub id 'org/name')\n"
    # one item, one metric: the report records the adaslim command line
    for folder in ("clean_testset_wav", "noisy_testset_wav"):
        short_clip(example, tmp_path / "voicebank" / folder / "p232_001.wav")
    argv = ["evaluate", "--model", str(tiny), "--dataset", "voicebank", "--data_dir", str(tmp_path / "voicebank"),
            "--metrics", "si_sdr", "--factors", "1.0", "--no_rnnoise", "--no_deepfilternet", "--no_progress",
            "--output_dir", str(tmp_path / "eval")]
    assert main(argv) == 0
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert report["command"] == "adaslim " + " ".join(argv) and report["items"] == 1
    assert list(report["settings"]) == ["static 1", "dynamic", "noisy"]


def test_factor_lists_are_read_one_way_by_every_scoring_command(tiny, tmp_path, capsys):
    assert cli_common.parse_factor_list("0.25, 1,auto,0.25,AUTO,") == [0.25, 1.0]
    assert cli_common.parse_factor_list("auto") == []
    with pytest.raises(cli_common.UsageError, match=r"--factors must be 'auto' or a number, got 'half'"):
        cli_common.parse_factor_list("0.5,half")
    # adaslim evaluate refuses a bad list before it reads any data (exit 2, one line naming what came)
    assert main(["evaluate", "--model", str(tiny), "--data_dir", str(tmp_path), "--factors", "1.0,x",
                 "--output_dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == "adaslim evaluate: error: --factors must be 'auto' or a number, got 'x'.\n"
    assert not (tmp_path / "out").exists()


def test_console_script_lists_the_subcommands():
    script = Path(sys.executable).parent / "adaslim"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    listed = re.findall(r"^    (\w+) ", result.stdout, flags=re.MULTILINE)
    assert listed == ["enhance", "info", "export", "stream", "evaluate", "demo"]


# ----------------------------------------------------------------------------------------------------
# Everyday use (issue 25): the README's first command twice, quiet loading, no empty output folder, a fast
# --help, SIGTERM cleans up like Ctrl-C, threads that follow the machine's load
# ----------------------------------------------------------------------------------------------------


def readme_first_command() -> list[str]:
    """The adaslim arguments of the README's first command (after `bash scripts/bootstrap.sh && .venv/bin/adaslim`)."""
    text = (REPO / "README.md").read_text()
    first = re.search(r"```bash\n(.*?)\n```", text, flags=re.DOTALL).group(1)
    setup, command = first.split(" && ")
    assert setup == "bash scripts/bootstrap.sh" and command.startswith(".venv/bin/adaslim ")
    return command.split()[1:]


def test_the_readme_first_command_works_every_time_it_is_run(tiny, tmp_path, monkeypatch, capsys):
    arguments = readme_first_command()
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "noisy_example.wav").write_bytes(EXAMPLE.read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli_common, "DEFAULT_MODEL", tiny)  # the command names no model: the packaged one (tiny here)
    outputs = []
    for _ in range(3):
        assert main(arguments) == 0, capsys.readouterr().err
        outputs.append(read(tmp_path / "enhanced" / "noisy_example_enhanced.wav")[0])
    assert all(np.array_equal(outputs[0], other) for other in outputs[1:])
    assert sorted(p.name for p in (tmp_path / "enhanced").iterdir()) == ["noisy_example_enhanced.wav"]
    # without --overwrite an existing file is still never replaced, and the message says how to replace it
    without = [argument for argument in arguments if argument != "--overwrite"]
    assert main(without) == 1
    assert "already exists; refusing to overwrite it. Pass --overwrite to replace it." in capsys.readouterr().err


def test_quiet_shows_no_progress_bar_not_even_the_weight_loading_one(tiny, example, tmp_path, capsys):
    source = short_clip(example, tmp_path / "in.wav")
    assert enhance(tiny, source, "-o", tmp_path / "out") == 0  # enhance() passes -q
    err = capsys.readouterr().err
    assert "Loading weights" not in err and "%|" not in err, err
    assert err.strip().splitlines() == [f"enhanced 1 file(s) into {tmp_path / 'out'} with model {tiny}"]


def test_no_output_folder_is_left_when_every_input_fails(tiny, tmp_path, capsys):
    missing = tmp_path / "nope.wav"
    assert enhance(tiny, missing, "-o", tmp_path / "out") == 1
    assert not (tmp_path / "out").exists()
    assert enhance(tiny, missing, "-o", tmp_path / "deep" / "er" / "out") == 1
    assert not (tmp_path / "deep").exists()
    (tmp_path / "mine").mkdir()  # a folder that was there before is kept, empty or not
    assert enhance(tiny, missing, "-o", tmp_path / "mine") == 1
    assert (tmp_path / "mine").is_dir()
    broken = tmp_path / "in" / "sub" / "broken.wav"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"RIFF not really")
    assert enhance(tiny, tmp_path / "in", "-o", tmp_path / "out2") == 1  # the folder's only file fails
    assert not (tmp_path / "out2").exists()
    assert "1 input(s) failed" in capsys.readouterr().err


def test_help_imports_neither_torch_nor_transformers():
    script = Path(sys.executable).parent / "adaslim"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert "adaslim_hf" in imported and "argparse" in imported
    assert not imported & {"torch", "transformers", "numpy"}, sorted(imported & {"torch", "transformers", "numpy"})
    # and a subcommand's own help builds only that subcommand
    result = subprocess.run([str(script), "stream", "--help"], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    assert "--threads" in result.stdout and "--normalization" in result.stdout
    assert "torch" not in {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()}


def test_sigterm_removes_the_temporary_output_as_ctrl_c_does(tiny, tmp_path):
    """`adaslim enhance long.wav -o out & kill -TERM $!`: exit 143, no hidden partial file, no output."""
    import signal
    import time

    source = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(source, "w", 16000, 1, "PCM_16") as handle:
        for _ in range(40):  # 40 minutes of quiet noise: minutes of work for the tiny model
            handle.write((0.05 * rng.standard_normal(60 * 16000)).astype(np.float32))
    out = tmp_path / "out"
    process = subprocess.Popen([str(Path(sys.executable).parent / "adaslim"), "enhance", str(source), "-o", str(out),
                                "--model", str(tiny), "-q", "--threads", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob(".*.tmp")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(out.glob(".*.tmp")), "the temporary output never appeared"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err
    assert not out.exists() or not list(out.iterdir())
    assert not out.exists()  # the folder this run created is gone too


def test_threads_follow_the_cores_other_processes_leave(monkeypatch):
    from adaslim_hf import pipeline_adaslim

    monkeypatch.setattr(pipeline_adaslim, "available_cores", lambda: 2)
    monkeypatch.setattr(pipeline_adaslim, "busy_cores", lambda samples=3: 1)
    assert pipeline_adaslim.auto_threads(2) == 1  # one core taken by another process: one thread
    monkeypatch.setattr(pipeline_adaslim, "busy_cores", lambda samples=3: 0)
    assert pipeline_adaslim.auto_threads(2) == 2 and pipeline_adaslim.auto_threads(1) == 1
    monkeypatch.setattr(pipeline_adaslim, "busy_cores", lambda samples=3: 5)
    assert pipeline_adaslim.auto_threads(2) == 1  # never fewer than one
    assert pipeline_adaslim.busy_cores() >= 0  # the real reading works here


def test_the_pipeline_runs_the_model_with_the_auto_thread_count_and_restores_torchs(pipe, example, monkeypatch):
    from adaslim_hf import pipeline_adaslim

    seen = []
    feed = pipeline_adaslim.AdaSlimStreamer.feed

    def recording_feed(streamer, chunk):
        seen.append(torch.get_num_threads())
        return feed(streamer, chunk)

    monkeypatch.setattr(pipeline_adaslim.AdaSlimStreamer, "feed", recording_feed)
    monkeypatch.setattr(pipeline_adaslim, "auto_threads", lambda limit=None: 1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        streamed = pipe(example[:20000], chunk_length_s=0.5)  # three chunks through a streamer, 'auto' threads
        assert seen == [1] * 3 and torch.get_num_threads() == 2
        seen.clear()
        pipe(example[:8000], threads=2)
        assert seen == [2]
    finally:
        torch.set_num_threads(before)
    assert streamed["audio"].shape == (20000,)
    with pytest.raises(ValueError, match="threads must be 'auto' or a number of threads >= 1"):
        pipe(example[:100], threads=0)


def test_openmp_spinning_is_capped_only_before_torch_loads_and_only_if_the_user_did_not_choose():
    environ = {}
    assert cli.limit_openmp_spinning(environ, modules={}) and environ == {"GOMP_SPINCOUNT": cli.OPENMP_SPIN_COUNT}
    for chosen in ({"GOMP_SPINCOUNT": "0"}, {"OMP_WAIT_POLICY": "ACTIVE"}):
        environ = dict(chosen)
        assert not cli.limit_openmp_spinning(environ, modules={}) and environ == chosen
    environ = {}
    assert not cli.limit_openmp_spinning(environ, modules={"torch": torch}) and environ == {}


def test_default_chunk_length_agrees_with_the_pipeline():
    assert cli.DEFAULT_CHUNK_SECONDS == SpeechEnhancementPipeline.default_chunk_length_s
    from adaslim_hf.pipeline_adaslim import PACKAGED_MODEL

    assert cli.DEFAULT_MODEL == PACKAGED_MODEL
