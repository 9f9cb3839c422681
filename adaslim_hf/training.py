"""Training the adaptive-slimming DEMUCS with Accelerate: stage 1, stage 2 and static baselines.

Read top to bottom: settings (one dataclass, loaded from YAML plus overrides, unknown keys refused) ->
the model to start from -> the training objectives -> data -> validation -> checkpoints -> the loop
(:func:`train`). ``scripts/train.py`` is argparse around :func:`train`; ``accelerate launch`` runs the
same script on many processes.

Stages (shared/SPEC.md, "Training (two stages)"):
  - ``stage: "1"``, slimmable pre-training: L_slim = sum_j L_SE(enhanced at u_j, clean), every factor a
    sliced forward (weights cut to the factor's channels), so a step costs about sum(u_j) backbones;
  - ``stage: "2"``, the router: L_SE + beta L_Eff + gamma L_Bal through the masked path with the
    straight-through Gumbel-softmax (``train_router_only`` freezes the backbone: the paper's "router
    pre-training" variant);
  - ``stage: "static"``: L_SE at one factor, the static baseline.

Resuming (``resume_from_checkpoint: latest``) restores model, optimizer, scheduler, RNG states and the
position in the data: the sampler's order is a function of (``seed``, epoch), the batches already
consumed in the epoch are skipped, and every micro-batch's randomness (augmentations, Gumbel noise) is
seeded from (``seed``, epoch, batch, process), so a resumed run repeats what the uninterrupted run would
have done.

Stages are run with ``stage: "1+2"`` in one command (stage 1, then stage 2 from its model), each with its
own ``per_stage`` settings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .configuration_adaslim import AdaSlimConfig
from .memory import reuse_freed_memory
from .modeling_adaslim import AdaSlimModel

STAGES = ("1", "2", "static")
PIPELINE = "1+2"  # stage 1, then stage 2 started from its model
SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")
MIXED_PRECISION = ("no", "fp16", "bf16")
BEST_METRICS = ("pesq", "stoi", "si_sdr", "loss")
# denoiser's Demucs arguments (a denoiser .th file holds tensors only; these describe its architecture)
DEMUCS_ARGUMENTS = ("chin", "chout", "hidden", "depth", "kernel_size", "stride", "causal", "resample", "growth",
                    "max_hidden", "normalize", "glu", "rescale", "floor", "sample_rate")
# config fields that only weigh the loss or shape training: they may differ from a checkpoint's values
TRAINING_ONLY_FIELDS = ("target_utilization", "efficiency_weight", "balance_weight", "min_factor_share",
                        "share_weight", "gumbel_temperature", "stft_sc_factor", "stft_mag_factor", "polarity_weight",
                        "si_sdr_weight", "pause_weight")


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient norm of a step is NaN or infinite; the run stopped before the optimizer step."""


# ----------------------------------------------------------------------------------------------------
# Settings: one dataclass, the single source of every training default
# ----------------------------------------------------------------------------------------------------


def _setting(default, help: str, **kwargs):
    """A dataclasses.field of an immutable default with its help text (and choices)."""
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class TrainingSettings:
    """Everything a training run needs. YAML files and command lines fill it; library code takes it whole
    or takes its fields as explicit arguments. Sizes are per process (``train_batch_size`` x processes x
    ``gradient_accumulation_steps`` is the effective batch)."""

    # ---- run ----
    stage: str = _setting("1", "'1' slimmable pre-training (every factor, sliced), '2' router training "
                               "(L_SE + beta L_Eff + gamma L_Bal), 'static' one factor, '1+2' both in one "
                               "command (<output_dir>/stage1, then <output_dir>/stage2 from its model)",
                          choices=(*STAGES, PIPELINE))
    per_stage: dict = field(default_factory=dict, metadata={"help": "settings that apply in one stage only, e.g. "
                            "{'2': {'learning_rate': 3e-4}}; command-line flags still win"})
    output_dir: str = _setting("runs/adaslim", "folder of checkpoints, logs, the best and the final model")
    seed: int = _setting(2036, "seed of the model initialisation, data order, augmentations and Gumbel noise")
    report_to: str = _setting("tensorboard", "tracker for accelerator.log: 'tensorboard' or 'none'",
                              choices=("tensorboard", "none"))
    tracker_project_name: str = _setting("adaslim", "run name under <output_dir>/logs")
    logging_steps: int = _setting(10, "log the training losses every N optimizer steps")
    # ---- model ----
    init_from: str | None = _setting(None, "start from: a save_pretrained folder, a Hub id (offline cache), a "
                                           "checkpoint_N folder of an earlier run, or a denoiser .th file; "
                                           "none = a new model from `model`")
    denoiser_preset: str | None = _setting(None, "hyper-parameters of a denoiser .th given as init_from "
                                                 "(dns48, dns64, master64, valentini_nc)")
    model: dict = field(default_factory=dict, metadata={"help": "AdaSlimConfig fields of a new model; with init_from "
                        f"only the loss fields {', '.join(TRAINING_ONLY_FIELDS)} may change"})
    target_utilization: float | None = _setting(None, "stage 2: mean utilization to train towards (a shortcut "
                                                      "for model.target_utilization)")
    static_utilization: float | None = _setting(None, "stage 'static': the factor to train")
    train_router_only: bool = _setting(False, "stage 2: freeze the backbone and train only the router")
    slimmable_weight: float = _setting(0.0, "stage 2: add this weight x stage 1's loss (L_SE at every factor, sliced "
                                       "weights) to every step, so that each width keeps learning while the router "
                                       "trains (at a low target the router rarely picks the wide widths); a step "
                                       "then costs a stage-1 step more; 0 = the paper's stage 2")
    gumbel_noise_decay_steps: int = _setting(0, "stage 2: the Gumbel noise on the router's scores falls linearly "
                                                "from its full scale at step 0 to none at this step (then the "
                                                "training choices are the arg max that inference takes, and the "
                                                "efficiency and balance losses act on them); 0 = full noise "
                                                "throughout (the standard Gumbel-softmax)")
    calibrate_router: int = _setting(0, "stage 2: after training, shift the router's scores by -lambda * u_j, "
                                        "lambda set by bisection so that the mean utilization (arg max, as at "
                                        "inference) on this many training segments equals the target (0 = off)")
    # ---- data ----
    dataset: str = _setting("voicebank", "'voicebank': pairs in the VoiceBank layout (or a Hub id) in data_dir; "
                                         "'dns': clean speech (data_dir) and noise (noise_dir) folders mixed "
                                         "on the fly; 'corpus': the real-audio corpus of scripts/build_corpus.py "
                                         "(its training pools mixed on the fly, its fixed validation and test "
                                         "mixtures)", choices=("voicebank", "dns", "corpus"))
    data_dir: str | None = _setting(None, "voicebank: the folder (clean_trainset_28spk_wav, ...) or a Hub dataset "
                                          "id; dns: the clean-speech folder (searched recursively); corpus: the "
                                          "corpus folder (data/corpus)")
    trainset: str = _setting("28spk", "voicebank: the training folders' variant (clean_trainset_<trainset>_wav)")
    noise_dir: str | None = _setting(None, "dns: the noise folder (searched recursively)")
    rir_dir: str | None = _setting(None, "dns: room impulse responses (optional)")
    rir_probability: float = _setting(0.0, "dns: fraction of segments reverberated with a random RIR")
    snr_range: list | None = field(default=None, metadata={
        "help": "dns: [low, high] SNR in dB drawn per segment (default -5, 20)"})
    speed_factors: list | None = field(default=None, metadata={
        "help": "dns, corpus: speed perturbation of the clean speech before mixing: each segment plays at a "
                "factor drawn from this list, e.g. 0.8 0.9 1.0 1.1 (below 1: slower, lower-pitched, a "
                "larger-sounding talker; default off)"})
    shuffle_buffer: int = _setting(256, "dns: examples in the streaming shuffle buffer")
    valid_dir: str | None = _setting(None, "fixed validation mixtures (VoiceBank test layout or DNS noisy/clean "
                                           "layout); voicebank default: the held-out valid_speakers")
    test_dir: str | None = _setting(None, "fixed test mixtures (same layouts); voicebank default: its test folders")
    segment: float = _setting(4.5, "training segment in seconds")
    segment_stride: float = _setting(0.5, "hop between training segments in seconds")
    valid_speakers: list | None = field(default=None, metadata={
        "help": "voicebank: training speakers held out for validation (default p226, p287; [] = no validation)"})
    max_valid_items: int | None = _setting(None, "validate on at most this many items (spread evenly over the "
                                                 "split, adaslim_hf.data.spread_indices)")
    evaluate_test: bool = _setting(True, "evaluate the final model on the test split (else on validation)")
    max_test_items: int | None = _setting(None, "evaluate the final model on at most this many items")
    num_workers: int = _setting(0, "DataLoader worker processes")
    # ---- augmentation (DEMUCS; noise = noisy - clean is augmented, then noisy = noise + clean) ----
    remix: bool = _setting(True, "permute the noises across the batch")
    bandmask: float = _setting(0.2, "maximal fraction of mel bands removed (0 = off)")
    shift: int = _setting(8000, "random time shift up to N samples (0 = off)")
    shift_same: bool = _setting(True, "same shift for noise and clean")
    revecho: float = _setting(0.0, "probability of synthetic reverb (0 = off)")
    # ---- optimisation ----
    learning_rate: float = _setting(3e-4, "Adam learning rate")
    router_learning_rate: float | None = _setting(None, "stage 2: learning rate of the router (default: "
                                                         "learning_rate)")
    adam_beta1: float = _setting(0.9, "Adam beta1")
    adam_beta2: float = _setting(0.999, "Adam beta2")
    adam_epsilon: float = _setting(1e-8, "Adam epsilon")
    weight_decay: float = _setting(0.0, "AdamW weight decay (0 = plain Adam)")
    lr_scheduler: str = _setting("constant", "learning-rate schedule", choices=SCHEDULERS)
    lr_warmup_steps: int = _setting(0, "warm-up optimizer steps")
    train_batch_size: int = _setting(64, "segments per batch and process")
    gradient_accumulation_steps: int = _setting(1, "micro-batches per optimizer step")
    max_grad_norm: float | None = _setting(None, "clip the gradient norm (none = no clipping)")
    max_train_steps: int | None = _setting(None, "optimizer steps to train (overrides num_train_epochs)")
    num_train_epochs: int = _setting(1, "epochs to train when max_train_steps is not set")
    mixed_precision: str = _setting("no", "accelerate mixed precision", choices=MIXED_PRECISION)
    overwrite_output_dir: bool = _setting(False, "delete an earlier run's checkpoints and models in output_dir "
                                                 "instead of refusing to start")
    num_threads: int | None = _setting(None, "torch.set_num_threads in each process (none: torch's default, all "
                                             "cores; on a shared machine 1 avoids stalls of threads waiting for "
                                             "each other)")
    reuse_freed_memory: bool = _setting(True, "keep the memory each step frees for the next (glibc malloc: no "
                                              "mmap, no trim; adaslim_hf.memory): removes the page faults of "
                                              "every large tensor, about a fifth of a CPU step or more, for a "
                                              "higher resident size")
    cpu: bool = _setting(False, "train on the CPU even when a GPU is present (implied when processes are "
                                "launched on a machine without any accelerator)")
    # ---- checkpoints and validation ----
    checkpointing_steps: int = _setting(500, "save an accelerate checkpoint every N optimizer steps")
    checkpoints_total_limit: int | None = _setting(3, "keep at most N checkpoints")
    resume_from_checkpoint: str | None = _setting(None, "'latest' or a checkpoint folder to resume from")
    validation_steps: int = _setting(500, "validate every N optimizer steps (0 = only at the end)")
    validation_utilizations: list | None = field(default=None, metadata={
        "help": "what to validate: factors and/or 'auto' (the router); default: every factor (stage 1), 'auto' "
                "(stage 2), the factor (static)"})
    eval_batch_size: int = _setting(4, "validation items per batch (padded, exact per item)")
    best_metric: str = _setting("pesq", "validation metric selecting the best weights (mean over the validated "
                                        "settings; loss is minimised, the others maximised)", choices=BEST_METRICS)
    final_model: str = _setting("best", "weights saved as <output_dir>/model: 'best' validation or 'last'",
                                choices=("best", "last"))

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _type_check(name: str, value, annotation: str):
    """Coerce YAML/CLI values to the declared type; ValueError naming the key otherwise."""
    if value is None:
        if "None" in annotation:
            return None
        raise ValueError(f"setting `{name}` may not be empty (expected {annotation}).")
    base = annotation.replace(" | None", "")
    try:
        if base == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
                return value.lower() in ("true", "1", "yes")
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise TypeError
        if base == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if base == "float":
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if base == "str":
            if isinstance(value, (dict, list)):
                raise TypeError
            return str(value)
        if base == "dict":
            if not isinstance(value, dict):
                raise TypeError
            return dict(value)
        if base == "list":
            if isinstance(value, (str, int, float)):
                value = [value]
            return list(value)
    except (TypeError, ValueError):
        raise ValueError(f"setting `{name}` expects {annotation}, got {value!r}.") from None
    return value


