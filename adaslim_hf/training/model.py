"""The model a run starts from: a new one, a save_pretrained folder, a checkpoint, a Hub id or a denoiser
file, checked against the run's settings before any step; and what each stage leaves trainable."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..configuration_adaslim import AdaSlimConfig
from ..modeling_adaslim import AdaSlimModel
from .settings import TRAINING_ONLY_FIELDS, config_fields

# denoiser's Demucs arguments (a denoiser .th file holds tensors only; these describe its architecture)
DEMUCS_ARGUMENTS = ("chin", "chout", "hidden", "depth", "kernel_size", "stride", "causal", "resample", "growth",
                    "max_hidden", "normalize", "glu", "rescale", "floor", "sample_rate")


def architecture(config: AdaSlimConfig) -> dict:
    """The config fields that fix the weights' shapes and meaning (everything but the loss fields)."""
    return {name: getattr(config, name) for name in config_fields() if name not in TRAINING_ONLY_FIELDS}


# architecture fields that training may switch on in a model trained without them
SWITCHABLE_ON = ("width_gains", "slim_bottleneck")


def _with_overrides(config: AdaSlimConfig, overrides: dict, origin: str) -> AdaSlimConfig:
    """A validated copy of ``config`` with ``overrides``; architecture fields must not change, but for
    ``width_gains`` (the gains start at 1: every width's output stays as it was) and ``slim_bottleneck`` (no
    parameters of its own), which may be switched on."""
    changed = {k: (getattr(config, k), v) for k, v in overrides.items()
               if k not in TRAINING_ONLY_FIELDS and getattr(config, k) != v
               and not (k == "utilization_factors" and [float(x) for x in v] == list(config.utilization_factors))
               and not (k in SWITCHABLE_ON and v and not getattr(config, k, False))}
    if changed:
        listed = ", ".join(f"{k}={old!r} (asked {new!r})" for k, (old, new) in changed.items())
        raise ValueError(f"{origin} has {listed}: architecture fields cannot change when starting from it; "
                         f"only {', '.join(TRAINING_ONLY_FIELDS)} may (and {' and '.join(SWITCHABLE_ON)} be "
                         "switched on).")
    values = {**config.to_dict(), **overrides}
    return AdaSlimConfig.from_dict(values)


def _check_target(config: AdaSlimConfig):
    factors = config.utilization_factors
    if not 0 < config.target_utilization <= factors[-1]:
        raise ValueError(f"target_utilization {config.target_utilization} lies outside the configured factors "
                         f"{factors}: it must be in (0, {factors[-1]}].")


def resolve_init_source(init_from: str) -> tuple[str, str]:
    """-> (kind, location): kind is 'denoiser' (a .th file), 'pretrained' (a folder with config.json, or a
    checkpoint_N folder's ``pretrained`` sub-folder) or 'hub' (anything else: a Hub id, offline cache)."""
    path = Path(init_from)
    if path.is_file():
        if path.suffix in (".th", ".pt", ".pth"):
            return "denoiser", str(path)
        raise ValueError(f"init_from {path} is a file but not a denoiser checkpoint (.th); give a "
                         "save_pretrained folder, a Hub id, a checkpoint_N folder or a denoiser .th file.")
    if path.is_dir():
        if (path / "config.json").is_file():
            return "pretrained", str(path)
        if (path / "pretrained" / "config.json").is_file():
            return "pretrained", str(path / "pretrained")
        raise ValueError(f"init_from {path} is a folder without config.json (nor pretrained/config.json): "
                         "not a save_pretrained folder or a checkpoint of this trainer.")
    if init_from.startswith((".", "/", "~")) or os.sep in init_from.strip("/").replace("/", "", 1):
        raise ValueError(f"init_from {init_from} does not exist.")
    return "hub", init_from


def load_model(init_from: str | None = None, model_overrides: dict | None = None,
               denoiser_preset: str | None = None, seed: int = 0) -> AdaSlimModel:
    """The model a run starts from, checked before any step.

    - ``init_from`` None: a new ``AdaSlimModel(AdaSlimConfig(**model_overrides))`` initialised from ``seed``;
    - a save_pretrained folder, a checkpoint_N folder or a Hub id (resolved offline from the cache):
      ``AdaSlimModel.from_pretrained``; a folder of another architecture (``model_type`` other than
      "adaslim") raises; ``model_overrides`` may change only the loss fields (TRAINING_ONLY_FIELDS) and switch
      on the fields of SWITCHABLE_ON;
    - a denoiser ``.th`` file: converted (LSTM bottleneck), with ``denoiser_preset`` hyper-parameters.
    """
    overrides = dict(model_overrides or {})
    if init_from is None:
        torch.manual_seed(seed)
        config = AdaSlimConfig(**overrides)
        _check_target(config)
        return AdaSlimModel(config)
    kind, location = resolve_init_source(init_from)
    if kind == "denoiser":
        from ..convert_denoiser import (
            DENOISER_PRESETS,
            config_from_denoiser,
            convert_denoiser,
            load_denoiser_state_dict,
        )

        if denoiser_preset is not None and denoiser_preset not in DENOISER_PRESETS:
            raise ValueError(f"denoiser_preset must be one of {sorted(DENOISER_PRESETS)}, got {denoiser_preset!r}.")
        # a denoiser file holds tensors only: its architecture is the preset's (denoiser's Demucs defaults
        # when none), refined by `model`; the converter refuses weights that do not fit it
        demucs = {**DENOISER_PRESETS.get(denoiser_preset, {}),
                  **{k: v for k, v in overrides.items() if k in DEMUCS_ARGUMENTS}}
        rest = {k: v for k, v in overrides.items() if k not in DEMUCS_ARGUMENTS}
        config = AdaSlimConfig.from_dict({**config_from_denoiser(**demucs).to_dict(), **rest})
        _check_target(config)
        torch.manual_seed(seed)
        try:
            return convert_denoiser(load_denoiser_state_dict(location), config=config)
        except ValueError as error:
            raise ValueError(f"the denoiser checkpoint {location} does not fit the architecture "
                             f"(preset {denoiser_preset}, model {overrides}): {error}") from error
    from transformers import AutoConfig

    try:
        found = AutoConfig.from_pretrained(location)
    except OSError as error:
        raise ValueError(f"init_from {init_from!r} is neither a local folder nor a Hub id in the offline cache: "
                         f"{error}") from error
    except (ValueError, KeyError) as error:
        raise ValueError(f"init_from {init_from!r}: its config.json is not an AdaSlim config ({error}).") from error
    if getattr(found, "model_type", None) != AdaSlimConfig.model_type:
        raise ValueError(f"init_from {init_from!r} is a {getattr(found, 'model_type', None)!r} model, expected an "
                         f"{AdaSlimConfig.model_type!r} model: a checkpoint of another architecture.")
    config = _with_overrides(found, overrides, f"init_from {init_from!r}")
    _check_target(config)
    return AdaSlimModel.from_pretrained(location, config=config)


def freeze_backbone(model: AdaSlimModel) -> list[str]:
    """Train only the router (requires_grad False elsewhere); -> names of the parameters left trainable."""
    trainable = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith("router."))
        if parameter.requires_grad:
            trainable.append(name)
    return trainable


def freeze_router(model: AdaSlimModel):
    """Stages '1' and 'static' never call the router: freeze it so distributed training sees no unused
    parameters and the optimizer leaves it untouched."""
    for name, parameter in model.router.named_parameters():
        parameter.requires_grad_(False)


