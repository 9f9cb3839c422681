"""Every shipped training recipe (configs/*.yaml) loads and passes the settings checks for each stage it names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adaslim_hf.training.settings import check_settings, load_settings

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_loads_for_every_stage_it_names(path):
    data = yaml.safe_load(path.read_text())
    stages = set(data.get("per_stage", {})) | {str(data.get("stage", "1"))}
    for stage in sorted(stages - {"1+2"}):
        overrides = {"stage": stage}
        if stage == "static":
            overrides["static_utilization"] = 1.0
        settings = load_settings(path, overrides)
        check_settings(settings)
        assert settings.stage == stage and settings.max_train_steps != 0


def test_batch64_recipe_accumulates_to_demucs_batch():
    settings = load_settings(Path(__file__).resolve().parent.parent / "configs" / "git_corpus_b64.yaml",
                             {"stage": "static", "static_utilization": 1.0})
    assert settings.train_batch_size * settings.gradient_accumulation_steps == 64
    assert settings.mixed_precision == "bf16" and settings.num_threads == 1
