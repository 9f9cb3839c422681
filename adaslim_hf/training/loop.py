"""The training loop of one stage: :func:`prepare` -> :func:`train_epoch` until the last step -> :func:`finish`.

:func:`train` runs them (or, for the '1+2' pipeline, stage 1 then stage 2 from its model). Everything that
can be wrong with the inputs (settings, the starting model, the data, the checkpoint to resume) raises a
ValueError inside :func:`prepare`, before the first step.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import atomic
from ..configuration_adaslim import AdaSlimConfig
from ..evaluation import NOISY
from ..memory import reuse_freed_memory
from ..modeling_adaslim import AdaSlimModel
from ..products import BF16_EMULATED, cpu_bf16_is_native
from .calibration import calibrate_router
from .checkpoints import (
    CHECKPOINT_MARKER,
    TrainingProgress,
    check_checkpoint_fits,
    checkpoint_index,
    last_good_checkpoint,
    load_training_state,
    remove_incomplete_checkpoints,
    resolve_resume_checkpoint,
)
from .data import (
    EpochStream,
    build_datasets,
    calibration_batches,
    make_augment,
    make_collator,
    micro_batch_seed,
    whole_updates,
)
from .model import freeze_backbone, freeze_router, load_model
from .objective import TrainingObjective, backward_terms, gumbel_noise_scale_at
from .settings import PIPELINE, TrainingSettings, check_settings, settings_for_stage
from .validation import evaluate, parse_utilizations, score, setting_name

# what a run writes into its output_dir (an earlier run's are refused unless resumed or overwritten)
RUN_OUTPUTS = ("checkpoints", "best", "model", "steps.jsonl", "evaluation.json")


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient norm of a step is NaN or infinite; the run stopped before the optimizer step."""


# ----------------------------------------------------------------------------------------------------
# The state of a run
# ----------------------------------------------------------------------------------------------------


@dataclass
class StepMeter:
    """Running sums of the logged values since the last log line, and the clocks of steps and logs."""

    sums: dict[str, float] = field(default_factory=dict)
    micro_batches: int = 0
    since_log: float = field(default_factory=time.perf_counter)
    since_step: float = field(default_factory=time.perf_counter)

    def add(self, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.micro_batches += 1

    def step_seconds(self) -> float:
        """Seconds since the last step ended (or since :meth:`restart_step`)."""
        now = time.perf_counter()
        seconds, self.since_step = now - self.since_step, now
        return seconds

    def restart_step(self) -> None:
        self.since_step = time.perf_counter()

    def means(self) -> dict[str, float]:
        return {key: value / self.micro_batches for key, value in self.sums.items()}

    def reset(self) -> None:
        self.sums, self.micro_batches, self.since_log = {}, 0, time.perf_counter()


@dataclass
class Run:
    """Everything the loop of one stage works with; built by :func:`prepare`."""

    settings: TrainingSettings
    accelerator: Any
    objective: nn.Module  # the TrainingObjective, prepared by accelerate
    optimizer: Any
    scheduler: Any
    train_dataset: Any  # a map-style dataset or an EpochStream
    valid_dataset: Any
    test_dataset: Any
    train_loader: Any  # the prepared loader of a map-style set (None for a stream: see batches_of_epoch)
    collator: Any
    augment: Any
    validation_utilizations: list
    max_steps: int
    progress: TrainingProgress
    output_dir: Path
    meter: StepMeter = field(default_factory=StepMeter)
    last_validation: tuple[int, dict] | None = None  # (step, results) of the latest validation

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def model(self) -> AdaSlimModel:
        return self.accelerator.unwrap_model(self.objective).model

    @property
    def config(self) -> AdaSlimConfig:
        return self.model.config

    def model_state_dict(self) -> dict:
        """The model's own state dict (keys without the objective's ``model.`` prefix), gathered by accelerate
        (needed for sharded set-ups; on CPU/DDP a plain copy)."""
        state = self.accelerator.get_state_dict(self.objective)
        return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}

    def batches_of_epoch(self, epoch: int, skip: int = 0) -> Iterable[dict]:
        """The micro-batches of one epoch from batch ``skip`` on, in an order that is a function of (seed, epoch):
        a map-style set reshuffles its prepared loader; a stream is rebuilt with the epoch's mixtures, each
        process reading its own share (``split_dataset_by_node``) and every process ending the epoch at the last
        update all of them can fill (:func:`whole_updates`): shares of a stream differ in length, and a process
        that stopped alone would leave the others waiting in the next collective."""
        from accelerate import skip_first_batches
        from accelerate.utils import send_to_device

        accelerator = self.accelerator
        if self.train_loader is not None:
            self.train_loader.set_epoch(epoch)
            return skip_first_batches(self.train_loader, skip) if skip else self.train_loader
        stream = self.train_dataset.build(epoch)
        if accelerator.num_processes > 1:
            from datasets.distributed import split_dataset_by_node

            stream = split_dataset_by_node(stream, rank=accelerator.process_index,
                                           world_size=accelerator.num_processes)
            stream.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(stream, batch_size=self.settings.train_batch_size, drop_last=True,
                                             collate_fn=self.collator, num_workers=self.settings.num_workers)
        if skip:
            loader = skip_first_batches(loader, skip)

        def every_process_has(full: bool) -> bool:
            if accelerator.num_processes == 1:
                return full
            return bool(accelerator.gather(torch.tensor([full], device=accelerator.device)).all())

        batches = whole_updates(loader, self.settings.gradient_accumulation_steps, every_process_has)
        return (send_to_device(batch, accelerator.device) for batch in batches)