def _coerce(values: dict, source: str) -> dict:
    """Known keys with values of their declared types and choices; ValueError otherwise."""
    known = {f.name: f for f in dataclasses.fields(TrainingSettings)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        hints = {key: difflib.get_close_matches(key, known, n=2) for key in unknown}
        hint_text = "; ".join(f"`{k}`: did you mean {', '.join(v)}?" for k, v in hints.items() if v)
        raise ValueError(
            f"unknown setting(s) {unknown} in {source}. {hint_text + ' ' if hint_text else ''}"
            f"Known settings: {', '.join(known)}."
        )
    checked = {}
    for name, value in values.items():
        annotation = known[name].type if isinstance(known[name].type, str) else str(known[name].type)
        checked[name] = _type_check(name, value, annotation)
        choices = known[name].metadata.get("choices")
        if choices and checked[name] is not None and checked[name] not in choices:
            raise ValueError(f"setting `{name}` must be one of {list(choices)}, got {checked[name]!r}.")
    return checked


def _merge(values: dict, update: dict, skip: set = frozenset()) -> dict:
    merged = dict(values)
    for key, value in update.items():
        if key in skip:
            continue
        merged[key] = {**merged.get(key, {}), **value} if key == "model" and isinstance(value, dict) else value
    return merged


def load_settings(config_path: str | os.PathLike | None = None, overrides: dict | None = None) -> TrainingSettings:
    """Defaults < the YAML file < its ``per_stage`` block for the run's stage < ``overrides`` (the
    command-line values that were given). ``model`` mappings merge key by key.

    Raises ValueError for a key that is not a setting (with the closest known ones), a value of the wrong
    type, or a value outside its choices.
    """
    values: dict[str, Any] = {}
    source = "the overrides"
    if config_path is not None:
        import yaml

        path = Path(config_path)
        if not path.is_file():
            raise ValueError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a mapping of settings, got {type(loaded).__name__}.")
        values.update(_coerce(loaded, str(path)))
        source = str(path)
    overrides = _coerce(dict(overrides or {}), "the command line" if config_path else source)
    per_stage = overrides.get("per_stage", values.get("per_stage", {}))
    for stage, block in per_stage.items():
        if str(stage) not in STAGES or not isinstance(block, dict):
            raise ValueError(f"per_stage must map stages {list(STAGES)} to mappings of settings, got {stage!r}: "
                             f"{block!r}.")
        if {"stage", "per_stage"} & set(block):
            raise ValueError(f"per_stage[{stage!r}] may not set `stage` or `per_stage`.")
        _coerce(block, f"per_stage[{stage!r}] of {source}")
    values = _merge(values, overrides)
    values["per_stage"] = {str(k): v for k, v in per_stage.items()}
    settings = TrainingSettings(**values)
    settings.explicit = set(overrides)  # not a field: what the command line fixed, which per_stage never changes
    if settings.stage in STAGES:
        settings = settings_for_stage(settings, settings.stage)
    _check_settings(settings)
    return settings


def settings_for_stage(settings: TrainingSettings, stage: str, **changes) -> TrainingSettings:
    """The settings of one stage: its ``per_stage`` block applied (command-line values still win), then
    ``changes``."""
    explicit = getattr(settings, "explicit", set())
    values = _merge(settings.to_dict(), _coerce(settings.per_stage.get(stage, {}), f"per_stage[{stage!r}]"),
                    skip=explicit)
    if stage != "2":  # a '1+2' pipeline's router-only flag and slimmable weight are for its stage 2
        values["train_router_only"] = False
        if settings.stage == PIPELINE:
            values["slimmable_weight"] = 0.0
    values = _merge(values, {"stage": stage, **changes})
    result = TrainingSettings(**_coerce(values, "the settings"))
    result.explicit = explicit
    _check_settings(result)
    return result


def _check_settings(settings: TrainingSettings):
    def require(condition, message):
        if not condition:
            raise ValueError(message)

    for name in ("train_batch_size", "gradient_accumulation_steps", "checkpointing_steps", "eval_batch_size",
                 "logging_steps", "num_train_epochs"):
        require(getattr(settings, name) >= 1, f"setting `{name}` must be >= 1, got {getattr(settings, name)}.")
    for name in ("max_train_steps", "checkpoints_total_limit", "max_valid_items", "max_test_items", "num_threads"):
        value = getattr(settings, name)
        require(value is None or value >= 1, f"setting `{name}` must be >= 1 or empty, got {value}.")
    require(settings.validation_steps >= 0, f"`validation_steps` must be >= 0, got {settings.validation_steps}.")
    require(settings.gumbel_noise_decay_steps >= 0,
            f"`gumbel_noise_decay_steps` must be >= 0 (0 = no decay), got {settings.gumbel_noise_decay_steps}.")
    require(settings.learning_rate > 0, f"`learning_rate` must be > 0, got {settings.learning_rate}.")
    require(settings.segment > 0 and settings.segment_stride > 0,
            f"`segment` and `segment_stride` must be > 0 seconds, got {settings.segment}, {settings.segment_stride}.")
    require(settings.max_grad_norm is None or settings.max_grad_norm > 0,
            f"`max_grad_norm` must be > 0 or empty, got {settings.max_grad_norm}.")
    require(0 <= settings.bandmask < 1, f"`bandmask` must lie in [0, 1), got {settings.bandmask}.")
    require(0 <= settings.revecho <= 1, f"`revecho` must lie in [0, 1], got {settings.revecho}.")
    require(settings.shift >= 0, f"`shift` must be >= 0 samples, got {settings.shift}.")
    require(not settings.speed_factors or settings.dataset in ("dns", "corpus"),
            f"`speed_factors` applies to the datasets mixed on the fly (dns, corpus), not {settings.dataset!r}.")
    if settings.stage == "static":
        require(settings.static_utilization is not None, "stage 'static' needs `static_utilization` (a factor).")
    elif settings.stage != PIPELINE:
        require(settings.static_utilization is None,
                f"`static_utilization` belongs to stage 'static', not stage {settings.stage!r}.")
    require(settings.stage != PIPELINE or settings.static_utilization is None,
            "`static_utilization` belongs to stage 'static', not to the '1+2' pipeline.")
    require(settings.calibrate_router >= 0,
            f"`calibrate_router` must be >= 0 segments, got {settings.calibrate_router}.")
    require(not settings.train_router_only or settings.stage in ("2", PIPELINE),
            "`train_router_only` needs stage '2' (the router is not used in stages '1' and 'static').")
    require(settings.slimmable_weight >= 0, f"`slimmable_weight` must be >= 0, got {settings.slimmable_weight}.")
    require(not settings.slimmable_weight or settings.stage in ("2", PIPELINE),
            "`slimmable_weight` is a stage-2 setting (stage 1 trains every factor already).")
    require(not (settings.slimmable_weight and settings.train_router_only),
            "`slimmable_weight` trains the backbone's widths; it cannot go with `train_router_only`.")
    unknown_model = sorted(set(settings.model) - set(_config_fields()))
    if unknown_model:
        hints = {key: difflib.get_close_matches(key, _config_fields(), n=2) for key in unknown_model}
        hint_text = "; ".join(f"`{k}`: did you mean {', '.join(v)}?" for k, v in hints.items() if v)
        raise ValueError(f"unknown model setting(s) {unknown_model}. {hint_text + ' ' if hint_text else ''}"
                         f"AdaSlimConfig fields: {', '.join(_config_fields())}.")


def _config_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(AdaSlimConfig) if not f.name.startswith("_")
            and f.name in AdaSlimConfig.__annotations__]


