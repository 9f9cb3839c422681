"""The settings of a training run: one dataclass, the single source of every training default.

``transformers.HfArgumentParser`` turns the dataclass into the command line (``scripts/train.py --help``),
and the same parser's converters type the values of a YAML file, so a value means the same in a file and
on the command line. Precedence: defaults < the YAML file < its ``per_stage`` block for the run's stage <
the flags that were given. ``model`` mappings merge key by key.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..configuration_adaslim import LOSS_WEIGHTS, AdaSlimConfig

STAGES = ("1", "2", "static")
PIPELINE = "1+2"  # stage 1, then stage 2 started from its model
SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")
MIXED_PRECISION = ("no", "fp16", "bf16")
BEST_METRICS = ("pesq", "stoi", "si_sdr", "loss")
# config fields that only weigh the loss or shape training: they may differ from a checkpoint's values
TRAINING_ONLY_FIELDS = ("target_utilization", "gumbel_temperature", "routed_loss", *LOSS_WEIGHTS)


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
    distillation_weight: float = _setting(0.0, "in-place distillation in the factor terms (stage 1; stage 2 with "
                                          "slimmable_weight): each narrower factor's L_SE is mixed, with this weight, "
                                          "with its L_SE against the widest factor's output of the same batch "
                                          "(detached); 0 = off (the paper's L_slim)")
    factor_weights: list[float] | None = field(default=None, metadata={
        "help": "stage 1 (and stage 2's slimmable terms): each factor's term times this weight, one per factor in "
              "the order of utilization_factors, e.g. 0.5 0.5 0.5 2 to lean on the full width (default 1 each, "
              "the paper's L_slim)"})
    narrow_factors_per_step: int = _setting(0, "stage 1 (and stage 2's slimmable terms): each micro-batch trains "
                                               "the widest factor and this many narrower ones drawn at random, "
                                               "their terms scaled so the expected gradient is unchanged (about "
                                               "0.6 of the time of every factor with 1 of 3); 0 = every factor")
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
    snr_range: list[str] | None = field(default=None, metadata={
        "help": "dns: [low, high] SNR in dB drawn per segment (default -5, 20)"})
    speed_factors: list[str] | None = field(default=None, metadata={
        "help": "dns, corpus: speed perturbation of the clean speech before mixing: each segment plays at a factor "
              "drawn from this list, e.g. 0.8 0.9 1.0 1.1 (below 1: slower, lower-pitched, a larger-sounding "
              "talker; default off)"})
    clean_probability: float = _setting(0.0, "dns, corpus: share of training segments left without noise (the "
                                             "input is the clean speech), so the model learns to leave a clean "
                                             "voice as it is; 0 (default) mixes every segment")
    shuffle_buffer: int = _setting(256, "dns: examples in the streaming shuffle buffer")
    valid_dir: str | None = _setting(None, "fixed validation mixtures (VoiceBank test layout or DNS noisy/clean "
                                           "layout); voicebank default: the held-out valid_speakers")
    test_dir: str | None = _setting(None, "fixed test mixtures (same layouts); voicebank default: its test folders")
    segment: float = _setting(4.5, "training segment in seconds")
    segment_stride: float = _setting(0.5, "hop between training segments in seconds")
    valid_speakers: list[str] | None = field(default=None, metadata={
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
    gain_learning_rate: float | None = _setting(None, "learning rate of the blocks' per-width output gains "
                                                      "(model.width_gains; default: learning_rate); about 1e-2 "
                                                      "moves a gain of 1 in tens of steps, as a silent width needs")
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
    validation_utilizations: list[str] | None = field(default=None, metadata={
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


# ----------------------------------------------------------------------------------------------------
# The parser: flags, and the converters that type YAML values the same way
# ----------------------------------------------------------------------------------------------------


def _key_value(text: str) -> tuple[str, Any]:
    """``--model hidden=48``: an AdaSlimConfig field and its value (read as YAML: 48 is an int)."""
    import yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--model expects key=value (an AdaSlimConfig field), got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _yaml_mapping(text: str) -> dict:
    """``--per_stage "{'2': {learning_rate: 3e-4}}"``: a YAML mapping."""
    import yaml

    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping such as \"{{'2': {{learning_rate: 3e-4}}}}\", "
                                         f"got {text!r}")
    return value


def settings_parser(description: str | None = None) -> argparse.ArgumentParser:
    """``transformers.HfArgumentParser`` over :class:`TrainingSettings`, plus ``--config``: parsing returns only
    the flags that were given (every default is shown in the help, and applied by :func:`load_settings`)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(TrainingSettings, description=description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=argparse.SUPPRESS,
                        help="YAML file of settings (keys: the flags below without '--')")
    for action in parser._actions:  # the mappings are given as KEY=VALUE pairs and as YAML text
        if action.dest == "model":
            action.type, action.nargs, action.metavar = _key_value, "+", "KEY=VALUE"
            action.help += "; e.g. --model hidden=48 depth=5"
        elif action.dest == "per_stage":
            action.type, action.metavar = _yaml_mapping, "YAML"
        if action.dest in _fields():
            if not action.option_strings[0].startswith("--no_"):
                action.help = f"{action.help} (default: {action.default!r})"
            action.default = argparse.SUPPRESS
    return parser