# ----------------------------------------------------------------------------------------------------
# Training: one stage or the '1+2' pipeline
# ----------------------------------------------------------------------------------------------------


def train(settings: TrainingSettings, datasets: tuple | None = None, *, end_training: bool = True) -> Path:
    """Run one training stage (or the '1+2' pipeline) end to end; -> the folder of the final model
    (``<output_dir>/model``).

    Everything that can be wrong with the inputs (settings, the starting model, the data, the checkpoint
    to resume) raises a ValueError before the first step. ``datasets`` = (train, valid, test) overrides
    what the settings would build (tests, notebooks); valid and test may be None. ``end_training=False``
    keeps the distributed process group alive for another stage in the same processes.
    """
    from tqdm.auto import tqdm

    check_settings(settings)
    settings = precision_this_machine_runs(settings)
    if settings.stage == PIPELINE:
        return _train_pipeline(settings, datasets)
    run = prepare(settings, datasets)
    bar = tqdm(total=run.max_steps, initial=run.progress.global_step, desc=f"stage {settings.stage}",
               disable=not run.accelerator.is_local_main_process, dynamic_ncols=True)
    try:
        run.objective.train()
        while run.progress.global_step < run.max_steps:
            train_epoch(run, bar)
        bar.close()
        return finish(run)
    finally:
        bar.close()
        if end_training:
            run.accelerator.end_training()  # trackers, and the distributed process group
        else:
            for tracker in run.accelerator.trackers:
                tracker.finish()


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


# ----------------------------------------------------------------------------------------------------
# Prepare: everything checked and built before the first step
# ----------------------------------------------------------------------------------------------------


