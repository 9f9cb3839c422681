"""scripts/benchmark.py --profile: every stage of the forward appears in the table and the JSON, for every
row, and the labelled stages add up to about the call they lie in. No timing value is asserted."""

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
