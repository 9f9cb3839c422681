"""Segmenting, cropping and batching of noisy/clean pairs.

* ``segment_offsets`` / ``segment_pairs``: cut each pair of a dataset into fixed-length training segments
  (DEMUCS' ``segment`` / ``stride`` / ``pad`` rule) as an index of ``(source_index, offset)`` rows;
  the audio of a segment is decoded only when the row is read, and only that segment's samples.
* ``SpeechEnhancementCollator``: a batch of pairs -> ``input_values`` [B, T], ``clean_values`` [B, T] and
  ``padding_mask`` [B, T] (1 = real sample, 0 = padding), padded to the batch's longest item and optionally
  cropped or padded to a length the model accepts (``valid_length``, e.g. ``config.valid_length``).

Nothing here imports the model: the model's length rule comes in as a callable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import datasets
import numpy as np
import torch

from ..audio_io import audio_info, resampled_length
from .audio import decode_audio_value


def segment_offsets(length: int, segment: int | None, stride: int | None = None, *, pad: bool = True) -> list[int]:
    """Start samples of the segments of a signal of ``length`` samples.

    The rule of DEMUCS' ``Audioset``: no ``segment`` gives one example (the whole signal); a signal
    shorter than ``segment`` gives one (padded) example if ``pad`` else none; a longer one gives
    ``1 + floor((length - segment) / stride)`` full segments, plus one more starting on the stride grid
    that covers the tail (and is padded) when ``pad`` and the stride grid does not end exactly at the end.

    Example:
        >>> segment_offsets(11, 4, 3)
        [0, 3, 6, 9]
        >>> segment_offsets(11, 4, 3, pad=False)
        [0, 3, 6]
    """
    if length <= 0:
        raise ValueError(f"Expected a positive length, got {length}.")
    if segment is None:
        return [0]
    stride = segment if stride is None else stride
    if segment <= 0 or stride <= 0:
        raise ValueError(f"segment and stride must be positive, got segment={segment}, stride={stride}.")
    if length < segment:
        return [0] if pad else []
    count = (length - segment) // stride + 1
    if pad and (length - segment) % stride:
        count = math.ceil((length - segment) / stride) + 1
    return [i * stride for i in range(count)]


class _DecodeSegments:
    """Transform of a segment index: fetches the parent rows and decodes only each segment's samples."""

    def __init__(self, parent: datasets.Dataset, columns: Sequence[str], segment_samples: int | None,
                 sampling_rate: int):
        self.parent = parent
        self.columns = tuple(columns)
        self.segment_samples = segment_samples
        self.sampling_rate = sampling_rate

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        out = dict(batch)
        for column in self.columns:
            out[column] = []
        for source_index, offset, name in zip(batch["source_index"], batch["offset"], batch["id"]):
            row = self.parent[int(source_index)]
            stop = None if self.segment_samples is None else int(offset) + self.segment_samples
            for column in self.columns:
                out[column].append(decode_audio_value(
                    row[column], sampling_rate=self.sampling_rate, start=int(offset), stop=stop,
                    name=f"{column} of {name}",
                ))
        return out