def prepare(settings: TrainingSettings, datasets: tuple | None = None) -> Run:
    """The accelerator, the model and its objective, the data, the optimizer and schedule (all prepared by
    accelerate), the state of a resumed run, the trackers and ``training_settings.json``."""
    from accelerate.utils import set_seed
    from transformers import get_scheduler

    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    if settings.reuse_freed_memory:
        reuse_freed_memory()
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Writing model shards" at every checkpoint
    output_dir = Path(settings.output_dir)
    accelerator = make_accelerator(settings)
    set_seed(settings.seed)
    objective = make_objective(settings)
    model, config = objective.model, objective.model.config
    validation_utilizations = parse_utilizations(settings.validation_utilizations, settings.stage, config,
                                                 settings.static_utilization)
    train_dataset, valid_dataset, test_dataset = _checked_datasets(
        settings, datasets if datasets is not None else build_datasets(settings, config))
    _clear_earlier_run(settings, accelerator)
    resume_path = _resume_point(settings, accelerator, config)
    segment_samples = round(settings.segment * config.sample_rate)
    if settings.shift and settings.shift >= segment_samples:
        raise ValueError(f"shift={settings.shift} samples needs segments longer than that; segment={settings.segment} "
                         f"s is {segment_samples} samples.")
    augment = make_augment(settings, config.sample_rate)

    optimizer = make_optimizer(model, settings)
    collator = make_collator(config)
    streaming = isinstance(train_dataset, EpochStream)
    if streaming:
        train_loader, updates_per_epoch = None, None
        objective, optimizer = accelerator.prepare(objective, optimizer)
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
    scheduler = get_scheduler(settings.lr_scheduler, optimizer=optimizer,
                              num_warmup_steps=settings.lr_warmup_steps * accelerator.num_processes,
                              num_training_steps=max_steps * accelerator.num_processes)
    scheduler = accelerator.prepare(scheduler)
    progress = TrainingProgress() if resume_path is None else load_training_state(accelerator, resume_path)
    if resume_path is not None:
        accelerator.project_configuration.iteration = checkpoint_index(resume_path) + 1  # accelerate does not
        accelerator.print(f"resumed from {resume_path} at step {progress.global_step} "
                          f"(epoch {progress.epoch}, batch {progress.batches_in_epoch} of the epoch)")
    _start_trackers(settings, accelerator)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_json(output_dir / "training_settings.json", settings.to_dict())

    total_batch = settings.train_batch_size * accelerator.num_processes * settings.gradient_accumulation_steps
    accelerator.print(
        f"stage {settings.stage}: {sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable "
        f"parameters, {train_dataset.description if streaming else f'{len(train_dataset)} training segments'}, "
        f"{updates_per_epoch or 'unknown'} steps per epoch, "
        f"{max_steps} steps, effective batch {total_batch} ({accelerator.num_processes} process(es), "
        f"distributed: {accelerator.distributed_type.value.lower()}"
        f"{', ' + str(accelerator.state.backend) if accelerator.state.backend else ''}; "
        f"mixed precision: {accelerator.mixed_precision})"
    )
    return Run(settings=settings, accelerator=accelerator, objective=objective, optimizer=optimizer,
               scheduler=scheduler, train_dataset=train_dataset, valid_dataset=valid_dataset,
               test_dataset=test_dataset, train_loader=train_loader, collator=collator,
               augment=augment, validation_utilizations=validation_utilizations,
               max_steps=max_steps, progress=progress, output_dir=output_dir)


def use_cpu(requested: bool) -> bool:
    """CPU training when asked, or when several processes were launched (torchrun, ``accelerate launch
    --multi_gpu``) on a machine without any accelerator: accelerate then joins them with gloo."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1 or int(os.environ.get("LOCAL_RANK", "-1")) >= 0
    return bool(requested or (distributed and not torch.accelerator.is_available()))


def precision_this_machine_runs(settings: TrainingSettings) -> TrainingSettings:
    """``settings`` with ``mixed_precision="no"`` (and a warning) where "bf16" would train on a CPU that only
    emulates bfloat16 (no AVX-512 BF16, no AMX): there a step runs many times slower than in float32, the
    opposite of what "bf16" is for (the configs ask for it because it is 1.4-1.6x faster where it is native).
    ``training_settings.json`` then records what ran."""
    on_cpu = use_cpu(settings.cpu) or not torch.accelerator.is_available()
    if settings.mixed_precision != "bf16" or not on_cpu or cpu_bf16_is_native() is not False:
        return settings
    warnings.warn(f'mixed_precision="bf16" trains in float32 instead: {BF16_EMULATED}.', stacklevel=2)
    return replace(settings, mixed_precision="no")


def make_accelerator(settings: TrainingSettings):
    """The Accelerator of a run: checkpoints under ``<output_dir>/checkpoints`` with accelerate's automatic
    ``checkpoint_N`` naming and ``total_limit``, trackers under ``<output_dir>/logs``, a seedable sampler."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration

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
    warn_single_cpu_process(accelerator)
    return accelerator


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


def make_objective(settings: TrainingSettings) -> TrainingObjective:
    """The starting model with what the stage trains left trainable, wrapped in the stage's objective, and
    the width that ``utilization=None`` will run in the saved model: the router once stage 2 has trained
    it, else a trained width (the largest after stage 1, the factor after a static run)."""
    overrides = dict(settings.model)
    if settings.target_utilization is not None:
        overrides["target_utilization"] = settings.target_utilization
    model = load_model(settings.init_from, overrides, settings.denoiser_preset, seed=settings.seed)
    if settings.stage == "2" and settings.train_router_only:
        freeze_backbone(model)
    elif settings.stage != "2":
        freeze_router(model)
    objective = TrainingObjective(model, settings.stage, settings.static_utilization, settings.slimmable_weight,
                                  settings.distillation_weight, settings.factor_weights,
                                  settings.narrow_factors_per_step)
    config = model.config
    if settings.stage == "2":
        config.default_utilization = None
    elif settings.stage == "1":
        config.default_utilization = config.utilization_factors[-1]
    else:  # static
        config.default_utilization = objective.static_utilization
    return objective


