"""scripts/make_default_model.sh end to end at smoke scale (opt-in: `pytest -m slow tests/test_recipe.py`).

Needs the git-sources corpus (data/corpus-git-noise, docs/training.md) and the project's .venv, which the script
runs; a few minutes on the 2-core machine. Checks that every step of the recipe runs, in order, that each stage
carries the settings of the one before it (the slimmed bottleneck, the gains, L_PESQ), and that the packaged
model and the comparison go where DESTINATION / RESULTS_DIR say, leaving the committed package alone.
"""

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGED = ROOT / "adaslim_hf" / "pretrained"
CORPUS = ROOT / "data" / "corpus-git-noise"


def _digest(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.slow
@pytest.mark.skipif(not (CORPUS / "corpus.json").exists(),
                    reason="needs data/corpus-git-noise (scripts/build_corpus.py --git-sources, docs/training.md)")
@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").exists(), reason="needs the project's .venv")
def test_make_default_model_smoke_run_writes_only_where_told(tmp_path):
    before = _digest(PACKAGED)
    results_before = _digest(ROOT / "docs" / "results" / "default-model")
    runs = tmp_path / "runs"
    env = {**os.environ, "RUNS": str(runs), "CORPUS": str(CORPUS), "PROCESSES": "1",
           **{name: "1" for name in ("FULL_WIDTH_STEPS", "FURTHER_STEPS", "STAGE1_STEPS", "PESQ_STEPS",
                                     "STAGE2_STEPS", "STAGE2_TAIL_STEPS", "STAGE2_LONG_STEPS")},
           "TEST_ITEMS": "2", "DESTINATION": str(tmp_path / "pretrained"), "RESULTS_DIR": str(tmp_path / "results"),
           "TRAIN_ARGS": "--max_valid_items 2 --calibrate_router 2 --gradient_accumulation_steps 1 "
                         "--train_batch_size 2 --eval_batch_size 2",
           "PACKAGE_ARGS": "--allow_inverted"}
    done = subprocess.run(["bash", "scripts/make_default_model.sh"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]

    # each stage started from the one before and kept what it switched on
    stage1 = json.loads((runs / "stage1" / "model" / "config.json").read_text())
    assert stage1["slim_bottleneck"] and stage1["width_gains"] and stage1["suppression_weight"] == 1.0
    assert stage1["compressed_weight"] == 1.0 and stage1["stft_mag_factor"] == 0.0
    final = json.loads((tmp_path / "pretrained" / "adaslim-demucs" / "config.json").read_text())
    assert final["pesq_weight"] == pytest.approx(0.1) and final["slim_bottleneck"] and final["width_gains"]
    assert final["target_utilization"] == pytest.approx(0.25) and final["suppression_weight"] == pytest.approx(0.1)
    settings = json.loads((runs / "stage2" / "training_settings.json").read_text())
    assert settings["init_from"].endswith("stage1-pesq/model") and settings["stage"] == "2"
    tail = json.loads((runs / "stage2-tail" / "training_settings.json").read_text())
    assert tail["init_from"].endswith("stage2/model") and tail["stage"] == "2"
    long = json.loads((runs / "stage2-long" / "training_settings.json").read_text())
    assert long["init_from"].endswith("stage2-tail/model") and long["stage"] == "2"

    folder = tmp_path / "pretrained" / "adaslim-demucs"
    assert {"model.safetensors", "config.json", "README.md"} <= {p.name for p in folder.iterdir()}
    card = (folder / "README.md").read_text()
    assert "CPU hours of updates" in card and "Trained by scripts/make_default_model.sh (7 updates" in card
    evaluation = json.loads((runs / "eval-test" / "evaluation.json").read_text())
    assert evaluation["model"].endswith("stage2-long/model")  # the report of the two evaluation workers
    comparison = json.loads((tmp_path / "results" / "comparison.json").read_text())
    assert comparison  # the report the card was rendered from
    assert (tmp_path / "results" / "pareto_models.png").stat().st_size > 0
    # the committed package and its results are untouched
    assert _digest(PACKAGED) == before
    assert _digest(ROOT / "docs" / "results" / "default-model") == results_before
