"""scripts/benchmark_training.py: the rows asked for are timed at each precision, and the table, the JSON and the
stage-1 ratio are computed from the same medians. No measured timing is asserted."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_training.py"


def test_rows_precisions_table_and_json_agree(tmp_path):
    target = tmp_path / "training.json"
    rows = ["stage 1", "stage 1, 1 narrow", "static 1"]
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", "hidden=8", "depth=2", "--batch_size", "2", "--seconds", "0.25",
         "--repeats", "2", "--warmup", "0", "--num_threads", "1", "--precision", "fp32", "bf16",
         "--rows", *rows, "--json", str(target)],
        capture_output=True, text=True, check=True,
    )
    result = json.loads(target.read_text())
    timed = [f"{row} {precision}" for row in rows for precision in ("fp32", "bf16")]
    assert list(result["median_seconds"]) == timed  # the order they ran, round-robin
    assert result["config"] == {"hidden": 8, "depth": 2, "utilization_factors": [0.125, 0.25, 0.5, 1.0]}
    for row in timed:
        assert len(result["runs"][0]["wall"][row]) == 2 and result["median_seconds"][row] > 0
        assert result["steps_per_second"][row] > 0
    assert set(result["speedup_over_fp32"]) == {f"{row} bf16" for row in rows}
    for precision in ("fp32", "bf16"):
        expected = result["median_seconds"][f"stage 1 {precision}"] / (
            result["factor_sum"] * result["median_seconds"][f"static 1 {precision}"])
        assert result["stage1_ratio"][precision] == expected
    table = [line.split("|")[1:3] for line in completed.stdout.splitlines() if line.startswith("| ")]
    assert {(name.strip(), precision.strip()) for name, precision in table[1:]} == {
        (row, precision) for row in rows for precision in ("fp32", "bf16")}