def _checked_datasets(settings: TrainingSettings, datasets: tuple) -> tuple:
    train_dataset, valid_dataset, test_dataset = datasets
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
    return train_dataset, valid_dataset, test_dataset


def _clear_earlier_run(settings: TrainingSettings, accelerator) -> None:
    """An output_dir that holds an earlier run is refused, unless the run resumes it or overwrites it."""
    output_dir = Path(settings.output_dir)
    earlier = [output_dir / name for name in RUN_OUTPUTS if (output_dir / name).exists()]
    if not earlier or settings.resume_from_checkpoint:
        return
    if not settings.overwrite_output_dir:
        raise ValueError(f"{output_dir} holds an earlier run ({', '.join(p.name for p in earlier)}): resume it "
                         "with resume_from_checkpoint 'latest', choose another output_dir, or set "
                         "overwrite_output_dir.")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for path in earlier:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    accelerator.wait_for_everyone()


def _resume_point(settings: TrainingSettings, accelerator, config: AdaSlimConfig) -> Path | None:
    """The complete checkpoint to resume from (incomplete ones removed first), checked against the model;
    None for a new run."""
    if not settings.resume_from_checkpoint:
        return None
    output_dir = Path(settings.output_dir)
    if accelerator.is_main_process:
        for path in remove_incomplete_checkpoints(output_dir):
            accelerator.print(f"removed the incomplete checkpoint {path} (its save never finished)")
    accelerator.wait_for_everyone()
    resume_path = resolve_resume_checkpoint(settings.resume_from_checkpoint, output_dir)
    if resume_path is None:
        accelerator.print(f"no checkpoint in {output_dir / 'checkpoints'}: starting a new run")
    else:
        check_checkpoint_fits(resume_path, config)
    return resume_path