# ----------------------------------------------------------------------------------------------------
# The model to start from
# ----------------------------------------------------------------------------------------------------


def _architecture(config: AdaSlimConfig) -> dict:
    return {name: getattr(config, name) for name in _config_fields() if name not in TRAINING_ONLY_FIELDS}


def _with_overrides(config: AdaSlimConfig, overrides: dict, origin: str) -> AdaSlimConfig:
    """A validated copy of ``config`` with ``overrides``; architecture fields must not change."""
    changed = {k: (getattr(config, k), v) for k, v in overrides.items()
               if k not in TRAINING_ONLY_FIELDS and getattr(config, k) != v
               and not (k == "utilization_factors" and [float(x) for x in v] == list(config.utilization_factors))}
    if changed:
        listed = ", ".join(f"{k}={old!r} (asked {new!r})" for k, (old, new) in changed.items())
        raise ValueError(f"{origin} has {listed}: architecture fields cannot change when starting from it; "
                         f"only {', '.join(TRAINING_ONLY_FIELDS)} may.")
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
      "adaslim") raises; ``model_overrides`` may change only the loss fields (TRAINING_ONLY_FIELDS);
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
        from .convert_denoiser import DENOISER_PRESETS, config_from_denoiser, convert_denoiser, load_denoiser_state_dict

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


# ----------------------------------------------------------------------------------------------------
# Training objectives: one forward per step (what DistributedDataParallel needs)
# ----------------------------------------------------------------------------------------------------


def slimmable_loss(model: AdaSlimModel, noisy: torch.Tensor, clean: torch.Tensor,
                   padding_mask: torch.Tensor | None = None, factors: Sequence[float] | None = None
                   ) -> tuple[torch.Tensor, dict[float, torch.Tensor]]:
    """Stage 1: L_slim = sum over ``factors`` (default: all configured) of L_SE(enhanced at u, clean) (+
    polarity_weight * L_Pol at u), each a static-factor forward with sliced weights. noisy, clean [B, T] ->
    (L_slim, {u: that factor's term})."""
    factors = model.config.utilization_factors if factors is None else factors
    shared = model.share_inputs(noisy, padding_mask, clean)  # normalised, up-sampled input and target spectra
    terms = {}
    for factor in factors:
        terms[float(factor)] = model(noisy, padding_mask=padding_mask, utilization=float(factor),
                                     clean_values=clean, shared_inputs=shared).loss
    return torch.stack(list(terms.values())).sum(), terms


class TrainingObjective(nn.Module):
    """Wraps the model so that every forward computes one *term* of a stage's loss.

    A step is one forward and one backward per term (:func:`backward_terms`): stage '1' has one term per
    factor (L_SE at that factor, sliced weights), so only one factor's graph is alive at a time; the
    gradient of L_slim = sum of terms is the sum of the terms' gradients. Stage '2' and 'static' have a
    single term. Under DistributedDataParallel the wrapper is what gets wrapped: every term is one DDP
    forward, and gradients are all-reduced once, after the last term.

    With ``slimmable_weight`` > 0, stage '2' has stage 1's terms too (every factor, sliced weights), each
    scaled by the weight: the router's term keeps every width learning whatever the router picks.

    ``forward(noisy [B, T], clean [B, T], padding_mask [B, T] or None, term)`` -> dict with ``loss`` (the
    tensor to back-propagate) and detached scalars to log (``se_loss/u<factor>`` in stage 1; ``se_loss``,
    ``efficiency_loss``, ``balance_loss``, ``mean_utilization`` and ``fraction/u<factor>`` in stage 2).

    Stage 1 computes the width-independent part of the batch (``AdaSlimModel.share_inputs``: normalised,
    up-sampled input and the target's spectra) at its first term and reuses it for the other factors, as long
    as it is called with the same, unmodified tensors.
    """

    def __init__(self, model: AdaSlimModel, stage: str, static_utilization: float | None = None,
                 slimmable_weight: float = 0.0):
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}.")
        if slimmable_weight and stage != "2":
            raise ValueError(f"slimmable_weight applies to stage '2', not stage {stage!r}.")
        self.model = model
        self.stage = stage
        self.slimmable_weight = float(slimmable_weight)
        self._shared_inputs = None  # stage 1: the last batch's SharedInputs
        self.static_utilization = None
        if stage == "static":
            model.config.factor_index(static_utilization)  # ValueError listing the allowed factors
            self.static_utilization = float(static_utilization)

    def terms(self) -> list[float | None]:
        """The terms of one step: every factor (stage '1'), the factor ('static') or None (the router), then
        every factor in stage '2' with a slimmable weight."""
        factors = [float(u) for u in self.model.config.utilization_factors]
        if self.stage == "1":
            return factors
        if self.stage == "static":
            return [self.static_utilization]
        return [None] + (factors if self.slimmable_weight else [])

    def forward(self, noisy: torch.Tensor, clean: torch.Tensor, padding_mask: torch.Tensor | None = None,
                term: float | None = None, gumbel_noise_scale: float = 1.0):
        if term is not None and term not in self.terms():
            raise ValueError(f"stage {self.stage!r} has the terms {self.terms()}, not {term!r}.")
        if self.stage in ("1", "static") or term is not None:
            if term is None:
                raise ValueError(f"stage {self.stage!r} needs a factor as `term`, one of {self.terms()}.")
            shared = None
            if self.stage in ("1", "2"):
                shared = self._shared_inputs
                if shared is None or not shared.matches(noisy, padding_mask, clean):
                    shared = self._shared_inputs = self.model.share_inputs(noisy, padding_mask, clean)
            out = self.model(noisy, padding_mask=padding_mask, utilization=float(term), clean_values=clean,
                             shared_inputs=shared)
            loss = out.loss * self.slimmable_weight if self.stage == "2" else out.loss
            return {"loss": loss, f"se_loss/u{float(term):g}": out.se_loss.detach(),
                    f"polarity_loss/u{float(term):g}": out.polarity_loss.detach()}
        out = self.model(noisy, padding_mask=padding_mask, clean_values=clean, gumbel_noise_scale=gumbel_noise_scale)
        factors = self.model.config.utilization_factors
        valid = out.choice >= 0
        counts = torch.stack([((out.choice == j) & valid).sum() for j in range(len(factors))]).float()
        fractions = counts / valid.sum().clamp(min=1)
        logs = {
            "se_loss": out.se_loss.detach(),
            "polarity_loss": out.polarity_loss.detach(),
            "efficiency_loss": out.efficiency_loss.detach(),
            "balance_loss": out.balance_loss.detach(),
            "mean_utilization": out.mean_utilization.detach().mean(),
        }
        if out.share_loss is not None:
            logs["share_loss"] = out.share_loss.detach()
        logs.update({f"fraction/u{factor:g}": fractions[j] for j, factor in enumerate(factors)})
        return {"loss": out.loss, **logs}


def backward_terms(objective: nn.Module, terms: Sequence[float | None], noisy: torch.Tensor, clean: torch.Tensor,
                   padding_mask: torch.Tensor | None = None, *, backward: Callable = torch.Tensor.backward,
                   no_sync: Callable | None = None, check_loss: Callable | None = None,
                   gumbel_noise_scale: float = 1.0) -> dict[str, float]:
    """Forward and backward every term of one step, accumulating gradients; -> the logged values, with
    ``loss`` the sum of the terms (L_slim in stage 1).

    ``backward`` is ``accelerator.backward`` in the loop (scaling for accumulation and mixed precision);
    ``no_sync`` a context factory (``lambda: accelerator.no_sync(objective)``) entered for every term but
    the last, so distributed gradients are reduced once per step; ``check_loss(loss, term)`` runs before
    each backward (the NaN guard); ``gumbel_noise_scale`` reaches the router's choice (stage 2, see
    ``gumbel_noise_scale_at``).
    """
    logs: dict[str, float] = {}
    total = 0.0
    for index, term in enumerate(terms):
        last = index == len(terms) - 1
        with no_sync() if no_sync is not None and not last else contextlib.nullcontext():
            outputs = objective(noisy, clean, padding_mask, term, gumbel_noise_scale=gumbel_noise_scale)
            if check_loss is not None:
                check_loss(outputs["loss"], term)
            backward(outputs["loss"])
        total += float(outputs["loss"].detach())
        logs.update({k: float(v) for k, v in outputs.items() if k != "loss"})
    logs["loss"] = total
    return logs


