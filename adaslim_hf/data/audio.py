"""Audio for the data layer, on ``audio_io`` (the package's one module that decodes, resamples and writes
audio): folder listing and the decoding of ``datasets`` audio columns.

Everything here works without FFmpeg (soundfile's bundled libsndfile decodes wav, flac, ogg/vorbis, opus,
mp3; torchaudio resamples). Bad input raises a ``ValueError`` that names the file and says what was expected
and what came; nothing is silently fixed unless the caller asks for it (``downmix=True``).

``DecodeAudioColumns`` is the bridge to ``datasets``: the loaders keep their audio columns as
``Audio(decode=False)`` (``{"bytes", "path"}`` values, no torchcodec needed) and decode them lazily with
this transform, giving the same ``{"array", "sampling_rate", "path"}`` dicts a decoded ``Audio`` column has.

``read_audio``, ``audio_info``, ``resample`` and ``write_audio`` (the atomic writer, 16-bit PCM by default) are
``audio_io``'s, importable from here as before.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..audio_io import audio_info, read_audio, resample, write_audio

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3")


def list_audio_files(
    folder: str | os.PathLike, *, extensions: Sequence[str] = AUDIO_EXTENSIONS, recursive: bool = False,
    what: str = "audio",
) -> list[Path]:
    """Sorted audio files in ``folder``; a ``ValueError`` if the folder is missing, not a folder or empty.

    Args:
        folder: the folder to list.
        extensions: file name endings to keep (lower case, with the dot); hidden files are ignored.
        recursive: also list sub-folders.
        what: how the error message refers to the folder ("clean speech", "noise", ...).
    """
    folder = Path(folder)
    if not folder.exists():
        raise ValueError(f"The {what} folder {folder} does not exist.")
    if not folder.is_dir():
        raise ValueError(f"The {what} folder {folder} is not a folder.")
    pattern = "**/*" if recursive else "*"
    files = sorted(
        p for p in folder.glob(pattern)
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in tuple(extensions)
    )
    if not files:
        raise ValueError(
            f"The {what} folder {folder} has no audio files (expected files ending in {', '.join(extensions)}"
            f"{', searched recursively' if recursive else ''})."
        )
    return files


def decode_audio_value(
    value: Any, *, sampling_rate: int, downmix: bool = False, start: int = 0, stop: int | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """Decode one value of an audio column to ``{"array": float32 [T], "sampling_rate", "path"}``.

    Accepts what ``datasets`` hands out: ``Audio(decode=False)`` dicts (``{"bytes", "path"}``), decoded
    dicts (``{"array", "sampling_rate"}``), torchcodec ``AudioDecoder`` objects (anything indexable by
    ``"array"`` and ``"sampling_rate"``), or a plain path.
    """
    path = None
    if isinstance(value, (str, os.PathLike)):
        path = str(value)
        audio, rate = read_audio(path, sampling_rate=sampling_rate, downmix=downmix, start=start, stop=stop,
                                 name=name)
        return {"array": audio, "sampling_rate": rate, "path": path}
    if isinstance(value, dict) and ("bytes" in value or "path" in value) and "array" not in value:
        path = value.get("path")
        label = name or path or "<audio bytes>"
        if value.get("bytes") is not None:
            source = value["bytes"]
        elif path is not None:
            source = path
        else:
            raise ValueError(f"Audio value {label} has neither bytes nor a path.")
        audio, rate = read_audio(source, sampling_rate=sampling_rate, downmix=downmix, start=start, stop=stop,
                                 name=label)
        return {"array": audio, "sampling_rate": rate, "path": path}
    try:
        array, rate = value["array"], value["sampling_rate"]
    except (TypeError, KeyError, IndexError) as error:
        raise ValueError(
            f"Cannot decode an audio value of type {type(value).__name__}: expected a path, an "
            f"Audio(decode=False) dict with bytes/path, or a dict with array and sampling_rate."
        ) from error
    label = name or (value.get("path") if isinstance(value, dict) else None) or "<decoded audio>"
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:  # datasets gives [channels, T] for multi-channel arrays
        if not downmix and array.shape[0] > 1:
            raise ValueError(f"{label} has {array.shape[0]} channels; expected mono (downmix=True averages them).")
        array = array.mean(axis=0)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{label}: expected a non-empty mono array, got shape {list(array.shape)}.")
    array = resample(array, int(rate), sampling_rate)
    array = array[start:stop]
    if array.size == 0:
        raise ValueError(f"The crop [{start}, {stop}) of {label} is empty.")
    return {"array": array, "sampling_rate": sampling_rate, "path": path}


class DecodeAudioColumns:
    """A ``datasets`` transform (``Dataset.with_transform``) that decodes audio columns with soundfile.

    Each audio column value becomes ``{"array": float32 [T], "sampling_rate": int, "path": str | None}``,
    the shape a decoded ``datasets.Audio`` column has, without torchcodec or FFmpeg.

    Args:
        columns: the audio columns to decode; other columns pass through.
        sampling_rate: resample to this rate.
        downmix: average the channels of multi-channel files instead of raising.
        segment_samples: with ``offset_column``, decode only ``[offset, offset + segment_samples)`` of each
            file (a segment made by ``collate.segment_pairs``); the last segment of a file may be shorter.
        offset_column: the column holding each row's start sample (at ``sampling_rate``).
        id_column: used to name the row in errors.
    """

    def __init__(
        self, columns: Sequence[str] = ("noisy", "clean"), *, sampling_rate: int = 16000, downmix: bool = False,
        segment_samples: int | None = None, offset_column: str | None = None, id_column: str = "id",
    ):
        if (segment_samples is None) != (offset_column is None):
            raise ValueError("segment_samples and offset_column go together: give both or neither.")
        self.columns = tuple(columns)
        self.sampling_rate = int(sampling_rate)
        self.downmix = downmix
        self.segment_samples = segment_samples
        self.offset_column = offset_column
        self.id_column = id_column

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        out = dict(batch)
        size = len(next(iter(batch.values())))
        for column in self.columns:
            if column not in batch:
                raise ValueError(f"Column {column!r} is missing; the dataset has {sorted(batch)}.")
            decoded = []
            for i in range(size):
                start, stop = 0, None
                if self.offset_column is not None:
                    start = int(batch[self.offset_column][i])
                    stop = start + int(self.segment_samples)
                row = batch[self.id_column][i] if self.id_column in batch else i
                value = batch[column][i]
                path = value.get("path") if isinstance(value, dict) else None
                decoded.append(decode_audio_value(
                    value, sampling_rate=self.sampling_rate, downmix=self.downmix, start=start, stop=stop,
                    name=f"{column} of {row}" + (f" ({path})" if path else ""),
                ))
            out[column] = decoded
        return out


__all__ = [
    "AUDIO_EXTENSIONS", "DecodeAudioColumns", "audio_info", "decode_audio_value", "list_audio_files", "read_audio",
    "resample", "write_audio",
]