def parse_flags(argv: list[str] | None = None, description: str | None = None) -> tuple[str | None, dict]:
    """-> (the ``--config`` file or None, the settings given on the command line)."""
    given = vars(settings_parser(description).parse_args(argv))
    config = given.pop("config", None)
    if "model" in given:
        given["model"] = dict(given["model"])
    return config, given


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(TrainingSettings)}


@functools.cache
def _converters() -> dict[str, argparse.Action]:
    """Each setting's argparse action: its ``type`` converter, ``nargs`` and ``choices``."""
    return {action.dest: action for action in settings_parser()._actions
            if action.dest in _fields() and not action.option_strings[0].startswith("--no_")}


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainingSettings)


def _typed(name: str, value) -> Any:
    """``value`` of setting ``name`` converted as the command line converts it (int, float, bool, a choice, a
    list of strings, a mapping); ValueError naming the setting otherwise."""
    hint = _hints()[name]
    if value is None:
        if type(None) in typing.get_args(hint):
            return None
        raise ValueError(f"setting `{name}` may not be empty (expected {_describe(hint)}).")
    action = _converters()[name]
    try:
        if name in ("model", "per_stage"):
            if not isinstance(value, dict):
                raise TypeError
            return dict(value)
        if action.nargs == "+":  # a list; a single value is a list of one
            items = [value] if isinstance(value, (str, int, float)) else list(value)
            return [item if isinstance(item, (int, float)) and not isinstance(item, bool) else action.type(str(item))
                    for item in items]
        if isinstance(value, (dict, list)) or (isinstance(value, bool) and action.type in (int, float)):
            raise TypeError
        if isinstance(value, float) and action.type is int and not value.is_integer():
            raise TypeError
        converted = action.type(value if isinstance(value, str) else str(int(value) if action.type is int else value))
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        raise ValueError(f"setting `{name}` expects {_describe(hint)}, got {value!r}.") from None
    if action.choices and converted not in action.choices:
        raise ValueError(f"setting `{name}` must be one of {list(action.choices)}, got {converted!r}.")
    return converted


def _describe(hint) -> str:
    return str(hint).replace("typing.", "").replace("NoneType", "None").replace("<class '", "").replace("'>", "")


def _known(values: dict, source: str, known: list[str], what: str = "setting", listing: str = "Known settings"):
    """ValueError for keys of ``values`` that are not in ``known``, with the closest known ones."""
    unknown = sorted(set(values) - set(known))
    if unknown:
        hints = {key: difflib.get_close_matches(key, known, n=2) for key in unknown}
        hint_text = "; ".join(f"`{k}`: did you mean {', '.join(v)}?" for k, v in hints.items() if v)
        raise ValueError(f"unknown {what}(s) {unknown}{' in ' + source if source else ''}. "
                         f"{hint_text + ' ' if hint_text else ''}{listing}: {', '.join(known)}.")


def _checked(values: dict, source: str) -> dict:
    """Known settings with values of their declared types and choices; ValueError otherwise."""
    _known(values, source, list(_fields()))
    return {name: _typed(name, value) for name, value in values.items()}


def _layered(*layers: dict) -> dict:
    """Later layers win; ``model`` mappings merge key by key."""
    merged: dict = {}
    for layer in layers:
        for key, value in layer.items():
            merged[key] = {**merged.get(key, {}), **value} if key == "model" else value
    return merged


# ----------------------------------------------------------------------------------------------------
# Loading, per stage, checking
# ----------------------------------------------------------------------------------------------------