def gumbel_noise_scale_at(step: int, decay_steps: int) -> float:
    """The scale of the router's Gumbel noise at optimizer step ``step`` (0-based): 1 - step / decay_steps,
    down to 0 and staying there; always 1 when ``decay_steps`` is 0."""
    if decay_steps <= 0:
        return 1.0
    return max(0.0, 1.0 - step / decay_steps)


# ----------------------------------------------------------------------------------------------------
# Data: adapters over adaslim_hf.data (datasets, augmentations, collation)
# ----------------------------------------------------------------------------------------------------

@dataclass
class EpochStream:
    """A streaming training set rebuilt for every epoch (new mixtures of the same speech each epoch):
    ``build(epoch) -> datasets.IterableDataset``. It has no length: runs on it need ``max_train_steps``."""

    build: Callable[[int], Any]
    description: str


def load_mixtures(folder: str, sample_rate: int):
    """Fixed noisy/clean pairs from a folder in the VoiceBank test layout (noisy_testset_wav/clean_testset_wav)
    or the DNS synthetic test-set layout (noisy/, clean/ paired by fileid_N)."""
    from .data.dns import load_dns_test_set
    from .data.voicebank import load_voicebank

    root = Path(folder)
    if (root / "noisy_testset_wav").is_dir() or (root / "clean_testset_wav").is_dir():
        return load_voicebank(root, "test", sampling_rate=sample_rate)
    if (root / "noisy").is_dir() or (root / "clean").is_dir():
        return load_dns_test_set(root, sampling_rate=sample_rate)
    raise ValueError(f"{root} holds neither the VoiceBank test layout (noisy_testset_wav, clean_testset_wav) nor "
                     f"the DNS layout (noisy/, clean/); found "
                     f"{sorted(p.name for p in root.iterdir()) if root.is_dir() else 'no folder'}.")


def build_datasets(settings: TrainingSettings, config: AdaSlimConfig) -> tuple:
    """(training set, validation utterances or None, test utterances or None) for ``settings.dataset``.

    - 'voicebank' (``adaslim_hf.data.voicebank``): ``data_dir`` is the original folder layout or a Hub dataset
      id; validation holds out ``valid_speakers`` of the training folders; training files are cut into
      ``segment``-second segments every ``segment_stride`` seconds, the last one of each file zero-padded
      (DEMUCS' ``pad``). The training set is a map-style ``datasets.Dataset``.
    - 'dns' (``adaslim_hf.data.dns``): clean speech from ``data_dir`` mixed on the fly with noise from
      ``noise_dir`` (random SNR and level, optional RIRs), an :class:`EpochStream`; validation and test
      come from ``valid_dir`` / ``test_dir``.
    ``valid_dir`` / ``test_dir`` (fixed mixtures) replace the defaults of either dataset.
    """
    from .data.collate import segment_pairs

    rate = config.sample_rate
    if settings.data_dir is None:
        raise ValueError(f"dataset {settings.dataset!r} needs `data_dir`.")
    valid_set = load_mixtures(settings.valid_dir, rate) if settings.valid_dir else None
    test_set = load_mixtures(settings.test_dir, rate) if settings.test_dir and settings.evaluate_test else None
    if settings.dataset == "voicebank":
        from .data.voicebank import VALID_SPEAKERS, load_voicebank, load_voicebank_hub

        speakers = VALID_SPEAKERS if settings.valid_speakers is None else tuple(settings.valid_speakers)
        if settings.valid_dir:
            speakers = ()
        local = Path(settings.data_dir).exists() or settings.data_dir.startswith((".", "/", "~"))
        load = load_voicebank if local else load_voicebank_hub
        variant = {"trainset": settings.trainset} if local else {}
        files = load(settings.data_dir, "train", sampling_rate=rate, valid_speakers=speakers, **variant)
        train_set = segment_pairs(files, segment_seconds=settings.segment, stride_seconds=settings.segment_stride,
                                  pad=True, sampling_rate=rate)
        if speakers:
            valid_set = load(settings.data_dir, "validation", sampling_rate=rate, valid_speakers=speakers, **variant)
        if settings.evaluate_test and not settings.test_dir:
            test_set = load(settings.data_dir, "test", sampling_rate=rate)
        return train_set, valid_set, test_set
    if settings.dataset in ("dns", "corpus"):
        from .data.dns import SNR_RANGE, dns_training_stream

        if settings.dataset == "corpus":
            from .data.corpus import load_corpus, read_corpus_info

            read_corpus_info(settings.data_dir)  # ValueError when the corpus is not built there
            speech = Path(settings.data_dir) / "pool" / "speech" / "train"
            noise = Path(settings.data_dir) / "pool" / "noise" / "train"
            if valid_set is None:
                valid_set = load_corpus(settings.data_dir, "validation", sampling_rate=rate)
            if test_set is None and settings.evaluate_test:
                test_set = load_corpus(settings.data_dir, "test", sampling_rate=rate)
        elif settings.noise_dir is None:
            raise ValueError("dataset 'dns' needs `noise_dir` (the noise folder) next to `data_dir` (clean speech).")
        else:
            speech, noise = settings.data_dir, settings.noise_dir
        snr_range = tuple(float(v) for v in (settings.snr_range or SNR_RANGE))
        if len(snr_range) != 2 or snr_range[0] > snr_range[1]:
            raise ValueError(f"snr_range must be [low, high] in dB, got {settings.snr_range}.")

        def build(epoch: int):
            stream = dns_training_stream(
                speech, noise, rir_dir=settings.rir_dir,
                rir_probability=settings.rir_probability, sampling_rate=rate, segment_seconds=settings.segment,
                stride_seconds=settings.segment_stride, snr_range=snr_range, speed_factors=settings.speed_factors,
                seed=settings.seed, epoch=epoch,
            )
            stream = stream.shuffle(seed=settings.seed, buffer_size=settings.shuffle_buffer)
            stream.set_epoch(epoch)
            return stream

        build(0)  # the folders are listed (and checked) now, before any step
        description = f"clean speech {speech} x noise {noise}, mixed on the fly"
        return EpochStream(build, description), valid_set, test_set
    raise ValueError(f"dataset must be 'voicebank' or 'dns', got {settings.dataset!r}.")


def make_collator(config: AdaSlimConfig):
    """Training batches: ``input_values``, ``clean_values``, ``padding_mask`` and ``ids``, cropped to the
    longest length the model takes without internal padding (DEMUCS trains on valid lengths)."""
    from .data.collate import SpeechEnhancementCollator

    return SpeechEnhancementCollator(valid_length=config.valid_length, valid_length_mode="crop",
                                     sampling_rate=config.sample_rate, return_ids=True)


def make_augment(settings: TrainingSettings, sample_rate: int) -> Callable:
    """DEMUCS' chain (remix -> band-mask -> shift -> reverb) on the (noise = noisy - clean, clean) stack:
    ``augment(noisy [B, T], clean [B, T], generator) -> (noisy, clean)``; the identity when all are off."""
    from .data.augment import augment_pair, build_augmentation

    chain = build_augmentation(remix=settings.remix, bandmask=settings.bandmask, shift=settings.shift,
                               shift_same=settings.shift_same, revecho=settings.revecho, sample_rate=sample_rate)
    chain.train()
    if not len(chain.steps):
        return lambda noisy, clean, generator=None: (noisy, clean)
    return lambda noisy, clean, generator=None: augment_pair(chain, noisy, clean, generator=generator)


# ----------------------------------------------------------------------------------------------------
# Validation: PESQ / STOI / SI-SDR, loss, mean utilization and MACs per validated setting
# ----------------------------------------------------------------------------------------------------


def setting_name(utilization: float | None) -> str:
    """'auto' for the router, 'u0.25' for a static factor: the keys of validation results."""
    return "auto" if utilization is None else f"u{utilization:g}"


def parse_utilizations(values: Iterable | None, stage: str, config: AdaSlimConfig,
                       static_utilization: float | None = None) -> list[float | None]:
    """Validation settings: None means the router decides ('auto'), a float a static factor (checked)."""
    if values is None:
        if stage == "1":
            return list(config.utilization_factors)
        return [None] if stage == "2" else [float(static_utilization)]
    parsed = []
    for value in values:
        if isinstance(value, str) and value.strip().lower() in ("auto", "router", "none"):
            parsed.append(None)
            continue
        try:
            factor = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"validation_utilizations entries must be 'auto' or factors "
                             f"{config.utilization_factors}, got {value!r}.") from None
        config.factor_index(factor)
        parsed.append(factor)
    return parsed


def _waveform(value) -> torch.Tensor:
    """A 1-D float32 tensor from a tensor, an array, a datasets Audio value or a {'array': ...} dict."""
    if isinstance(value, torch.Tensor):
        return value.detach().float().reshape(-1)
    if isinstance(value, dict) or hasattr(value, "__getitem__") and not hasattr(value, "shape"):
        try:
            value = value["array"]
        except (KeyError, TypeError, IndexError):
            pass
    return torch.as_tensor(value, dtype=torch.float32).reshape(-1)


QUALITY_METRICS = ("pesq", "stoi", "si_sdr")


