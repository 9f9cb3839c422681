"""Checkpoints: accelerate's ``save_state`` with its automatic ``checkpoints/checkpoint_N`` naming and
``total_limit``, plus what accelerate does not do: a completion marker written last (``training_state.json``),
so that a run killed while saving resumes from the checkpoint before, and a check that a checkpoint holds the
architecture of the run that resumes it."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..configuration_adaslim import AdaSlimConfig
from .model import architecture

CHECKPOINT_MARKER = "training_state.json"


@dataclass
class TrainingProgress:
    """Where the run is, written into every checkpoint's marker (``training_state.json``) and read back from
    it on resume (not through accelerate's custom-state pickle, which it loads with ``weights_only=False``).
    ``batches_in_epoch`` counts micro-batches of the current epoch already consumed."""

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

    @classmethod
    def from_checkpoint(cls, checkpoint: Path) -> TrainingProgress:
        """The progress a complete checkpoint's marker records (a best score never reached is stored as null)."""
        state = json.loads((checkpoint / CHECKPOINT_MARKER).read_text())
        names = {f.name for f in dataclasses.fields(cls)}
        progress = cls(**{k: v for k, v in state.items() if k in names})
        if progress.best_score is None:
            progress.best_score = -math.inf
        return progress


def checkpoint_index(path: Path) -> int | None:
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
    found = sorted((p for p in root.iterdir() if checkpoint_index(p) is not None), key=checkpoint_index)
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


def load_training_state(accelerator, checkpoint: Path) -> TrainingProgress:
    """Resume from a complete checkpoint: accelerate loads the weights (safetensors), the optimizer, the schedule
    and the random states (the last three with torch's ``weights_only`` loader); the progress comes from the
    JSON marker. Checkpoints written before 2026-12-06 also hold accelerate's custom-state pickle, which it
    would load with ``weights_only=False``: accelerate reads a view of the folder without it."""
    import re
    import tempfile

    with tempfile.TemporaryDirectory(prefix="resume-") as view:
        for entry in checkpoint.iterdir():
            if not re.fullmatch(r"custom_checkpoint_\d+\.pkl", entry.name):
                os.symlink(entry.resolve(), Path(view) / entry.name)
        accelerator.load_state(view)
    return TrainingProgress.from_checkpoint(checkpoint)


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
    theirs = architecture(AdaSlimConfig.from_dict(data))
    ours = architecture(config)
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


def last_good_checkpoint(output_dir) -> str:
    """Where a failed run can go on from, for its error message."""
    found = list_checkpoints(output_dir)
    if not found:
        return "no checkpoint was saved before it"
    state = json.loads((found[-1] / CHECKPOINT_MARKER).read_text())
    return f"the last good checkpoint is {found[-1]} (step {state['global_step']})"