def load_settings(config_path: str | os.PathLike | None = None, overrides: dict | None = None) -> TrainingSettings:
    """Defaults < the YAML file < its ``per_stage`` block for the run's stage < ``overrides`` (the
    command-line values that were given). ``model`` mappings merge key by key.

    Raises ValueError for a key that is not a setting (with the closest known ones), a value of the wrong
    type, or a value outside its choices.
    """
    from_file: dict[str, Any] = {}
    source = "the overrides"
    if config_path is not None:
        import yaml

        path = Path(config_path)
        if not path.is_file():
            raise ValueError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a mapping of settings, got {type(loaded).__name__}.")
        from_file = _checked(loaded, str(path))
        source = str(path)
    overrides = _checked(dict(overrides or {}), "the command line" if config_path else source)
    per_stage = overrides.get("per_stage", from_file.get("per_stage", {}))
    for stage, block in per_stage.items():
        if str(stage) not in STAGES or not isinstance(block, dict):
            raise ValueError(f"per_stage must map stages {list(STAGES)} to mappings of settings, got {stage!r}: "
                             f"{block!r}.")
        if {"stage", "per_stage"} & set(block):
            raise ValueError(f"per_stage[{stage!r}] may not set `stage` or `per_stage`.")
        _checked(block, f"per_stage[{stage!r}] of {source}")
    values = _layered(from_file, overrides)
    values["per_stage"] = {str(k): v for k, v in per_stage.items()}
    settings = TrainingSettings(**values)
    settings.explicit = set(overrides)  # not a field: what the command line fixed, which per_stage never changes
    if settings.stage in STAGES:
        settings = settings_for_stage(settings, settings.stage)
    check_settings(settings)
    return settings


def settings_for_stage(settings: TrainingSettings, stage: str, **changes) -> TrainingSettings:
    """The settings of one stage: its ``per_stage`` block applied (command-line values still win), then
    ``changes``."""
    explicit = getattr(settings, "explicit", set())
    block = _checked(settings.per_stage.get(stage, {}), f"per_stage[{stage!r}]")
    values = _layered(settings.to_dict(), {k: v for k, v in block.items() if k not in explicit})
    if stage != "2":  # a '1+2' pipeline's router-only flag and slimmable weight are for its stage 2
        values["train_router_only"] = False
        if settings.stage == PIPELINE:
            values["slimmable_weight"] = 0.0
    values = _layered(values, {"stage": stage, **changes})
    result = TrainingSettings(**_checked(values, "the settings"))
    result.explicit = explicit
    check_settings(result)
    return result


def config_fields() -> list[str]:
    """The AdaSlimConfig fields a ``model`` mapping may set."""
    return [f.name for f in dataclasses.fields(AdaSlimConfig) if not f.name.startswith("_")
            and f.name in AdaSlimConfig.__annotations__]


def check_settings(settings: TrainingSettings):
    """The ranges and combinations a run needs (ValueError naming the setting)."""
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
    require(not settings.clean_probability or settings.dataset in ("dns", "corpus"),
            f"`clean_probability` applies to the datasets mixed on the fly (dns, corpus), not {settings.dataset!r}.")
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
    require(0 <= settings.distillation_weight <= 1,
            f"`distillation_weight` must lie in [0, 1], got {settings.distillation_weight}.")
    require(not settings.distillation_weight or settings.stage != "static",
            "`distillation_weight` needs the factor terms of stage '1' (or stage '2' with `slimmable_weight`).")
    require(not settings.factor_weights or settings.stage != "static",
            "`factor_weights` weighs the factor terms of stage '1' (or stage '2' with `slimmable_weight`).")
    require(settings.narrow_factors_per_step >= 0 and not (settings.narrow_factors_per_step
                                                            and settings.stage == "static"),
            "`narrow_factors_per_step` draws among the factor terms of stage '1' (or stage '2' with "
            f"`slimmable_weight`); it must be >= 0, got {settings.narrow_factors_per_step} in stage {settings.stage!r}.")
    require(not settings.slimmable_weight or settings.stage in ("2", PIPELINE),
            "`slimmable_weight` is a stage-2 setting (stage 1 trains every factor already).")
    require(not (settings.slimmable_weight and settings.train_router_only),
            "`slimmable_weight` trains the backbone's widths; it cannot go with `train_router_only`.")
    _known(settings.model, "", config_fields(), what="model setting", listing="AdaSlimConfig fields")