def make_optimizer(model: AdaSlimModel, settings: TrainingSettings) -> torch.optim.Optimizer:
    """Adam (AdamW with weight decay) over the trainable parameters; the router's group and the per-width
    output gains' group at their own rates."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    router_params = [p for n, p in trainable if n.startswith("router.")]
    gain_params = [p for n, p in trainable if n.endswith(".width_gain")]
    other_params = [p for n, p in trainable if not n.startswith("router.") and not n.endswith(".width_gain")]
    groups = [{"params": other_params}] if other_params else []
    if router_params:
        groups.append({"params": router_params, "lr": settings.router_learning_rate or settings.learning_rate})
    if gain_params:  # no weight decay: it would pull the gains towards 0, not towards their neutral 1
        groups.append({"params": gain_params, "lr": settings.gain_learning_rate or settings.learning_rate,
                       "weight_decay": 0.0})
    optimizer_class = torch.optim.AdamW if settings.weight_decay > 0 else torch.optim.Adam
    return optimizer_class(groups, lr=settings.learning_rate, betas=(settings.adam_beta1, settings.adam_beta2),
                           eps=settings.adam_epsilon, weight_decay=settings.weight_decay)


def _start_trackers(settings: TrainingSettings, accelerator) -> None:
    if settings.report_to == "none":
        return
    if accelerator.is_main_process:
        hparams = {k: (v if isinstance(v, (int, float, str, bool)) else json.dumps(v))
                   for k, v in settings.to_dict().items() if v is not None}
        accelerator.init_trackers(settings.tracker_project_name, config=hparams)
    else:
        accelerator.init_trackers(settings.tracker_project_name)


# ----------------------------------------------------------------------------------------------------
# An epoch: micro-batches, optimizer steps, and what follows a step
# ----------------------------------------------------------------------------------------------------


def train_epoch(run: Run, bar) -> None:
    """Train on the epoch ``run.progress.epoch`` from the batch the run stands at, until the epoch ends
    (then the next epoch begins) or the last step is taken."""
    progress = run.progress
    batches_before = progress.batches_in_epoch
    for batch in run.batches_of_epoch(progress.epoch, skip=progress.batches_in_epoch):
        logs, grad_norm = _micro_batch(run, batch)
        progress.batches_in_epoch += 1
        run.meter.add(logs)
        if not run.accelerator.sync_gradients:
            continue
        progress.global_step += 1
        _after_step(run, batch, logs, grad_norm, bar)
        if progress.global_step >= run.max_steps:
            return
    if progress.batches_in_epoch == 0 and batches_before == 0:
        settings, processes = run.settings, run.accelerator.num_processes
        per_process = f" in each of {processes} processes" if processes > 1 else ""
        raise ValueError(f"epoch {progress.epoch} of the training set gave no full update ("
                         f"{settings.gradient_accumulation_steps} micro-batch(es) of {settings.train_batch_size}"
                         f"{per_process}): too little data for the batch size.")
    progress.epoch += 1
    progress.batches_in_epoch = 0


def _micro_batch(run: Run, batch: dict) -> tuple[dict[str, float], Any]:
    """Forward and backward every term on one micro-batch (its randomness seeded from where the run is);
    at the end of an accumulation the gradient is clipped and the optimizer steps. -> (logs, grad norm or
    None)."""
    from accelerate.utils import set_seed

    settings, progress, accelerator = run.settings, run.progress, run.accelerator
    seed = micro_batch_seed(settings.seed, progress.epoch, progress.batches_in_epoch, accelerator.process_index)
    set_seed(seed)  # the Gumbel noise of stage 2
    # DEMUCS trains on zero-padded segments as they are (the target is zero there too): no mask
    noisy, clean = run.augment(batch["input_values"], batch["clean_values"],
                               torch.Generator(device=batch["input_values"].device).manual_seed(seed))
    terms = accelerator.unwrap_model(run.objective).terms(torch.Generator().manual_seed(seed))  # drawn as seeded
    with accelerator.accumulate(run.objective):
        logs = backward_terms(
            run.objective, terms, noisy, clean, None,
            backward=accelerator.backward, no_sync=lambda: accelerator.no_sync(run.objective),
            check_loss=lambda loss, term: _check_finite_loss(run, loss, term, batch),
            gumbel_noise_scale=gumbel_noise_scale_at(progress.global_step, settings.gumbel_noise_decay_steps),
        )
        grad_norm = None
        if accelerator.sync_gradients:
            trainable = [p for p in run.objective.parameters() if p.requires_grad]
            grad_norm = accelerator.clip_grad_norm_(trainable, settings.max_grad_norm or math.inf)
            if grad_norm is not None and not torch.isfinite(torch.as_tensor(grad_norm)):
                raise NonFiniteLossError(f"the gradient norm is {float(grad_norm)} at {_where(run, batch)}; the run "
                                         f"stopped before the optimizer step: {last_good_checkpoint(run.output_dir)}.")
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    return logs, grad_norm


def _where(run: Run, batch: dict) -> str:
    """'step S (epoch E, batch B of the epoch, items [...])' for error messages."""
    progress = run.progress
    ids = batch.get("ids") if batch.get("ids") is not None else batch.get("id")
    items = ""
    if ids is not None:
        ids = list(ids)
        items = ", items [" + ", ".join(map(str, ids[:8])) + (", ..." if len(ids) > 8 else "") + "]"
    return (f"step {progress.global_step + 1} (epoch {progress.epoch}, batch {progress.batches_in_epoch} of the "
            f"epoch{items})")


def _check_finite_loss(run: Run, loss: torch.Tensor, term, batch: dict) -> None:
    losses = run.accelerator.gather(loss.detach().float().reshape(1))
    if not torch.isfinite(losses).all():
        what = f" (the term at factor {term:g})" if term is not None and run.settings.stage == "1" else ""
        raise NonFiniteLossError(f"the loss is {losses.tolist()} (per process){what} at {_where(run, batch)}; the "
                                 f"run stopped before the optimizer step: {last_good_checkpoint(run.output_dir)}.")


def _after_step(run: Run, batch: dict, logs: dict[str, float], grad_norm, bar) -> None:
    """steps.jsonl, the progress bar, the tracker's averages every ``logging_steps``, validation every
    ``validation_steps`` and a checkpoint every ``checkpointing_steps``."""
    settings, progress = run.settings, run.progress
    bar.update(1)
    bar.set_postfix(loss=f"{logs['loss']:.4f}")
    record = {"step": progress.global_step, "epoch": progress.epoch, "batch": progress.batches_in_epoch - 1,
              "loss": logs["loss"], "lr": run.scheduler.get_last_lr()[0],
              "seconds": round(run.meter.step_seconds(), 3)}
    if "ids" in batch:
        record["ids"] = [str(i) for i in batch["ids"]]
    if run.main:
        with open(run.output_dir / "steps.jsonl", "a") as stream:
            stream.write(json.dumps(record) + "\n")
    if progress.global_step % settings.logging_steps == 0 or progress.global_step == run.max_steps:
        _log_training(run, grad_norm)
    if settings.validation_steps and progress.global_step % settings.validation_steps == 0:
        validate(run)
        run.objective.train()
    if progress.global_step % settings.checkpointing_steps == 0:
        save_checkpoint(run)
    run.meter.restart_step()  # step times exclude validation and checkpoints


def _log_training(run: Run, grad_norm) -> None:
    settings, meter = run.settings, run.meter
    logs = {f"train/{k}": v for k, v in meter.means().items()}
    logs["train/lr"] = run.scheduler.get_last_lr()[0]
    if settings.stage == "2":
        logs["train/gumbel_noise_scale"] = gumbel_noise_scale_at(run.progress.global_step - 1,
                                                                 settings.gumbel_noise_decay_steps)
    if grad_norm is not None:
        logs["train/grad_norm"] = float(grad_norm)
    logs["train/steps_per_second"] = meter.micro_batches / settings.gradient_accumulation_steps / max(
        time.perf_counter() - meter.since_log, 1e-9)
    run.accelerator.log(logs, step=run.progress.global_step)
    meter.reset()


def save_checkpoint(run: Run) -> Path:
    """``accelerator.save_state`` (accelerate names it checkpoint_N and keeps ``total_limit``), a
    save_pretrained copy in its ``pretrained/`` and, last, the completion marker."""
    accelerator = run.accelerator
    accelerator.save_state()
    path = run.output_dir / "checkpoints" / f"checkpoint_{accelerator.save_iteration - 1}"
    state_dict = run.model_state_dict()
    if run.main:
        run.model.save_pretrained(path / "pretrained", state_dict=state_dict)
        atomic.write_json(path / CHECKPOINT_MARKER, {**run.progress.state_dict(), "stage": run.settings.stage})
    accelerator.wait_for_everyone()
    return path


def validate(run: Run) -> dict | None:
    """Validate the current weights; the best so far (by ``best_metric``) are kept in ``<output_dir>/best``."""
    settings, progress, accelerator = run.settings, run.progress, run.accelerator
    if run.valid_dataset is None:
        return None
    results = evaluate(run.model, run.valid_dataset, run.validation_utilizations, batch_size=settings.eval_batch_size,
                       max_items=settings.max_valid_items, accelerator=accelerator)
    accelerator.log({f"valid/{name}/{k}": v for name, r in results.items() for k, v in r.items() if k != "items"},
                    step=progress.global_step)
    run.last_validation = (progress.global_step, results)
    current = score(results, settings.best_metric)
    if current > progress.best_score:
        progress.best_score, progress.best_step = current, progress.global_step
        state_dict = run.model_state_dict()
        if run.main:
            atomic.save_pretrained(run.model, run.output_dir / "best", state_dict=state_dict,
                                   extra_json={"validation.json": {"step": progress.global_step, "settings": results}})
        accelerator.wait_for_everyone()
    summary = ", ".join(f"{name} {settings.best_metric}={r.get(settings.best_metric, float('nan')):.3f} "
                        f"u={r['mean_utilization']:.3f}" for name, r in results.items())
    accelerator.print(f"step {progress.global_step} validation: {summary}")
    return results


# ----------------------------------------------------------------------------------------------------
# Finish: the final model, its calibration, evaluation and report
# ----------------------------------------------------------------------------------------------------


def finish(run: Run) -> Path:
    """Validate a last time (unless the last step just did), pick the final weights (best or last),
    calibrate the router (stage 2, ``calibrate_router``), evaluate on the test split (or validation), and
    save ``<output_dir>/model`` with ``evaluation.json`` beside it and in ``output_dir``; -> the model folder."""
    settings, progress, accelerator = run.settings, run.progress, run.accelerator
    if run.valid_dataset is not None and (not settings.validation_steps
                                          or progress.global_step % settings.validation_steps):
        validate(run)
    accelerator.wait_for_everyone()
    final = run.model
    chosen, final_step = "last", progress.global_step
    best = run.output_dir / "best" / "model.safetensors"
    if settings.final_model == "best" and best.is_file():
        from safetensors.torch import load_file

        final.load_state_dict(load_file(best))
        chosen, final_step = f"best validation (step {progress.best_step})", progress.best_step
    calibration = _calibrate(run) if settings.stage == "2" and settings.calibrate_router else None
    evaluation = _final_evaluation(run, None if calibration else final_step)  # calibrated: new weights
    state_dict = run.model_state_dict()
    model_dir = run.output_dir / "model"
    if run.main:
        config = final.config
        report = {
            "model": str(model_dir),
            "weights": chosen,
            "stage": settings.stage,
            "steps": progress.global_step,
            "target_utilization": config.target_utilization if settings.stage == "2" else None,
            "router_calibration": calibration,
            "evaluated_on": "test" if run.test_dataset is not None else ("validation" if evaluation else None),
            "dataset": settings.dataset,
            "data_dir": settings.data_dir,
            "sample_rate": config.sample_rate,
            "settings": evaluation,
        }
        atomic.save_pretrained(final, model_dir, state_dict=state_dict, extra_json={"evaluation.json": report})
        atomic.write_json(run.output_dir / "evaluation.json", report)
    accelerator.wait_for_everyone()
    accelerator.print(f"saved the final model ({chosen} weights) to {model_dir}")
    return model_dir


def _calibrate(run: Run) -> dict:
    """Router calibration on the first ``calibrate_router`` training segments, reported, and the calibrated
    router's utilization on the validation set."""
    settings, accelerator = run.settings, run.accelerator
    batches = calibration_batches(run.train_dataset, settings.calibrate_router, settings.eval_batch_size,
                                  run.collator)
    calibration = calibrate_router(run.model, batches)
    shares = "/".join(f"{100 * share:.1f}" for share in calibration["shares_after"])
    accelerator.print(f"router calibrated on {settings.calibrate_router} training segments: lambda "
                      f"{calibration['lambda']:.4g}, mean utilization {calibration['utilization_before']:.3f}"
                      f" -> {calibration['utilization_after']:.3f} (target {calibration['target']}), "
                      f"frames per factor {shares}%")
    if not calibration["floor_met"]:
        accelerator.print(f"warning: some factor stays below min_factor_share {calibration['min_share']} "
                          f"of the frames after calibration ({shares}%): the target and the floor pull "
                          "against each other on these segments")
    if run.valid_dataset is not None:  # what the calibrated router spends on held-out speech
        calibrated = evaluate(run.model, run.valid_dataset, [None], batch_size=settings.eval_batch_size,
                              max_items=settings.max_valid_items, accelerator=accelerator)[setting_name(None)]
        calibration["validation_utilization"] = calibrated["mean_utilization"]
        accelerator.print(f"calibrated router on validation: u={calibrated['mean_utilization']:.3f}")
    return calibration