def spread_indices(total: int, count: int | None) -> list[int]:
    """``count`` indices spread evenly over ``range(total)`` (all of them when ``count`` is None or >= total).

    Evaluation subsets use this instead of the first ``count`` rows: test and validation folders are sorted by
    name, so their first rows all come from one speaker or source (the corpus' first 218 test clips are one
    speaker), while evenly spaced rows keep the split's mix and are the same on every run.
    """
    if count is None or count >= total:
        return list(range(total))
    if count < 1:
        raise ValueError(f"an evaluation subset needs at least 1 item, got {count}.")
    return [(2 * i + 1) * total // (2 * count) for i in range(count)]


def _lengths(dataset: datasets.Dataset, column: str, sampling_rate: int) -> list[int]:
    if "num_samples" in dataset.column_names:
        lengths = dataset["num_samples"]
        if all(n >= 0 for n in lengths):
            return list(lengths)
    lengths = []
    for i, value in enumerate(dataset[column]):
        source = value.get("bytes") or value.get("path") if isinstance(value, dict) else value
        info = audio_info(source, name=f"{column} of row {i}")
        lengths.append(resampled_length(info.frames, info.samplerate, sampling_rate))
    return lengths


def segment_pairs(
    dataset: datasets.Dataset,
    *,
    segment_seconds: float | None = 4.5,
    stride_seconds: float | None = 0.5,
    pad: bool = True,
    sampling_rate: int = 16000,
    columns: Sequence[str] = ("noisy", "clean"),
) -> datasets.Dataset:
    """Cut every pair of ``dataset`` into segments (DEMUCS' Valentini recipe: 4.5 s every 0.5 s).

    Args:
        dataset: rows with ``Audio(decode=False)``-style audio ``columns`` and ``id`` (as made by
            ``load_voicebank``, ``load_voicebank_hub``, ``load_dns_test_set``); a ``num_samples`` column is
            used when present, otherwise every header is read once.
        segment_seconds: segment length; ``None`` keeps whole files (one row per file).
        stride_seconds: distance between segment starts (defaults to the segment length).
        pad: keep a final, shorter segment that covers the tail (and files shorter than a segment); the
            collator pads it and masks the padding.
        sampling_rate: the rate segments are counted and decoded at.

    Returns:
        A ``datasets.Dataset`` with ``id`` (``"<id>@<offset>"``), ``source_index``, ``offset`` and
        ``num_samples`` (the segment's length, at most the segment), decoding each row's audio columns to
        ``{"array", "sampling_rate", "path"}`` of just that segment when read.
    """
    raw = dataset.with_format(None)
    missing = [c for c in (*columns, "id") if c not in raw.column_names]
    if missing:
        raise ValueError(f"segment_pairs needs columns {[*columns, 'id']}; missing {missing} in {raw.column_names}.")
    segment = None if segment_seconds is None else round(segment_seconds * sampling_rate)
    stride = None if stride_seconds is None else round(stride_seconds * sampling_rate)
    lengths = _lengths(raw, columns[0], sampling_rate)
    ids, sources, offsets, sizes = [], [], [], []
    for index, (name, length) in enumerate(zip(raw["id"], lengths)):
        if length <= 0:
            raise ValueError(f"Row {index} ({name}) has {length} samples; expected a non-empty file.")
        for offset in segment_offsets(length, segment, stride, pad=pad):
            ids.append(f"{name}@{offset}")
            sources.append(index)
            offsets.append(offset)
            sizes.append(length - offset if segment is None else min(segment, length - offset))
    if not ids:
        raise ValueError(
            f"No segments: every file is shorter than segment_seconds={segment_seconds} and pad=False."
        )
    index_dataset = datasets.Dataset.from_dict(
        {"id": ids, "source_index": sources, "offset": offsets, "num_samples": sizes},
        features=datasets.Features({
            "id": datasets.Value("string"), "source_index": datasets.Value("int64"),
            "offset": datasets.Value("int64"), "num_samples": datasets.Value("int64"),
        }),
    )
    return index_dataset.with_transform(_DecodeSegments(raw, columns, segment, sampling_rate))


def largest_valid_length(length: int, valid_length: Callable[[int], int]) -> int:
    """The longest ``L <= length`` that the model takes as is (``valid_length(L) == L``).

    ``valid_length`` is the model's rule (e.g. ``AdaSlimConfig.valid_length``): the smallest length
    ``>= L`` its strided convolutions consume without leftover samples; it is non-decreasing, so the
    valid lengths are its fixed points and the search walks down from ``length``.
    """
    if length <= 0:
        raise ValueError(f"Expected a positive length, got {length}.")
    candidate = length
    while candidate > 0:
        target = int(valid_length(candidate))
        if target == candidate:
            return candidate
        if target < candidate:
            raise ValueError(f"valid_length({candidate}) = {target} < {candidate}; expected a length >= its input.")
        candidate -= 1
    raise ValueError(f"No length <= {length} is valid for this model; use valid_length_mode='pad'.")


def _to_1d(value: Any, *, what: str, sampling_rate: int | None) -> torch.Tensor:
    """A feature value (array, tensor, list or audio dict) as a float32 tensor [T]."""
    if not isinstance(value, (list, tuple, np.ndarray, torch.Tensor)):  # an audio dict or AudioDecoder
        if sampling_rate is None:
            value = value["array"]
        else:
            value = decode_audio_value(value, sampling_rate=sampling_rate, name=what)["array"]
    tensor = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    tensor = tensor.to(torch.float32)
    if tensor.ndim == 2 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 1:
        raise ValueError(f"{what}: expected a mono signal [T], got shape {list(tensor.shape)}.")
    if tensor.numel() == 0:
        raise ValueError(f"{what} is empty.")
    return tensor


@dataclass
class SpeechEnhancementCollator:
    """Batch noisy/clean pairs for the model.

    Each feature is a dict with ``noisy`` and ``clean`` (or ``input_values`` and ``clean_values``) given as
    arrays, tensors, lists, or audio dicts (``{"array", "sampling_rate"}``, ``Audio(decode=False)`` values,
    which are decoded). Returns torch tensors:

    * ``input_values`` [B, T] float32: the noisy signals, zero-padded;
    * ``clean_values`` [B, T] float32: the clean targets, zero-padded;
    * ``padding_mask`` [B, T] int64: 1 on each item's real samples, 0 on padding;
    * ``ids`` (list of str) when ``return_ids`` and the features carry an ``id``.

    Args:
        valid_length: the model's length rule (``int -> int``, e.g. ``model.config.valid_length``); with it
            the batch length is made one the model takes without internal padding.
        valid_length_mode: ``"crop"`` shortens the batch to the longest valid length <= the longest item
            (the DEMUCS training choice: no padded tail to learn from); ``"pad"`` pads up to
            ``valid_length(longest)`` and masks the padding (evaluation: nothing is cut).
        max_length: crop longer items to this many samples first (a window at the start, or a random one
            when ``random_crop``; the same window for noisy and clean).
        random_crop: draw the crop window with a generator seeded by ``seed``.
        sampling_rate: the expected rate of audio dicts; a dict at another rate is resampled, plain
            arrays are taken to be at this rate.
    """

    valid_length: Callable[[int], int] | None = None
    valid_length_mode: Literal["crop", "pad"] = "crop"
    max_length: int | None = None
    random_crop: bool = False
    seed: int = 0
    sampling_rate: int | None = 16000
    return_ids: bool = False

    def __post_init__(self):
        if self.valid_length_mode not in ("crop", "pad"):
            raise ValueError(f"valid_length_mode must be 'crop' or 'pad', got {self.valid_length_mode!r}.")
        if self.max_length is not None and self.max_length <= 0:
            raise ValueError(f"max_length must be positive, got {self.max_length}.")
        self._rng = np.random.default_rng(self.seed)

    def _pair(self, feature: dict, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        name = str(feature.get("id", f"item {index}"))
        if "noisy" in feature and "clean" in feature:
            noisy, clean = feature["noisy"], feature["clean"]
        elif "input_values" in feature and "clean_values" in feature:
            noisy, clean = feature["input_values"], feature["clean_values"]
        else:
            raise ValueError(
                f"{name}: expected keys noisy/clean or input_values/clean_values, got {sorted(feature)}."
            )
        noisy = _to_1d(noisy, what=f"noisy of {name}", sampling_rate=self.sampling_rate)
        clean = _to_1d(clean, what=f"clean of {name}", sampling_rate=self.sampling_rate)
        if noisy.shape != clean.shape:
            raise ValueError(
                f"{name}: noisy has {noisy.numel()} samples but clean has {clean.numel()}; a pair must align."
            )
        if self.max_length is not None and noisy.numel() > self.max_length:
            extra = noisy.numel() - self.max_length
            start = int(self._rng.integers(0, extra + 1)) if self.random_crop else 0
            noisy = noisy[start:start + self.max_length]
            clean = clean[start:start + self.max_length]
        return noisy, clean, name

    def __call__(self, features: Sequence[dict]) -> dict[str, Any]:
        if len(features) == 0:
            raise ValueError("Cannot collate an empty list of features.")
        pairs = [self._pair(feature, i) for i, feature in enumerate(features)]
        longest = max(noisy.numel() for noisy, _, _ in pairs)
        length = longest
        if self.valid_length is not None:
            if self.valid_length_mode == "crop":
                length = largest_valid_length(longest, self.valid_length)
            else:
                length = int(self.valid_length(longest))
        batch = len(pairs)
        input_values = torch.zeros(batch, length)
        clean_values = torch.zeros(batch, length)
        padding_mask = torch.zeros(batch, length, dtype=torch.long)
        for row, (noisy, clean, _) in enumerate(pairs):
            size = min(noisy.numel(), length)
            input_values[row, :size] = noisy[:size]
            clean_values[row, :size] = clean[:size]
            padding_mask[row, :size] = 1
        out: dict[str, Any] = {
            "input_values": input_values, "clean_values": clean_values, "padding_mask": padding_mask,
        }
        if self.return_ids:
            out["ids"] = [name for _, _, name in pairs]
        return out
