"""Training the adaptive-slimming DEMUCS with Accelerate: stage 1, stage 2 and static baselines.

The package reads in the order a run goes:

- ``settings.py``: :class:`TrainingSettings`, one dataclass holding every default; ``transformers.HfArgumentParser``
  makes it the command line, and :func:`load_settings` layers a YAML file, its ``per_stage`` block and the flags;
- ``model.py``: the model a run starts from (new, a save_pretrained folder, a checkpoint, a Hub id, a denoiser
  file) and what each stage leaves trainable;
- ``objective.py``: the stages' losses as terms, one forward and backward per term;
- ``data.py``: the datasets, collation and augmentation of a run, and the per-micro-batch seeds;
- ``validation.py``: PESQ / STOI / SI-SDR, loss, utilization and MACs per setting during training;
- ``checkpoints.py``: accelerate's checkpoints, completion markers, what to resume from;
- ``calibration.py``: the router's calibration to its target after stage 2;
- ``loop.py``: :func:`train` = prepare -> epochs -> finish.

``scripts/train.py`` is the command line around :func:`train`; ``accelerate launch`` runs the same script on
many processes.

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

from ..atomic import save_pretrained as atomic_save_pretrained
from .calibration import calibrate_router
from .checkpoints import (
                          CHECKPOINT_MARKER,
                          TrainingProgress,
                          check_checkpoint_fits,
                          list_checkpoints,
                          remove_incomplete_checkpoints,
                          resolve_resume_checkpoint,
)
from .data import EpochStream, build_datasets, load_mixtures, make_augment, make_collator, micro_batch_seed
from .loop import NonFiniteLossError, finish, prepare, train, train_epoch, use_cpu
from .model import freeze_backbone, freeze_router, load_model, resolve_init_source
from .objective import TrainingObjective, backward_terms, gumbel_noise_scale_at, slimmable_loss
from .settings import (
                          PIPELINE,
                          STAGES,
                          TRAINING_ONLY_FIELDS,
                          TrainingSettings,
                          load_settings,
                          parse_flags,
                          settings_for_stage,
                          settings_parser,
)
from .validation import evaluate, parse_utilizations, quality_metrics, score, setting_name

__all__ = [
    "CHECKPOINT_MARKER", "PIPELINE", "STAGES", "TRAINING_ONLY_FIELDS", "EpochStream", "NonFiniteLossError",
    "TrainingObjective", "TrainingProgress", "TrainingSettings", "atomic_save_pretrained", "backward_terms",
    "build_datasets", "calibrate_router", "check_checkpoint_fits", "evaluate", "finish", "freeze_backbone",
    "freeze_router", "gumbel_noise_scale_at", "list_checkpoints", "load_mixtures", "load_model", "load_settings",
    "make_augment", "make_collator", "micro_batch_seed", "parse_flags", "parse_utilizations", "prepare",
    "quality_metrics", "remove_incomplete_checkpoints", "resolve_init_source", "resolve_resume_checkpoint", "score",
    "setting_name", "settings_for_stage", "settings_parser", "slimmable_loss", "train", "train_epoch", "use_cpu",
]