def quality_metrics(enhanced: Sequence[torch.Tensor], clean: Sequence[torch.Tensor],
                    sample_rate: int) -> list[dict[str, float]]:
    """PESQ (wide-band), STOI and SI-SDR of each item, through ``adaslim_hf.metrics.compute_all`` (the evaluate
    modules). An item where a metric cannot be computed (PESQ finds no utterance) scores NaN there; PESQ is
    left out at rates other than 16 kHz."""
    from .metrics import compute_all

    names = QUALITY_METRICS if sample_rate == 16000 else tuple(m for m in QUALITY_METRICS if m != "pesq")
    scores = compute_all([e.numpy() for e in enhanced], [c.numpy() for c in clean], sample_rate,
                         metrics=names, per_item=True)
    return [{name: scores[f"{name}_per_item"][i] for name in names} for i in range(len(enhanced))]


@torch.no_grad()
def evaluate(model: AdaSlimModel, dataset, utilizations: Sequence[float | None], *, batch_size: int = 4,
             max_items: int | None = None, include_noisy: bool = False, accelerator=None,
             metric_fn: Callable = quality_metrics, desc: str = "validation") -> dict[str, dict[str, float]]:
    """Enhance every item of ``dataset`` (whole utterances; items hold ``noisy`` and ``clean`` waveforms)
    once per setting and average the metrics over items. ``metric_fn(enhanced list, clean list, rate)`` gives
    each item's scores (default: PESQ, STOI, SI-SDR through ``adaslim_hf.metrics``).

    Items are batched with a padding mask (each item gets exactly what it gets alone) and, with an
    ``accelerator`` of several processes, split across processes and gathered. Returns
    ``{setting_name: {"pesq", "stoi", "si_sdr", "loss", "inverted", "mean_utilization", "macs_per_sample",
    "items"}}`` (``inverted``: the share of items whose output correlates negatively with the clean speech)
    (plus ``"noisy"``: the metrics of the unprocessed input, with ``include_noisy``).
    """
    was_training = model.training
    model.eval()
    rank = accelerator.process_index if accelerator is not None else 0
    world = accelerator.num_processes if accelerator is not None else 1
    from .data.collate import spread_indices

    indices = spread_indices(len(dataset), max_items)[rank::world]  # an even spread of the split
    sample_rate = model.config.sample_rate
    device = next(model.parameters()).device
    records: list[dict] = []
    from tqdm.auto import tqdm

    starts = range(0, len(indices), batch_size)
    show = accelerator is None or accelerator.is_local_main_process
    for start in tqdm(starts, desc=desc, leave=False, disable=not show or len(starts) < 2, dynamic_ncols=True):
        items = [dataset[i] for i in indices[start : start + batch_size]]
        noisy = [_waveform(item["noisy"]) for item in items]
        clean = [_waveform(item["clean"]) for item in items]
        lengths = [len(n) for n in noisy]
        longest = max(lengths)
        noisy_batch = torch.zeros(len(items), longest)
        clean_batch = torch.zeros(len(items), longest)
        mask = torch.zeros(len(items), longest, dtype=torch.long)
        for row, (n, c) in enumerate(zip(noisy, clean)):
            noisy_batch[row, : len(n)], clean_batch[row, : len(c)], mask[row, : len(n)] = n, c, 1
        noisy_batch, clean_batch, mask = noisy_batch.to(device), clean_batch.to(device), mask.to(device)
        if include_noisy:
            for scores in metric_fn(noisy, clean, sample_rate):
                records.append({"setting": "noisy", **scores})
        for utilization in utilizations:
            out = model(noisy_batch, padding_mask=mask, utilization=utilization, clean_values=clean_batch)
            enhanced = [out.enhanced_values[row, :n].float().cpu() for row, n in enumerate(lengths)]
            for row, scores in enumerate(metric_fn(enhanced, clean, sample_rate)):
                records.append({
                    "setting": setting_name(utilization),
                    **scores,
                    "loss": float(out.se_loss),
                    # 1 when the output is anti-correlated with the clean speech: PESQ, STOI and SI-SDR cannot
                    # see it, mixing with other widths or with the input cancels it (losses.polarity_loss)
                    "inverted": float(torch.dot(enhanced[row], clean[row]) < 0),
                    "mean_utilization": float(out.mean_utilization[row]),
                    "macs_per_sample": float(out.macs[row]) / lengths[row],
                })
    if world > 1:
        from accelerate.utils import gather_object

        records = gather_object(records)
    results: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["setting"] for r in records):
        group = [r for r in records if r["setting"] == name]
        results[name] = {}
        for key in (k for k in group[0] if k != "setting"):
            finite = [r[key] for r in group if r[key] is not None and math.isfinite(r[key])]
            # a metric that cannot be computed on an item (PESQ finds no speech) is left out, and counted
            results[name][key] = sum(finite) / len(finite) if finite else math.nan
            if len(finite) < len(group):
                results[name][f"{key}_failed_items"] = len(group) - len(finite)
        results[name]["items"] = len(group)
    model.train(was_training)
    return results


def score(results: dict[str, dict[str, float]], metric: str) -> float:
    """Mean of ``metric`` over the validated settings (the noisy baseline excluded); higher is better
    (the loss is negated)."""
    values = [r[metric] for name, r in results.items() if name != "noisy" and metric in r]
    if not values:
        return -math.inf
    mean = sum(values) / len(values)
    return -mean if metric == "loss" else mean


@torch.no_grad()
def calibrate_router(model: AdaSlimModel, batches: Iterable[dict], target: float | None = None,
                     min_share: float | None = None, iterations: int = 60, rounds: int = 300) -> dict:
    """Make the router's arg-max decisions meet ``target`` (default: ``config.target_utilization``) on average,
    keeping every factor on at least ``min_share`` of the frames (default: ``config.min_factor_share``).

    Training pulls the mean utilization of the *Gumbel-perturbed* choices to the target; at inference the
    router takes the arg max without noise, whose mean can land elsewhere (the paper's joint models overshoot
    by ~0.04). A cost term fixes that: decisions become arg max_j (r_j - lambda u_j + b_j), whose mean
    utilization falls monotonically as lambda grows, so bisection finds the lambda that meets the target on
    ``batches`` (noisy ``input_values`` with optional ``padding_mask``; use training data, not the validation
    set). The bonus b_j is 0 unless factor j would then take less than ``min_share`` of the frames: such a
    factor gets the smallest bonus that lifts it to the share plus a 5% margin (bisection again), lambda is
    found anew, and so on until both hold or ``rounds`` are spent (then "floor_met" is False). The offsets
    are folded into the bias of the router's last conv, so the saved model decides this way by itself.

    Returns {"lambda", "bonus" (b_j per factor), "utilization_before", "utilization_after", "shares_before",
    "shares_after" (fraction of frames per factor), "min_share", "target", "floor_met" (every factor at its
    share)} (utilizations are means over items, as the validation reports them). A target below the smallest factor is left alone (decisions unchanged;
    the result then has a "skipped" reason): meeting it would put every frame at the smallest factor.
    """
    config = model.config
    target = config.target_utilization if target is None else float(target)
    min_share = config.min_factor_share if min_share is None else float(min_share)
    was_training = model.training
    model.eval()
    # every valid frame of every item in one table: scores [F, J], the item each belongs to [F]
    scores, items, item_frames = [], [], []
    for batch in batches:
        out = model(batch["input_values"], padding_mask=batch.get("padding_mask"))
        valid = out.choice >= 0  # [B, N]
        scores.append(out.router_logits.float()[valid])  # [F_batch, J]
        items.append(valid.nonzero()[:, 0] + len(item_frames))
        item_frames.extend(valid.sum(dim=1).tolist())
    model.train(was_training)
    scores, items = torch.cat(scores), torch.cat(items)
    item_frames = torch.tensor(item_frames, dtype=torch.float).clamp(min=1)  # [items]
    factors = torch.tensor(config.utilization_factors)  # [J]
    frames = max(float(scores.shape[0]), 1.0)

    def decide(offsets: torch.Tensor) -> tuple[float, torch.Tensor]:
        """-> (mean utilization over items, [J] share of frames per factor) with scores r + offsets."""
        chosen = (scores + offsets).argmax(dim=-1)  # [F]
        per_item = torch.bincount(items, weights=factors[chosen], minlength=len(item_frames)) / item_frames
        return float(per_item.mean()), torch.bincount(chosen, minlength=len(factors)).float() / frames

    def bisect(too_low, low: float, high: float) -> tuple[float, float]:
        """-> (low, high) closing in on the boundary between values where ``too_low(value)`` holds (below)
        and where it does not (above)."""
        for _ in range(iterations):
            middle = (low + high) / 2
            low, high = (middle, high) if too_low(middle) else (low, middle)
        return low, high

    before, shares_before = decide(torch.zeros(len(factors)))
    result = {"lambda": 0.0, "bonus": [0.0] * len(factors), "utilization_before": before,
              "utilization_after": before, "shares_before": shares_before.tolist(),
              "shares_after": shares_before.tolist(), "min_share": min_share, "target": target,
              "floor_met": bool((shares_before >= min_share).all())}
    if target < factors[0].item():  # "as cheap as possible": meeting it would mean every frame at the smallest
        return {**result, "skipped": f"target {target} lies below the smallest factor {factors[0].item():g}"}
    spread = max(float(scores.abs().max()) if scores.numel() else 0.0, 1.0)
    reach = 4 * spread / factors[0].item()  # lambda = -reach: every frame at 1.0 ... +reach: every frame at u_1
    bonus = torch.zeros(len(factors))
    # lifting one factor at a fixed lambda, then finding lambda again, approaches the share from below only
    # geometrically; aiming a little above it ends the rounds in a few steps
    share_margin = 0.05 * min_share

    def solve_lambda() -> float:
        bounds = bisect(lambda value: decide(bonus - value * factors)[0] > target, -reach, reach)
        return min(bounds, key=lambda value: abs(decide(bonus - value * factors)[0] - target))

    shift = solve_lambda()
    for _ in range(rounds if min_share > 0 else 0):
        shares = decide(bonus - shift * factors)[1]
        short = [j for j in range(len(factors)) if shares[j] < min_share]
        if not short:
            break
        for j in short:  # the smallest extra bonus that gives factor j its share (plus a margin) at this lambda
            def below(extra: float, j=j) -> bool:
                trial = bonus.clone()
                trial[j] += extra
                return decide(trial - shift * factors)[1][j] < min_share + share_margin
            bonus[j] += bisect(below, 0.0, 2 * (spread + abs(shift)) + 2 * float(bonus.abs().max()) + 1.0)[1]
        shift = solve_lambda()
    after, shares_after = decide(bonus - shift * factors)
    model.router.projection.bias.data += (bonus - shift * factors).to(model.router.projection.bias)
    return {**result, "lambda": shift, "bonus": bonus.tolist(), "utilization_after": after,
            "shares_after": shares_after.tolist(), "floor_met": bool((shares_after >= min_share).all())}


