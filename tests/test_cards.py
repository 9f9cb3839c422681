"""Model cards and the Hub push, offline: the card renders from a sample evaluation JSON (and from the reports
of scripts/evaluate.py and of training), its metadata and model-index round-trip through ModelCard.load, the
offline checks catch broken cards, and a dry-run push writes exactly the expected folder without touching the
network (a real push hands that folder to upload_folder)."""

import importlib.util
import json
import socket
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from adaslim_hf import AdaSlimConfig, AdaSlimFeatureExtractor, AdaSlimModel
from adaslim_hf.cards import (
    SCHEMA,
    CardError,
    build_card,
    check_card,
    eval_results,
    load_evaluation,
    loss_summary,
    training_lines_from_card,
    training_summary,
)
from adaslim_hf.evaluation import summarize
from adaslim_hf.macs import macs_per_sample

REPO = Path(__file__).resolve().parent.parent
REPO_ID = "org/adaslim-demucs"
TINY = {"hidden": 8, "depth": 3}


def _load_push_script():
    spec = importlib.util.spec_from_file_location("push_to_hub_script", REPO / "scripts" / "push_to_hub.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


push = _load_push_script()


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return AdaSlimModel(AdaSlimConfig(**TINY)).eval()


def sample_evaluation() -> dict:
    """The card schema: every factor, dynamic routing for target 0.1, the noisy baseline, on VoiceBank test."""
    settings = [
        {"setting": "static", "utilization": u, "metrics": {"pesq": 2.8 + u / 5, "stoi": 0.93, "si_sdr": 17.0 + u,
                                                            "dnsmos_ovrl": 3.3},
         "macs_per_sample": 53760 * u + 2217, "mean_utilization": u}
        for u in (0.125, 0.25, 0.5, 1.0)
    ]
    settings.append({"setting": "dynamic", "target_utilization": 0.1,
                     "metrics": {"pesq": 2.874, "stoi": 0.935, "si_sdr": 17.41, "dnsmos_ovrl": 3.31},
                     "macs_per_sample": 11893.5, "mean_utilization": 0.18})
    settings.append({"setting": "baseline", "name": "noisy input",
                     "metrics": {"pesq": 1.97, "stoi": 0.921, "si_sdr": 8.44, "dnsmos_ovrl": 2.62},
                     "macs_per_sample": 0})
    return {"schema": SCHEMA, "evaluations": [{"dataset": {"id": "voicebank-demand", "name": "VoiceBank-DEMAND",
                                                           "split": "test", "items": 824},
                                               "settings": settings}],
            "notes": "PESQ is wide-band."}


def test_card_renders_results_macs_paper_table_and_citations(model):
    card = build_card(model, repo_id=REPO_ID, evaluation=load_evaluation(sample_evaluation()))
    check_card(card)
    text = card.text
    assert "Preliminary results" in text and "824 clips of VoiceBank-DEMAND" in text
    assert "| setting | PESQ | STOI | SI-SDR (dB) | DNSMOS OVRL | MACs/sample | mean utilization |" in text
    assert "| static u=0.25 | 2.850 | 0.930 | 17.25 | 3.300 | 15,657 | 0.250 |" in text
    assert "| dynamic (router, target 0.1) | 2.874 | 0.935 | 17.41 | 3.310 | 11,894 | 0.180 |" in text
    assert "| noisy input | 1.970 | 0.921 | 8.44 | 2.620 | 0 | – |" in text
    assert "| slimmable backbone | 0.25 | 2.96 | 17.84 | 3.34 | 0.94 | 15,664 |" in text  # the paper's row
    for factor in model.config.utilization_factors:  # MACs table from adaslim_hf.macs for this config
        total = macs_per_sample(model.config, factor, router=False)["total"]
        assert f"| {factor:g} | " in text and f"{total:,.0f}" in text
    assert "miccini2025adaptive" in text and "defossez2020real" in text
    assert f'AutoModel.from_pretrained("{REPO_ID}", trust_remote_code=True)' in text
    assert "Notes from the evaluation: PESQ is wide-band." in text


def test_card_of_a_slimmed_bottleneck_says_so_and_counts_its_macs(model):
    torch.manual_seed(0)
    slimmed = AdaSlimModel(AdaSlimConfig(**TINY, slim_bottleneck=True)).eval()
    card = build_card(slimmed, repo_id=REPO_ID, evaluation=load_evaluation(sample_evaluation()))
    check_card(card)
    assert "slimmed with the factor: a frame at factor u runs the first ceil(u x 4) groups" in card.text
    assert "the unslimmed bottleneck" not in card.text
    for factor in slimmed.config.utilization_factors:  # the bottleneck's MACs shrink with the factor
        total = macs_per_sample(slimmed.config, factor, router=False)["total"]
        assert f"{total:,.0f}" in card.text
    assert "the unslimmed bottleneck" in build_card(model, repo_id=REPO_ID).text


def test_metadata_and_model_index_round_trip_through_model_card_load(model, tmp_path):
    evaluation = load_evaluation(sample_evaluation())
    build_card(model, repo_id=REPO_ID, evaluation=evaluation, status="final").save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    data = loaded.data
    assert data.library_name == "transformers" and data.pipeline_tag == "audio-to-audio"
    assert data.license == "mit" and "speech-enhancement" in data.tags
    assert data.metrics == ["pesq", "stoi", "si_sdr", "dnsmos_ovrl"]
    assert data.model_name == "adaslim-demucs"
    expected = eval_results(evaluation)
    assert [r.__dict__ for r in data.eval_results] == [r.__dict__ for r in expected]
    # 4 static settings x (4 metrics + MACs) + dynamic x (4 metrics + MACs + mean utilization); no baseline
    assert len(expected) == 4 * 5 + 6
    index = data.to_dict()["model-index"]
    assert len(index) == 1 and len(index[0]["results"]) == 1  # one dataset and split
    result = index[0]["results"][0]
    assert result["task"] == {"type": "audio-to-audio", "name": "Speech Enhancement"}
    assert result["dataset"] == {"name": "VoiceBank-DEMAND", "type": "voicebank-demand", "split": "test"}
    dynamic = {m["type"]: m for m in result["metrics"] if m["config"] == "dynamic-target0.1"}
    assert dynamic["mean_utilization"]["value"] == 0.18 and dynamic["pesq"]["args"] == {"target_utilization": 0.1}
    static = [m for m in result["metrics"] if m["config"] == "static-u0.125" and m["type"] == "macs_per_sample"]
    assert static[0]["value"] == 8937.0 and static[0]["args"] == {"utilization": 0.125}
    assert "Preliminary" not in loaded.text
    check_card(tmp_path / "README.md")


def test_untrained_card_says_so_and_has_no_model_index(model):
    card = build_card(model, repo_id=REPO_ID)
    check_card(card)
    assert "model-index" not in card.data.to_dict() and "untrained" in card.data.tags
    assert "Untrained checkpoint" in card.text and "No evaluation results for this checkpoint yet" in card.text
    with pytest.raises(ValueError, match="untrained checkpoint cannot have evaluation results"):
        build_card(model, repo_id=REPO_ID, evaluation=load_evaluation(sample_evaluation()), status="untrained")


def test_a_wheel_of_the_package_renders_the_default_card_and_leaves_the_corpus_tools_out(tmp_path):
    """The card template is package data: a wheel built from the package's files holds it, and the package
    imported from the unpacked wheel (not the checkout) renders the default card; the corpus builders
    (tools/) are neither in the wheel nor imported by the library."""
    import os
    import shutil
    import subprocess
    import sys
    import zipfile

    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "adaslim_hf", source / "adaslim_hf", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    str(source), "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("adaslim_hf-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "installed")
    assert "adaslim_hf/templates/model_card_template.md" in names
    assert not [name for name in names if name.startswith("tools/") or "corpus" in name and "build" in name]
    code = ("import sys, adaslim_hf, adaslim_hf.training, adaslim_hf.evaluation, adaslim_hf.data\n"
            "from adaslim_hf.cards import build_card, check_card\n"
            "check_card(build_card(adaslim_hf.AdaSlimConfig(hidden=8, depth=3), repo_id='org/tiny'))\n"
            "print(adaslim_hf.__file__, 'tools' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(tmp_path / "installed"), "HF_HUB_OFFLINE": "1",
                                 "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    location, tools_imported = result.stdout.split()
    assert Path(location).is_relative_to(tmp_path / "installed") and tools_imported == "False"


def training_results(names=("dynamic", "static 0.25", "noisy")) -> dict:
    """The ``results`` of a training report (training.validation.evaluate), under ``names``: today's, or the
    old ("auto", "u0.25", "noisy")."""
    rows = [{"pesq": 2.5, "stoi": 0.9, "si_sdr": 15.0, "loss": 0.1, "mean_utilization": 0.3,
             "macs_per_sample": 19000.0, "items": 10},
            {"pesq": 2.4, "stoi": 0.9, "si_sdr": 14.0, "loss": 0.1, "mean_utilization": 0.25,
             "macs_per_sample": 15657.0, "items": 10},
            {"pesq": 1.5, "stoi": 0.8, "si_sdr": 5.0, "items": 10}]
    return dict(zip(names, rows))


def test_reports_of_scripts_evaluate_and_of_training_convert(model):
    metrics = ["pesq", "stoi", "si_sdr"]
    factors = model.config.utilization_factors
    names = [f"static {u:g}" for u in factors] + ["dynamic", "noisy"]
    records = []
    for item in range(3):
        entries = {}
        for name in names:
            u = float(name.split()[1]) if name.startswith("static") else None
            entries[name] = {"pesq": 2.0 + item / 10, "stoi": 0.9, "si_sdr": 10.0 + item,
                             "macs_per_sample": 0.0 if name == "noisy" else 1000.0 * (u or 0.3),
                             "mean_utilization": None if name == "noisy" else (u or 0.3), "rtf": 0.01, "peak": 0.5}
        records.append({"id": f"clip{item}", "num_samples": 16000, "input_snr": 5.0 + item, "settings": entries})
    report = summarize(records, metrics=metrics, settings=names)  # what scripts/evaluate.py writes
    report.update({"model": "m", "dataset": "corpus test (data/corpus)", "sample_rate": 16000,
                   "utilization_factors": factors})
    evaluation = load_evaluation(json.loads(json.dumps(report)), target_utilization=0.25)
    (dataset,) = evaluation.datasets
    assert (dataset.id, dataset.split, dataset.items) == ("adaslim-real-audio-corpus", "test", 3)
    kinds = [(s.kind, s.utilization, s.target_utilization) for s in dataset.settings]
    assert kinds == [("static", u, None) for u in factors] + [("dynamic", None, 0.25), ("baseline", None, None)]
    assert dataset.settings[1].metrics["pesq"] == pytest.approx(2.1) and dataset.settings[4].mean_utilization == 0.3

    training = {"model": "runs/x/model", "weights": "best", "stage": "2", "steps": 500, "target_utilization": 0.25,
                "router_calibration": {"lambda": 0.5, "utilization_before": 0.4, "utilization_after": 0.25,
                                       "target": 0.25}, "evaluated_on": "validation", "dataset": "voicebank", "data_dir": "d",
                "sample_rate": 16000,
                "settings": training_results()}
    evaluation = load_evaluation(training)
    (dataset,) = evaluation.datasets
    assert (dataset.id, dataset.name, dataset.split, dataset.items) == (
        "voicebank-demand", "VoiceBank-DEMAND", "validation", 10)
    assert [(s.kind, s.target_utilization, s.utilization) for s in dataset.settings] == [
        ("dynamic", 0.25, None), ("static", None, 0.25), ("baseline", None, None)]
    card = build_card(model, repo_id=REPO_ID, evaluation=evaluation, training=training)
    check_card(card)
    assert "**Last stage:** stage 2 (joint router training)" in card.text
    assert "**Optimizer steps (last run):** 500" in card.text and "0.4 -> 0.25" in card.text
    assert "every factor kept" not in card.text  # no share floor in that calibration
    training["router_calibration"].update(min_share=0.08, shares_after=[0.4, 0.4, 0.12, 0.08],
                                          validation_utilization=0.262)
    card = build_card(model, repo_id=REPO_ID, evaluation=evaluation, training=training)
    assert "every factor kept on at least 8% of the frames (now 40.0/40.0/12.0/8.0%); on validation 0.262" in card.text
    # a card rendered again once the report is gone keeps its training lines (scripts/package_default_model.py)
    kept = training_lines_from_card(card.text)
    assert kept == [*training_summary(training), ("Loss", loss_summary(model.config))] and len(kept) == 7
    assert build_card(model, repo_id=REPO_ID, evaluation=evaluation, training=kept).text == card.text


def test_training_reports_with_the_old_setting_names_still_load(tmp_path):
    """Training reports written before the names were shared ("u0.25", "auto": runs' evaluation.json and
    best/validation.json) read as today's ("static 0.25", "dynamic"), through evaluation.current_setting_name,
    the one place that knows the old names."""
    from adaslim_hf.evaluation import current_setting_name

    assert [current_setting_name(name) for name in ("u0.125", "u0.25", "u1", "auto")] == [
        "static 0.125", "static 0.25", "static 1", "dynamic"]
    for name in ("static 0.5", "dynamic", "noisy", "rnnoise", "deepfilternet3", "user", "u", "automatic"):
        assert current_setting_name(name) == name

    report = {"stage": "2", "steps": 500, "target_utilization": 0.25, "evaluated_on": "test", "dataset": "voicebank"}
    today = load_evaluation({**report, "settings": training_results()})
    old = load_evaluation({**report, "results": training_results(("auto", "u0.25", "noisy"))})
    assert old.to_dict() == today.to_dict() == load_evaluation({**report, "results": training_results()}).to_dict()
    assert [(s.kind, s.utilization, s.target_utilization) for s in old.datasets[0].settings] == [
        ("dynamic", None, 0.25), ("static", 0.25, None), ("baseline", None, None)]

    # best/validation.json ({"step", "results"}) records no dataset: it is given
    identity = {"dataset_id": "voicebank-demand", "dataset_name": "VoiceBank-DEMAND", "split": "validation"}
    for names in (("u1", "u0.25", "u0.125"), ("static 1", "static 0.25", "static 0.125")):
        validation = {"step": 500, "results": training_results(names)}
        (tmp_path / "validation.json").write_text(json.dumps(validation))
        (dataset,) = load_evaluation(tmp_path / "validation.json", **identity).datasets
        assert [(s.kind, s.utilization) for s in dataset.settings] == [("static", 1.0), ("static", 0.25),
                                                                         ("static", 0.125)]
        assert (dataset.id, dataset.split, dataset.items) == ("voicebank-demand", "validation", 10)
        with pytest.raises(CardError, match="cannot tell which dataset"):
            load_evaluation(validation)

    # the final report of a run of 2026-12-05, as that trainer wrote it (tests/fixtures/README.md)
    (dataset,) = load_evaluation(REPO / "tests" / "fixtures" / "run_format_2026-12-05" / "evaluation.json").datasets
    assert [(s.kind, s.utilization, s.name) for s in dataset.settings] == [
        ("baseline", None, "noisy input"), *(("static", u, None) for u in (0.125, 0.25, 0.5, 1.0))]
    assert (dataset.id, dataset.split, dataset.items) == ("voicebank-demand", "test", 2)
    for empty in ({"results": None}, {"settings": None}, {"settings": {}}):
        with pytest.raises(CardError, match="holds no evaluation results"):
            load_evaluation({**report, **empty})


def test_malformed_evaluation_json_lists_every_problem(tmp_path):
    bad = sample_evaluation()
    bad["schema"] = "something-else"
    bad["evaluations"][0]["dataset"].pop("id")
    bad["evaluations"][0]["settings"][0]["metrics"]["pesq"] = "high"
    bad["evaluations"][0]["settings"][1]["setting"] = "auto"
    bad["evaluations"][0]["settings"][2]["utilization"] = 1.5
    with pytest.raises(CardError) as raised:
        load_evaluation(bad)
    problems = "\n".join(raised.value.problems)
    for expected in ("schema must be", "dataset.id must be a non-empty string", "metrics.pesq must be a finite number",
                     "setting must be one of", "utilization must lie in (0, 1]"):
        assert expected in problems
    with pytest.raises(CardError, match="does not exist"):
        load_evaluation(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(CardError, match="not valid JSON"):
        load_evaluation(tmp_path / "broken.json")
    with pytest.raises(CardError, match="unrecognised evaluation JSON"):
        load_evaluation({"hello": 1})


def test_offline_checks_catch_broken_cards(model):
    text = str(build_card(model, repo_id=REPO_ID, evaluation=load_evaluation(sample_evaluation())))
    check_card(text)
    broken = {
        "pipeline_tag must be 'audio-to-audio'": text.replace("pipeline_tag: audio-to-audio", "pipeline_tag: translation"),
        "not a Hub license id": text.replace("license: mit", "license: my-own-licence"),
        "model-index does not parse": text.replace("  results:\n", "  resultz:\n", 1),
        "non-numeric value": text.replace("value: 2.874", "value: great", 1),
        "template placeholder": text + "\n{{ leftover }}\n",
        "section '## Limitations' is missing": text.replace("## Limitations", "## Caveats"),
        "YAML metadata block": text[4:],
    }
    for message, card_text in broken.items():
        with pytest.raises(CardError) as raised:
            check_card(card_text)
        assert message in str(raised.value), message


def saved_model(model, folder: Path, feature_extractor: bool = True) -> Path:
    model.save_pretrained(folder)
    if feature_extractor:
        AdaSlimFeatureExtractor(sampling_rate=model.config.sample_rate).save_pretrained(folder)
    return folder


def test_dry_run_push_writes_exactly_the_upload_folder_offline(model, tmp_path, monkeypatch, capsys):
    source = saved_model(model, tmp_path / "model")
    (tmp_path / "eval.json").write_text(json.dumps(sample_evaluation()))
    (source / "notes.txt").write_text("not for upload")

    def no_upload(*args, **kwargs):
        raise AssertionError("a dry run must not create repositories or upload")

    monkeypatch.setattr("huggingface_hub.HfApi.upload_folder", no_upload)
    monkeypatch.setattr("huggingface_hub.HfApi.create_repo", no_upload)
    out = tmp_path / "upload"
    args = push.parse_args(["--model", str(source), "--repo_id", REPO_ID, "--evaluation", str(tmp_path / "eval.json"),
                            "--output_dir", str(out), "--dry-run"])
    assert push.main(args) == out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["README.md", "blocks.py", "bottleneck.py", "config.json", "configuration_adaslim.py", "demo.png",
                     "execution.py", "feature_extraction_adaslim.py", "losses.py", "macs.py", "model.safetensors",
                     "modeling_adaslim.py", "preprocessor_config.json", "products.py", "resample.py", "router.py",
                     "waveform.py"]
    for name in names:
        if name not in ("README.md", "demo.png"):
            assert (out / name).read_bytes() == (source / name).read_bytes(), name
    assert (out / "demo.png").read_bytes() == push.DEMO_SCREENSHOT.read_bytes()  # the screenshot the card shows
    assert "](demo.png)" in (out / "README.md").read_text()
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "audio-to-audio" and len(card.data.eval_results) == 26
    printed = capsys.readouterr().out
    assert "dry run: nothing uploaded" in printed and "checks passed" in printed
    # the folder is what a real push uploads: upload_folder receives it
    calls = []
    monkeypatch.setattr("huggingface_hub.HfApi.create_repo", lambda self, *a, **k: calls.append(("create", a, k)))
    monkeypatch.setattr("huggingface_hub.HfApi.upload_folder", lambda self, **k: calls.append(("upload", k)) or "url")
    real = push.parse_args(["--model", str(source), "--repo_id", REPO_ID, "--evaluation", str(tmp_path / "eval.json"),
                            "--output_dir", str(tmp_path / "real")])
    push.main(real)
    assert calls[0][0] == "create" and calls[1][0] == "upload"
    upload = calls[1][1]
    assert upload["repo_id"] == REPO_ID and Path(upload["folder_path"]) == tmp_path / "real"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == names


def test_push_uses_the_training_report_and_refuses_incomplete_folders(model, tmp_path):
    source = saved_model(model, tmp_path / "model", feature_extractor=False)
    training = {"stage": "1", "steps": 40, "dataset": "corpus", "evaluated_on": "test", "target_utilization": None,
                "results": {f"static {u:g}": {"pesq": 1.5, "stoi": 0.7, "si_sdr": 3.0, "mean_utilization": u,
                                        "macs_per_sample": 1000.0, "items": 3} for u in model.config.utilization_factors}}
    (source / "evaluation.json").write_text(json.dumps(training))
    out = push.main(push.parse_args(["--model", str(source), "--repo_id", REPO_ID, "--output_dir",
                                     str(tmp_path / "up"), "--dry-run"]))
    names = {p.name for p in out.iterdir()}
    assert "preprocessor_config.json" not in names and "evaluation.json" not in names
    text = (out / "README.md").read_text()
    assert "Preliminary results" in text and "**Last stage:** stage 1" in text
    assert "adaslim_hf real-audio corpus (scripts/build_corpus.py), test split" in text

    with pytest.raises(push.PushError, match="already exists; pass --overwrite"):
        push.main(push.parse_args(["--model", str(source), "--repo_id", REPO_ID, "--output_dir", str(out), "--dry-run"]))
    (source / "macs.py").unlink()
    with pytest.raises(push.PushError, match=r"lacks the code file\(s\) \['macs.py'\]"):
        push.main(push.parse_args(["--model", str(source), "--repo_id", REPO_ID, "--output_dir",
                                   str(tmp_path / "up2"), "--dry-run"]))
    assert not (tmp_path / "up2").exists()
    with pytest.raises(push.PushError, match="must be ORG/NAME"):
        push.main(push.parse_args(["--model", str(source), "--repo_id", "no-org", "--dry-run"]))
    with pytest.raises(push.PushError, match="not a folder, and not in the local Hub cache"):
        push.main(push.parse_args(["--model", "org/not-cached", "--repo_id", REPO_ID, "--dry-run"]))


def test_dry_run_push_of_the_packaged_model_takes_its_code_from_the_package(tmp_path):
    """The packaged models keep weights and config only; their upload folder gets the package's code files,
    so the pushed repository loads with trust_remote_code."""
    import adaslim_hf

    packaged = Path(adaslim_hf.__file__).parent / "pretrained" / "adaslim-demucs"
    assert not list(packaged.glob("*.py"))
    out = push.main(push.parse_args(["--model", str(packaged), "--repo_id", REPO_ID, "--output_dir",
                                     str(tmp_path / "up"), "--dry-run"]))
    for name in ("configuration_adaslim.py", "modeling_adaslim.py", "blocks.py", "execution.py", "products.py"):
        assert (out / name).read_bytes() == (Path(adaslim_hf.__file__).parent / name).read_bytes(), name
    assert (out / "model.safetensors").read_bytes() == (packaged / "model.safetensors").read_bytes()


def test_card_names_the_loss_terms_the_config_trains_with(model):
    """The "Loss" line of the training procedure comes from the config: DEMUCS' STFT factors and every extra
    term with a weight, none of the terms at weight 0; a card rendered again from its lines keeps one."""
    config = AdaSlimConfig(**TINY, compressed_weight=1.0, suppression_weight=1.0, pesq_weight=0.1, stft_mag_factor=0.0)
    assert loss_summary(config) == ("L1 + multi-resolution STFT (spectral convergence 0.1, log magnitude 0) + "
                                    "L_Cmp x 1 + L_Sup x 1 + L_PESQ x 0.1 + L_Pol x 1")
    assert loss_summary(AdaSlimConfig(**TINY, polarity_weight=0.0)).endswith("log magnitude 0.1)")
    assert loss_summary(AdaSlimConfig(**TINY, routed_loss="log")).endswith(
        "L_Pol x 1; the router's term takes the mean of each item's log L_SE")
    torch.manual_seed(0)
    card = build_card(AdaSlimModel(config), repo_id=REPO_ID, training={"stage": "2", "steps": 10})
    assert f"- **Loss:** {loss_summary(config)}" in card.text
    lines = training_lines_from_card(card.text)
    assert [label for label, _ in lines].count("Loss") == 1
    again = build_card(AdaSlimModel(config), repo_id=REPO_ID, training=lines)
    assert again.text.count("- **Loss:**") == 1
    assert "- **Loss:**" not in build_card(model, repo_id=REPO_ID).text  # no training report: no training lines
