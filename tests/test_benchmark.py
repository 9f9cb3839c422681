"""scripts/benchmark.py --profile: every stage of the forward appears in the table and the JSON, for every
row, and the labelled stages add up to about the call they lie in; the speed checks decide issue 27's targets
from given rows; --slimming-bounds times the slimmed bottleneck at the MACs it runs. No measured timing is
asserted."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"
DEPTH = 5  # the default config's, which --hidden keeps


def test_profile_reports_every_stage_of_every_row(tmp_path):
    target = tmp_path / "profile.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--profile", "--hidden", "8", "--seconds", "0.3", "--repeats", "1",
         "--threads", "1", "--input", "random", "--json", str(target)],
        capture_output=True, text=True, check=True,
    )
    result = json.loads(target.read_text())
    stages = ["inputs", "upsample", "plans", *(f"encoder.{layer}" for layer in range(1, DEPTH + 1)), "bottleneck",
              *(f"decoder.{layer}" for layer in range(DEPTH, 0, -1)), "downsample", "output"]
    assert result["stages"] == [*stages[:2], "router", *stages[2:], "unlabelled"]  # the order a call runs them
    names = [row["name"] for row in result["rows"]]
    assert names == ["static 0.125", "static 0.25", "static 0.5", "static 1.0", "routed"]
    for row in result["rows"]:
        expected = {*stages, "unlabelled", *(["router"] if row["name"] == "routed" else [])}
        assert set(row["stages"]) == expected, row["name"]
        assert all(entry["operators"] > 0 for name, entry in row["stages"].items() if name != "unlabelled")
        # the stages lie inside the call and cover most of it (what is left is argument handling)
        assert 0.5 * row["profiled_seconds"] <= row["labelled_seconds"] <= row["profiled_seconds"], row
        assert row["plain_seconds"] > 0
    table_rows = {line.split("|")[1].strip() for line in completed.stdout.splitlines() if line.startswith("| ")}
    assert set(result["stages"]) <= table_rows
    assert {"sum of the labelled stages", "call under the profiler", "call without the profiler"} <= table_rows


def test_speed_checks_are_the_speed_targets():
    """static 0.25 at most 0.40 of full width (0.33 with the slimmed bottleneck), the router's wall ratio at most
    1.5x its MAC ratio, full width at least 4x faster than denoiser's Demucs (its LSTM variant no slower): each
    decided on its boundary as written, and only the checks the rows can decide."""
    spec = importlib.util.spec_from_file_location("benchmark_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = [{"name": "static 0.25", "wall_ratio": 0.40}, {"name": "static 1.0", "seconds": 0.25},
            {"name": "dynamic: router decides (router of m)", "wall_over_mac_ratio": 1.51},
            {"name": "dynamic: random factor every router frame", "wall_over_mac_ratio": 9.0},
            {"name": "slim_bottleneck: static 0.25, 1 of 4 groups", "wall_ratio": 0.34},
            {"name": "slim_bottleneck: static 0.125, 1 of 4 groups", "wall_ratio": 0.30},
            {"name": "static 1.0, LSTM bottleneck (DEMUCS)", "seconds": 1.01},
            {"name": "denoiser Demucs (reference, LSTM)", "seconds": 1.0}]
    assert module.speed_checks(rows) == {
        "static 0.25: wall ratio <= 0.40": True,
        "slim_bottleneck: static 0.25, 1 of 4 groups: wall ratio <= 0.33": False,
        "dynamic: router decides (router of m): wall ratio <= 1.5 x MAC ratio": False,
        "static 1.0: at least 4x faster than denoiser's Demucs": True,
        "static 1.0, LSTM bottleneck: no slower than denoiser's Demucs": False,
    }
    assert module.speed_checks(rows[:2]) == {"static 0.25: wall ratio <= 0.40": True}
    boundary = [{"name": "slim_bottleneck: static 0.25, 1 of 4 groups", "wall_ratio": 0.33}]
    assert module.speed_checks(boundary) == {"slim_bottleneck: static 0.25, 1 of 4 groups: wall ratio <= 0.33": True}


def test_slimming_bounds_rows_run_the_slimmed_bottleneck(tmp_path):
    target = tmp_path / "bench.json"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--slimming-bounds", "--hidden", "8", "--seconds", "0.3", "--repeats", "1",
         "--threads", "1", "--input", "random", "--router-strides", "", "--json", str(target)],
        capture_output=True, text=True, check=True,
    )
    rows = {row["name"]: row for row in json.loads(target.read_text())["rows"]}
    for factor, groups in ((0.125, 1), (0.25, 1), (0.5, 2)):  # the same blocks, the groups left out fewer
        slimmed = rows[f"slim_bottleneck: static {factor}, the recurrence over {groups} of 4 groups"]
        assert slimmed["macs"] < rows[f"static {factor}"]["macs"]
        assert slimmed["mean_utilization"] == factor
    assert not any(name.startswith("slim_bottleneck: static 1.0") for name in rows)
    assert rows["slim_bottleneck: dynamic, router decides"]["macs"] > 0
    assert "bound: every block and the bottleneck at 0.25 (hidden 2 at full width)" in rows


def test_a_model_trained_with_the_slimmed_bottleneck_is_benchmarked_beside_the_whole_lstm(tmp_path):
    from adaslim_hf import AdaSlimConfig, AdaSlimModel

    AdaSlimModel(AdaSlimConfig(hidden=8, slim_bottleneck=True)).save_pretrained(tmp_path / "slim")
    target = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", str(tmp_path / "slim"), "--seconds", "0.3", "--repeats", "1",
         "--threads", "1", "--input", "random", "--router-strides", "", "--json", str(target)],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stderr  # the LSTM reference row used to inherit slim_bottleneck and fail
    rows = {row["name"]: row for row in json.loads(target.read_text())["rows"]}
    assert rows["static 0.25"]["macs"] < rows["static 1.0"]["macs"]
    assert rows["static 1.0, LSTM bottleneck (DEMUCS)"]["macs"] > rows["static 1.0"]["macs"]
