"""scripts/make_default_model.sh end to end at smoke scale (opt-in: `pytest -m slow tests/test_recipe.py`).

Needs the real-audio corpus (`python scripts/build_corpus.py`, data/corpus) and the project's .venv, which the
script runs; about 2.5 minutes on the 2-core machine (138 and 143 s on 2026-12-03). Checks that every step of the recipe runs and that the
packaged models and the comparison go where DESTINATION / RESULTS_DIR say, leaving the committed package alone.
"""

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGED = ROOT / "adaslim_hf" / "pretrained"


def _digest(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "data" / "corpus" / "corpus.json").exists(),
                    reason="needs data/corpus (python scripts/build_corpus.py)")
@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").exists(), reason="needs the project's .venv")
def test_make_default_model_smoke_run_writes_only_where_told(tmp_path):
    before = _digest(PACKAGED)
    results_before = _digest(ROOT / "docs" / "results" / "default-model")
    env = {**os.environ, "RUNS": str(tmp_path / "runs"), "STAGE1_STEPS": "2", "STAGE2_STEPS": "2",
           "TEST_ITEMS": "2", "DESTINATION": str(tmp_path / "pretrained"), "RESULTS_DIR": str(tmp_path / "results"),
           "TRAIN_ARGS": "--max_valid_items 2 --max_test_items 2 --calibrate_router 2",
           "PACKAGE_ARGS": "--allow_inverted"}
    done = subprocess.run(["bash", "scripts/make_default_model.sh"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]

    for name in ("adaslim-demucs", "adaslim-demucs-target0.25"):
        folder = tmp_path / "pretrained" / name
        assert {"model.safetensors", "config.json", "README.md"} <= {p.name for p in folder.iterdir()}
    config = json.loads((tmp_path / "pretrained" / "adaslim-demucs" / "config.json").read_text())
    assert config["target_utilization"] == pytest.approx(0.1)
    comparison = json.loads((tmp_path / "results" / "comparison.json").read_text())
    assert comparison  # the report the cards were rendered from
    assert (tmp_path / "results" / "pareto_models.png").stat().st_size > 0
    # the committed package and its results are untouched
    assert _digest(PACKAGED) == before
    assert _digest(ROOT / "docs" / "results" / "default-model") == results_before