# ----------------------------------------------------------------------------------------------------
# Checkpoints: accelerate's automatic naming, a completion marker, atomic folders
# ----------------------------------------------------------------------------------------------------

CHECKPOINT_MARKER = "training_state.json"


@dataclass
class TrainingProgress:
    """Where the run is: registered with ``accelerator.register_for_checkpointing`` so every checkpoint
    carries it. ``batches_in_epoch`` counts micro-batches of the current epoch already consumed."""

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    best_score: float = -math.inf
    best_step: int = -1

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict):
        for key, value in state.items():
            setattr(self, key, value)


def atomic_write_json(path: str | os.PathLike, data) -> None:
    """Write JSON to a temporary file in the same folder, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(_finite_or_none(data), stream, indent=2, sort_keys=False, default=_json_default, allow_nan=False)
            stream.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _finite_or_none(value):
    """NaN and infinities become null: strict JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def _json_default(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def atomic_save_pretrained(model: AdaSlimModel, folder: str | os.PathLike, state_dict: dict | None = None,
                           extra_json: dict[str, Any] | None = None) -> Path:
    """``model.save_pretrained`` into a temporary sibling folder, then swap it in: a reader never sees a
    half-written model, and a crash leaves the previous folder intact."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        model.save_pretrained(tmp, state_dict=state_dict)
        for name, data in (extra_json or {}).items():
            atomic_write_json(tmp / name, data)
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _checkpoint_index(path: Path) -> int | None:
    prefix = "checkpoint_"
    if path.is_dir() and path.name.startswith(prefix) and path.name[len(prefix):].isdigit():
        return int(path.name[len(prefix):])
    return None


def list_checkpoints(output_dir: str | os.PathLike, complete_only: bool = True) -> list[Path]:
    """checkpoint_N folders under ``<output_dir>/checkpoints`` in save order; ``complete_only`` keeps those
    whose save finished (the marker is written last)."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = sorted((p for p in root.iterdir() if _checkpoint_index(p) is not None), key=_checkpoint_index)
    return [p for p in found if not complete_only or (p / CHECKPOINT_MARKER).is_file()]


def resolve_resume_checkpoint(resume_from_checkpoint: str, output_dir: str | os.PathLike) -> Path | None:
    """'latest' -> the newest complete checkpoint of ``output_dir`` (None when there is none yet); a path ->
    that folder, which must be a complete checkpoint."""
    if resume_from_checkpoint == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume_from_checkpoint)
    if not path.is_dir():
        raise ValueError(f"resume_from_checkpoint {path} does not exist (give 'latest' or a checkpoint_N folder).")
    if not (path / CHECKPOINT_MARKER).is_file():
        raise ValueError(f"resume_from_checkpoint {path} is not a complete checkpoint of this trainer "
                         f"(no {CHECKPOINT_MARKER}); it may have been interrupted while saving.")
    return path


def check_checkpoint_fits(checkpoint: Path, config: AdaSlimConfig) -> None:
    """Compare the architecture a checkpoint was saved with to the model of this run (ValueError listing
    the differing fields) before accelerate loads any tensor."""
    saved = checkpoint / "pretrained" / "config.json"
    if not saved.is_file():
        raise ValueError(f"checkpoint {checkpoint} has no pretrained/config.json: not written by this trainer.")
    data = json.loads(saved.read_text())
    if data.get("model_type") != AdaSlimConfig.model_type:
        raise ValueError(f"checkpoint {checkpoint} holds a {data.get('model_type')!r} model, expected "
                         f"{AdaSlimConfig.model_type!r}.")
    theirs = _architecture(AdaSlimConfig.from_dict(data))
    ours = _architecture(config)
    differing = {k: (theirs[k], ours[k]) for k in ours if theirs.get(k) != ours[k]}
    if differing:
        listed = ", ".join(f"{k}: checkpoint {a!r}, this run {b!r}" for k, (a, b) in differing.items())
        raise ValueError(f"checkpoint {checkpoint} was saved from another architecture ({listed}).")


def remove_incomplete_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Delete checkpoint_N folders whose save never finished (a run killed while saving)."""
    complete = set(list_checkpoints(output_dir))
    removed = []
    for path in list_checkpoints(output_dir, complete_only=False):
        if path not in complete:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def micro_batch_seed(seed: int, epoch: int, batch: int, process: int) -> int:
    """The seed of one micro-batch's randomness (augmentation, Gumbel noise): a pure function of where the
    run is, so a resumed run draws exactly what the uninterrupted one did."""
    digest = hashlib.sha256(f"{seed}/{epoch}/{batch}/{process}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


# ----------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------


def calibration_batches(train_dataset, count: int, batch_size: int, collator) -> list[dict]:
    """The first ``count`` training segments (epoch 0's order for a stream), collated in batches."""
    if isinstance(train_dataset, EpochStream):
        import itertools

        items = list(itertools.islice(iter(train_dataset.build(0)), count))
    else:
        items = [train_dataset[i] for i in range(min(count, len(train_dataset)))]
    return [collator(items[start : start + batch_size]) for start in range(0, len(items), batch_size)]


def _describe_batch(batch: dict) -> str:
    ids = batch.get("ids") if isinstance(batch, dict) else None
    if ids is None and isinstance(batch, dict):
        ids = batch.get("id")
    if ids is None:
        return ""
    ids = list(ids)
    shown = ", ".join(map(str, ids[:8])) + (", ..." if len(ids) > 8 else "")
    return f", items [{shown}]"


def _last_good_checkpoint(output_dir) -> str:
    found = list_checkpoints(output_dir)
    if not found:
        return "no checkpoint was saved before it"
    state = json.loads((found[-1] / CHECKPOINT_MARKER).read_text())
    return f"the last good checkpoint is {found[-1]} (step {state['global_step']})"


def _unwrapped(accelerator, objective) -> AdaSlimModel:
    return accelerator.unwrap_model(objective).model


def _model_state_dict(accelerator, objective) -> dict:
    """The model's own state dict (keys without the objective's ``model.`` prefix), gathered by accelerate
    (needed for sharded set-ups; on CPU/DDP a plain copy)."""
    state = accelerator.get_state_dict(objective)
    return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}


RUN_OUTPUTS = ("checkpoints", "best", "model", "steps.jsonl", "evaluation.json")


def _train_pipeline(settings: TrainingSettings, datasets: tuple | None) -> Path:
    """Stage 1 into <output_dir>/stage1, then stage 2 from its model into <output_dir>/stage2 (each with its
    ``per_stage`` settings). Resuming skips a stage 1 that finished and resumes the stage that did not."""
    from accelerate.state import AcceleratorState, GradientState

    root = Path(settings.output_dir)
    first = settings_for_stage(settings, "1", output_dir=str(root / "stage1"))
    stage1_model = root / "stage1" / "model"
    if settings.resume_from_checkpoint and (stage1_model / "evaluation.json").is_file():
        print(f"stage 1 finished earlier ({stage1_model}); going on with stage 2")
    else:
        train(first, datasets, end_training=False)
        AcceleratorState._reset_state()  # the stage-2 Accelerator starts afresh (the process group stays)
        GradientState._reset_state()
    second = settings_for_stage(settings, "2", output_dir=str(root / "stage2"), init_from=str(stage1_model))
    return train(second, datasets)


