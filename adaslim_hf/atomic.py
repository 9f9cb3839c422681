"""Writing files and folders so that a reader (or a crash) never sees half of them.

Every writer here fills a hidden temporary sibling of the target, then moves it onto the target with one
rename (``os.replace``), which POSIX makes atomic within a file system: afterwards the target is either the
old version or the new one, never a mix. denoiser's checkpoints (``solver.py``) do the same.

    write_json(path, report)                  # strict JSON: NaN and infinities become null
    write_text(path, markdown)
    with replace_folder(folder) as building:  # fill `building`; it becomes `folder` on success
        model.save_pretrained(building)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def finite_or_none(value):
    """``value`` with every NaN and infinity (in nested dicts, lists and tuples) replaced by None: strict
    JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def _json_default(value):
    """Tensors and arrays as lists, paths as strings; anything else is an error."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to a temporary file beside ``path``, flush it to disk, then rename it over
    ``path``; the folder is created when missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """``data`` as indented, strict JSON (NaN and infinities as null; tensors, arrays and paths converted),
    written atomically with :func:`write_text`."""
    text = json.dumps(finite_or_none(data), indent=2, default=_json_default, allow_nan=False)
    return write_text(path, text + "\n")


@contextlib.contextmanager
def replace_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling folder to fill; when the block ends without an error it takes the place of
    ``folder`` (an existing one is moved aside first and removed after the swap), otherwise it is removed and
    ``folder`` stays as it was."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        yield building
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
        os.replace(building, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def save_pretrained(model, folder: str | os.PathLike, state_dict: dict | None = None,
                    extra_json: dict[str, Any] | None = None) -> Path:
    """``model.save_pretrained(folder)`` through :func:`replace_folder`, with ``extra_json`` files (name ->
    data) beside the weights: a reader never sees a half-written model, and a crash leaves the previous
    folder intact."""
    with replace_folder(folder) as building:
        model.save_pretrained(building, state_dict=state_dict)
        for name, data in (extra_json or {}).items():
            write_json(building / name, data)
    return Path(folder)


__all__ = ["finite_or_none", "replace_folder", "save_pretrained", "write_json", "write_text"]