def _final_evaluation(run: Run, final_weights_step: int | None) -> dict | None:
    """The final model (the weights of step ``final_weights_step``; None: weights no validation saw) on the test
    split (or validation without one): the router (stage 2), the validated settings and every factor (but a
    static run's), with the noisy input beside them."""
    settings = run.settings
    evaluation_set = run.test_dataset if run.test_dataset is not None else run.valid_dataset
    if evaluation_set is None:
        return None
    factors = [*run.config.utilization_factors] if settings.stage != "static" else []
    utilizations = list(dict.fromkeys(([None] if settings.stage == "2" else []) + list(run.validation_utilizations)
                                      + factors))
    max_items = settings.max_test_items if run.test_dataset is not None else settings.max_valid_items
    # on the validation split, the settings the latest validation scored these very weights with are not run again
    validated = {}
    if run.test_dataset is None and run.last_validation and run.last_validation[0] == final_weights_step:
        validated = run.last_validation[1]
    missing = [u for u in utilizations if setting_name(u) not in validated]
    fresh = evaluate(run.model, evaluation_set, missing, batch_size=settings.eval_batch_size, max_items=max_items,
                     include_noisy=True, accelerator=run.accelerator, desc="evaluation")
    evaluation = {name: (validated | fresh)[name] for name in [NOISY, *map(setting_name, utilizations)]}
    run.accelerator.log({f"eval/{name}/{k}": v for name, r in evaluation.items() for k, v in r.items()
                         if k != "items"}, step=run.progress.global_step)
    return evaluation