def use_cpu(requested: bool) -> bool:
    """CPU training when asked, or when several processes were launched (torchrun, ``accelerate launch
    --multi_gpu``) on a machine without any accelerator: accelerate then joins them with gloo."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1 or int(os.environ.get("LOCAL_RANK", "-1")) >= 0
    return bool(requested or (distributed and not torch.accelerator.is_available()))


def warn_single_cpu_process(accelerator) -> None:
    """``accelerate launch --cpu --num_processes N`` starts ONE process (accelerate launches several CPU
    processes only through mpirun, huggingface/accelerate#2741): say so instead of training silently alone."""
    launched_for_many = os.environ.get("MASTER_ADDR") and "WORLD_SIZE" not in os.environ
    if accelerator.num_processes == 1 and launched_for_many and os.environ.get("ACCELERATE_USE_CPU", "").lower() in (
            "1", "true", "yes"):
        accelerator.print(
            "warning: `accelerate launch --cpu --num_processes N` started a single process (accelerate launches "
            "several CPU processes only through mpirun). For N processes on CPU use `accelerate launch "
            "--multi_gpu --num_processes N scripts/train.py ...` (torchrun; this script then joins them on CPU "
            "with gloo) or `torchrun --nproc_per_node N scripts/train.py ...`."
        )


def train(settings: TrainingSettings, datasets: tuple | None = None, *, end_training: bool = True) -> Path:
    """Run one training stage (or the '1+2' pipeline) end to end; -> the folder of the final model
    (``<output_dir>/model``).

    Everything that can be wrong with the inputs (settings, the starting model, the data, the checkpoint
    to resume) raises a ValueError before the first step. ``datasets`` = (train, valid, test) overrides
    what the settings would build (tests, notebooks); valid and test may be None. ``end_training=False``
    keeps the distributed process group alive for another stage in the same processes.
    """
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    _check_settings(settings)
    if settings.stage == PIPELINE:
        return _train_pipeline(settings, datasets)
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    if settings.reuse_freed_memory:
        reuse_freed_memory()
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Writing model shards" at every checkpoint
    output_dir = Path(settings.output_dir)
    project_config = ProjectConfiguration(
        project_dir=str(output_dir),
        logging_dir=str(output_dir / "logs"),
        automatic_checkpoint_naming=True,
        total_limit=settings.checkpoints_total_limit,
    )
    accelerator = Accelerator(
        cpu=use_cpu(settings.cpu),
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        mixed_precision=settings.mixed_precision,
        log_with=None if settings.report_to == "none" else settings.report_to,
        project_config=project_config,
        # every process reads its own share of a stream (no dispatching of batches that hold item ids)
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=settings.seed,
                                                  dispatch_batches=False),
    )
    main = accelerator.is_main_process
    warn_single_cpu_process(accelerator)

    # ---- 1. everything is checked before the first step ----
    overrides = dict(settings.model)
    if settings.target_utilization is not None:
        overrides["target_utilization"] = settings.target_utilization
    set_seed(settings.seed)
    model = load_model(settings.init_from, overrides, settings.denoiser_preset, seed=settings.seed)
    config = model.config
    if settings.stage == "2" and settings.train_router_only:
        freeze_backbone(model)
    elif settings.stage != "2":
        freeze_router(model)
    objective = TrainingObjective(model, settings.stage, settings.static_utilization, settings.slimmable_weight)
    # what `utilization=None` runs in the saved model: the router once stage 2 has trained it, else a trained width
    if settings.stage == "2":
        config.default_utilization = None
    elif settings.stage == "1":
        config.default_utilization = config.utilization_factors[-1]
    else:  # static
        config.default_utilization = objective.static_utilization
    validation_utilizations = parse_utilizations(settings.validation_utilizations, settings.stage, config,
                                                 settings.static_utilization)
    train_dataset, valid_dataset, test_dataset = datasets if datasets is not None else \
        build_datasets(settings, config)
    streaming = isinstance(train_dataset, EpochStream)
    if train_dataset is None or (not streaming and len(train_dataset) == 0):
        raise ValueError(f"the training set is empty (dataset {settings.dataset!r}, data_dir {settings.data_dir!r}): "
                         "no segment to train on.")
    if streaming and settings.max_train_steps is None:
        raise ValueError(f"dataset {settings.dataset!r} streams without a length ({train_dataset.description}): "
                         "set max_train_steps.")
    for name, dataset in (("validation", valid_dataset), ("test", test_dataset)):
        if dataset is not None and len(dataset) == 0:
            raise ValueError(f"the {name} set is empty (dataset {settings.dataset!r}, data_dir {settings.data_dir!r}).")
    earlier = [output_dir / name for name in RUN_OUTPUTS if (output_dir / name).exists()]
    if earlier and not settings.resume_from_checkpoint:
        if not settings.overwrite_output_dir:
            raise ValueError(f"{output_dir} holds an earlier run ({', '.join(p.name for p in earlier)}): resume it "
                             "with resume_from_checkpoint 'latest', choose another output_dir, or set "
                             "overwrite_output_dir.")
        accelerator.wait_for_everyone()
        if main:
            for path in earlier:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        accelerator.wait_for_everyone()
    resume_path = None
    if settings.resume_from_checkpoint:
        if main:
            removed = remove_incomplete_checkpoints(output_dir)
            for path in removed:
                accelerator.print(f"removed the incomplete checkpoint {path} (its save never finished)")
        accelerator.wait_for_everyone()
        resume_path = resolve_resume_checkpoint(settings.resume_from_checkpoint, output_dir)
        if resume_path is None:
            accelerator.print(f"no checkpoint in {output_dir / 'checkpoints'}: starting a new run")
        else:
            check_checkpoint_fits(resume_path, config)
    segment_samples = round(settings.segment * config.sample_rate)
    if settings.shift and settings.shift >= segment_samples:
        raise ValueError(f"shift={settings.shift} samples needs segments longer than that; segment={settings.segment} "
                         f"s is {segment_samples} samples.")
    augment = make_augment(settings, config.sample_rate)

    # ---- 2. optimizer, schedule, data loader, all prepared by accelerate ----
    router_params = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("router.")]
    other_params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("router.")]
    groups = [{"params": other_params}] if other_params else []
    if router_params:
        groups.append({"params": router_params, "lr": settings.router_learning_rate or settings.learning_rate})
    optimizer_class = torch.optim.AdamW if settings.weight_decay > 0 else torch.optim.Adam
    optimizer = optimizer_class(groups, lr=settings.learning_rate, betas=(settings.adam_beta1, settings.adam_beta2),
                                eps=settings.adam_epsilon, weight_decay=settings.weight_decay)
    collator = make_collator(config)
    if streaming:
        train_loader = None
        objective, optimizer = accelerator.prepare(objective, optimizer)
        updates_per_epoch = None
    else:
        train_loader = torch.utils.data.DataLoader(
            train_dataset, batch_size=settings.train_batch_size, shuffle=True, drop_last=True,
            collate_fn=collator, num_workers=settings.num_workers,
        )
        if len(train_loader) == 0:
            raise ValueError(f"the training set holds {len(train_dataset)} segment(s), fewer than one batch of "
                             f"{settings.train_batch_size}: lower train_batch_size or add data.")
        objective, optimizer, train_loader = accelerator.prepare(objective, optimizer, train_loader)
        updates_per_epoch = math.ceil(len(train_loader) / settings.gradient_accumulation_steps)
    max_steps = settings.max_train_steps or updates_per_epoch * settings.num_train_epochs

    def loader_for_epoch(epoch: int):
        """The prepared loader of one epoch: a map-style set reshuffles by (seed, epoch); a stream is rebuilt
        with the epoch's mixtures. Either way the order is a function of (seed, epoch)."""
        if not streaming:
            train_loader.set_epoch(epoch)
            return train_loader
        loader = torch.utils.data.DataLoader(train_dataset.build(epoch), batch_size=settings.train_batch_size,
                                             drop_last=True, collate_fn=collator, num_workers=settings.num_workers)
        loader = accelerator.prepare(loader)
        loader.set_epoch(epoch)  # a prepared loader re-applies its own epoch (0) to the stream's shuffle
        return loader

    scheduler = get_scheduler(settings.lr_scheduler, optimizer=optimizer,
                              num_warmup_steps=settings.lr_warmup_steps * accelerator.num_processes,
                              num_training_steps=max_steps * accelerator.num_processes)
    scheduler = accelerator.prepare(scheduler)
    progress = TrainingProgress()
    accelerator.register_for_checkpointing(progress)
    if resume_path is not None:
        accelerator.load_state(str(resume_path))
        accelerator.project_configuration.iteration = _checkpoint_index(resume_path) + 1
        accelerator.print(f"resumed from {resume_path} at step {progress.global_step} "
                          f"(epoch {progress.epoch}, batch {progress.batches_in_epoch} of the epoch)")
    if main and settings.report_to != "none":
        hparams = {k: (v if isinstance(v, (int, float, str, bool)) else json.dumps(v))
                   for k, v in settings.to_dict().items() if v is not None}
        accelerator.init_trackers(settings.tracker_project_name, config=hparams)
    elif settings.report_to != "none":
        accelerator.init_trackers(settings.tracker_project_name)
    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(output_dir / "training_settings.json", settings.to_dict())

    total_batch = settings.train_batch_size * accelerator.num_processes * settings.gradient_accumulation_steps
    accelerator.print(
        f"stage {settings.stage}: {sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable "
        f"parameters, {train_dataset.description if streaming else f'{len(train_dataset)} training segments'}, "
        f"{updates_per_epoch or 'unknown'} steps per epoch, "
        f"{max_steps} steps, effective batch {total_batch} ({accelerator.num_processes} process(es), "
        f"{accelerator.distributed_type.value}"
        f"{', ' + str(accelerator.state.backend) if accelerator.state.backend else ''})"
    )

    def save_checkpoint():
        accelerator.save_state()
        path = Path(output_dir) / "checkpoints" / f"checkpoint_{accelerator.save_iteration - 1}"
        state_dict = _model_state_dict(accelerator, objective)
        if main:
            _unwrapped(accelerator, objective).save_pretrained(path / "pretrained", state_dict=state_dict)
            atomic_write_json(path / CHECKPOINT_MARKER, {**progress.state_dict(), "stage": settings.stage})
        accelerator.wait_for_everyone()

    def validate() -> dict | None:
        if valid_dataset is None:
            return None
        results = evaluate(_unwrapped(accelerator, objective), valid_dataset, validation_utilizations,
                           batch_size=settings.eval_batch_size, max_items=settings.max_valid_items,
                           accelerator=accelerator)
        logs = {f"valid/{name}/{k}": v for name, r in results.items() for k, v in r.items() if k != "items"}
        accelerator.log(logs, step=progress.global_step)
        current = score(results, settings.best_metric)
        if current > progress.best_score:
            progress.best_score, progress.best_step = current, progress.global_step
            state_dict = _model_state_dict(accelerator, objective)
            if main:
                atomic_save_pretrained(_unwrapped(accelerator, objective), output_dir / "best", state_dict=state_dict,
                                       extra_json={"validation.json": {"step": progress.global_step,
                                                                       "results": results}})
            accelerator.wait_for_everyone()
        summary = ", ".join(f"{name} {settings.best_metric}={r.get(settings.best_metric, float('nan')):.3f} "
                            f"u={r['mean_utilization']:.3f}" for name, r in results.items())
        accelerator.print(f"step {progress.global_step} validation: {summary}")
        return results

    # ---- 3. train ----
    steps_log = output_dir / "steps.jsonl"
    trainable = [p for p in objective.parameters() if p.requires_grad]
    terms = accelerator.unwrap_model(objective).terms()

    def check_finite(loss: torch.Tensor, term, batch) -> None:
        losses = accelerator.gather(loss.detach().float().reshape(1))
        if not torch.isfinite(losses).all():
            what = f" (the term at factor {term:g})" if term is not None and settings.stage == "1" else ""
            raise NonFiniteLossError(
                f"the loss is {losses.tolist()} (per process){what} at step {progress.global_step + 1} "
                f"(epoch {progress.epoch}, batch {progress.batches_in_epoch} of the epoch{_describe_batch(batch)}); "
                f"the run stopped before the optimizer step: {_last_good_checkpoint(output_dir)}."
            )
    bar = tqdm(total=max_steps, initial=progress.global_step, disable=not accelerator.is_local_main_process,
               desc=f"stage {settings.stage}", dynamic_ncols=True)
    sums: dict[str, float] = {}
    counted = 0
    started = step_started = time.perf_counter()
    objective.train()
    try:
        while progress.global_step < max_steps:
            epoch_loader = loader_for_epoch(progress.epoch)
            loader = epoch_loader
            if progress.batches_in_epoch:
                from accelerate import skip_first_batches

                loader = skip_first_batches(epoch_loader, progress.batches_in_epoch)
            finished_epoch = True
            batches_before = progress.batches_in_epoch
            for batch in loader:
                seed = micro_batch_seed(settings.seed, progress.epoch, progress.batches_in_epoch,
                                        accelerator.process_index)
                set_seed(seed)  # the Gumbel noise of stage 2
                # DEMUCS trains on zero-padded segments as they are (the target is zero there too): no mask
                noisy, clean = augment(batch["input_values"], batch["clean_values"],
                                       torch.Generator(device=batch["input_values"].device).manual_seed(seed))
                padding_mask = None
                with accelerator.accumulate(objective):
                    logs = backward_terms(
                        objective, terms, noisy, clean, padding_mask, backward=accelerator.backward,
                        no_sync=lambda: accelerator.no_sync(objective),
                        check_loss=lambda loss, term, batch=batch: check_finite(loss, term, batch),
                        gumbel_noise_scale=gumbel_noise_scale_at(progress.global_step,
                                                                 settings.gumbel_noise_decay_steps),
                    )
                    grad_norm = None
                    if accelerator.sync_gradients:
                        grad_norm = accelerator.clip_grad_norm_(trainable, settings.max_grad_norm or math.inf)
                        if grad_norm is not None and not torch.isfinite(torch.as_tensor(grad_norm)):
                            raise NonFiniteLossError(
                                f"the gradient norm is {float(grad_norm)} at step {progress.global_step + 1} "
                                f"(epoch {progress.epoch}, batch {progress.batches_in_epoch} of the epoch"
                                f"{_describe_batch(batch)}); the run stopped before the optimizer step: "
                                f"{_last_good_checkpoint(output_dir)}."
                            )
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                progress.batches_in_epoch += 1
                for key, value in logs.items():
                    sums[key] = sums.get(key, 0.0) + value
                counted += 1
                if not accelerator.sync_gradients:
                    continue
                progress.global_step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{logs['loss']:.4f}")
                now = time.perf_counter()
                record = {"step": progress.global_step, "epoch": progress.epoch,
                          "batch": progress.batches_in_epoch - 1, "loss": logs["loss"],
                          "lr": scheduler.get_last_lr()[0], "seconds": round(now - step_started, 3)}
                step_started = now
                if "ids" in batch:
                    record["ids"] = [str(i) for i in batch["ids"]]
                if main:
                    with open(steps_log, "a") as stream:
                        stream.write(json.dumps(record) + "\n")
                if progress.global_step % settings.logging_steps == 0 or progress.global_step == max_steps:
                    logs = {f"train/{k}": v / counted for k, v in sums.items()}
                    logs["train/lr"] = scheduler.get_last_lr()[0]
                    if settings.stage == "2":
                        logs["train/gumbel_noise_scale"] = gumbel_noise_scale_at(
                            progress.global_step - 1, settings.gumbel_noise_decay_steps)
                    if grad_norm is not None:
                        logs["train/grad_norm"] = float(grad_norm)
                    logs["train/steps_per_second"] = counted / settings.gradient_accumulation_steps / max(
                        time.perf_counter() - started, 1e-9)
                    accelerator.log(logs, step=progress.global_step)
                    sums, counted, started = {}, 0, time.perf_counter()
                if settings.validation_steps and progress.global_step % settings.validation_steps == 0:
                    validate()
                    objective.train()
                if progress.global_step % settings.checkpointing_steps == 0:
                    save_checkpoint()
                step_started = time.perf_counter()  # step times exclude validation and checkpoints
                if progress.global_step >= max_steps:
                    finished_epoch = False
                    break
            if finished_epoch:
                if progress.batches_in_epoch == 0 and batches_before == 0:
                    raise ValueError(f"epoch {progress.epoch} of the training set gave no batch of "
                                     f"{settings.train_batch_size}: too little data for the batch size.")
                progress.epoch += 1
                progress.batches_in_epoch = 0
        bar.close()

        # ---- 4. the final model and its evaluation ----
        if valid_dataset is not None and (not settings.validation_steps
                                          or progress.global_step % settings.validation_steps):
            validate()
        accelerator.wait_for_everyone()
        final = _unwrapped(accelerator, objective)
        chosen = "last"
        if settings.final_model == "best" and (output_dir / "best" / "model.safetensors").is_file():
            from safetensors.torch import load_file

            final.load_state_dict(load_file(output_dir / "best" / "model.safetensors"))
            chosen = f"best validation (step {progress.best_step})"
        calibration = None
        if settings.stage == "2" and settings.calibrate_router:
            calibration = calibrate_router(final, calibration_batches(train_dataset, settings.calibrate_router,
                                                                      settings.eval_batch_size, collator))
            shares = "/".join(f"{100 * share:.1f}" for share in calibration["shares_after"])
            accelerator.print(f"router calibrated on {settings.calibrate_router} training segments: lambda "
                              f"{calibration['lambda']:.4g}, mean utilization {calibration['utilization_before']:.3f}"
                              f" -> {calibration['utilization_after']:.3f} (target {calibration['target']}), "
                              f"frames per factor {shares}%")
            if not calibration["floor_met"]:
                accelerator.print(f"warning: some factor stays below min_factor_share {calibration['min_share']} "
                                  f"of the frames after calibration ({shares}%): the target and the floor pull "
                                  "against each other on these segments")
            if valid_dataset is not None:  # what the calibrated router spends on held-out speech
                calibrated = evaluate(final, valid_dataset, [None], batch_size=settings.eval_batch_size,
                                      max_items=settings.max_valid_items, accelerator=accelerator)[setting_name(None)]
                calibration["validation_utilization"] = calibrated["mean_utilization"]
                accelerator.print(f"calibrated router on validation: u={calibrated['mean_utilization']:.3f}")
        evaluation_set = test_dataset if test_dataset is not None else valid_dataset
        evaluation = None
        if evaluation_set is not None:
            settings_to_eval = list(dict.fromkeys(
                ([None] if settings.stage == "2" else []) + list(validation_utilizations)
                + ([*config.utilization_factors] if settings.stage != "static" else [])))
            evaluation = evaluate(final, evaluation_set, settings_to_eval, batch_size=settings.eval_batch_size,
                                  max_items=settings.max_test_items if test_dataset is not None
                                  else settings.max_valid_items,
                                  include_noisy=True, accelerator=accelerator, desc="evaluation")
            accelerator.log({f"eval/{name}/{k}": v for name, r in evaluation.items() for k, v in r.items()
                             if k != "items"}, step=progress.global_step)
        state_dict = _model_state_dict(accelerator, objective)
        model_dir = output_dir / "model"
        if main:
            report = {
                "model": str(model_dir),
                "weights": chosen,
                "stage": settings.stage,
                "steps": progress.global_step,
                "target_utilization": config.target_utilization if settings.stage == "2" else None,
                "router_calibration": calibration,
                "evaluated_on": "test" if test_dataset is not None else ("validation" if evaluation else None),
                "dataset": settings.dataset,
                "data_dir": settings.data_dir,
                "sample_rate": config.sample_rate,
                "results": evaluation,
            }
            atomic_save_pretrained(final, model_dir, state_dict=state_dict, extra_json={"evaluation.json": report})
            atomic_write_json(output_dir / "evaluation.json", report)
        accelerator.wait_for_everyone()
        accelerator.print(f"saved the final model ({chosen} weights) to {model_dir}")
        return model_dir
    finally:
        bar.close()
        if end_training:
            accelerator.end_training()  # trackers, and the distributed process group
        else:
            for tracker in accelerator.trackers:
                tracker.finish()
