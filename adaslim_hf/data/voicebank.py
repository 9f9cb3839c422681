"""VoiceBank-DEMAND (Valentini-Botinhao et al., 2016/2017) as ``datasets.Dataset`` objects.

Two sources, one result (columns ``noisy``, ``clean``, ``id``, ``speaker``; the folder loader adds
``num_samples``, the length at the target rate, read from the file headers):

* the original folder layout of the Edinburgh DataShare release (48 kHz wavs, resampled on decode)::

      ROOT/clean_trainset_28spk_wav/p226_001.wav   ROOT/noisy_trainset_28spk_wav/p226_001.wav
      ROOT/clean_testset_wav/p232_001.wav          ROOT/noisy_testset_wav/p232_001.wav

  (``trainset="56spk"`` reads the 56-speaker variant). ``scripts/build_corpus.py`` writes its test
  mixtures in this same layout, so this loader reads them too;
* a Hub dataset with ``clean`` / ``noisy`` audio columns and an ``id`` column such as
  ``JacobLinCool/VoiceBank-DEMAND-16k`` (or a local folder of such parquet files), through
  ``datasets.load_dataset``.

VoiceBank has no official validation set. DEMUCS' recipes validate on the test set; we hold out whole
speakers of the training set instead (``VALID_SPEAKERS``, p226 and p287 by default, a common choice in the
literature), so no validation speaker is ever trained on and the test set stays untouched.

Noisy and clean files are paired by file name. Any file without a partner, a pair whose lengths or
sampling rates differ, an unreadable, empty or multi-channel file raises a ``ValueError`` naming the files:
a silent mismatch of noisy and clean is never possible.

Audio columns are stored as ``Audio(decode=False)`` and decoded with soundfile through
``DecodeAudioColumns`` (``decode="soundfile"``, the default, needs no FFmpeg); ``decode="datasets"`` casts
them to ``Audio(sampling_rate=...)`` for datasets' own torchcodec decoding, ``decode=False`` leaves the raw
``{"bytes", "path"}`` values.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import datasets

from ..audio_io import audio_info, resampled_length
from .audio import DecodeAudioColumns, list_audio_files

VALID_SPEAKERS = ("p226", "p287")
"""Training-set speakers held out for validation by default (one female, one male)."""

VOICEBANK_FOLDERS = {
    "train": ("clean_trainset_{trainset}_wav", "noisy_trainset_{trainset}_wav"),
    "test": ("clean_testset_wav", "noisy_testset_wav"),
}

Split = Literal["train", "validation", "test"]
DecodeMode = Literal["soundfile", "datasets", False]

_SPEAKER_PATTERN = re.compile(r"^([^_]+)_")


def speaker_of(file_id: str) -> str:
    """Speaker of a VoiceBank-style id: the part before the first underscore (``p226_001`` -> ``p226``)."""
    match = _SPEAKER_PATTERN.match(file_id)
    if match is None:
        raise ValueError(f"Cannot read a speaker from id {file_id!r}: expected SPEAKER_UTTERANCE, e.g. p226_001.")
    return match.group(1)


def _preview(names: Sequence[str], limit: int = 10) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def pair_files(
    clean_dir: str | os.PathLike,
    noisy_dir: str | os.PathLike,
    *,
    key: Callable[[Path], str] = lambda path: path.stem,
    recursive: bool = False,
) -> list[tuple[str, Path, Path]]:
    """Match the files of a clean and a noisy folder by ``key`` (the file stem by default).

    Returns:
        ``[(key, clean_path, noisy_path), ...]`` sorted by key.

    Raises:
        ValueError: a missing or empty folder, two files with the same key in one folder, or files
            without a partner (the message names them, up to ten per side, and counts them).
    """
    sides = {}
    for what, folder in (("clean", clean_dir), ("noisy", noisy_dir)):
        files = list_audio_files(folder, recursive=recursive, what=what)
        by_key: dict[str, Path] = {}
        for path in files:
            name = key(path)
            if name in by_key:
                raise ValueError(f"Two {what} files share the key {name!r}: {by_key[name]} and {path}.")
            by_key[name] = path
        sides[what] = by_key
    clean, noisy = sides["clean"], sides["noisy"]
    only_clean = sorted(set(clean) - set(noisy))
    only_noisy = sorted(set(noisy) - set(clean))
    if only_clean or only_noisy:
        parts = []
        if only_clean:
            parts.append(f"{len(only_clean)} clean file(s) in {clean_dir} have no noisy partner: "
                         f"{_preview([clean[k].name for k in only_clean])}")
        if only_noisy:
            parts.append(f"{len(only_noisy)} noisy file(s) in {noisy_dir} have no clean partner: "
                         f"{_preview([noisy[k].name for k in only_noisy])}")
        raise ValueError("Unmatched noisy/clean files. " + "; ".join(parts) + ".")
    return [(name, clean[name], noisy[name]) for name in sorted(clean)]


def check_pair(clean_path: Path, noisy_path: Path, *, sampling_rate: int) -> int:
    """Check one pair's headers and return its length in samples at ``sampling_rate``.

    Raises:
        ValueError: unreadable, zero-length or multi-channel files; clean and noisy differing in sampling
            rate or length; a rate below ``sampling_rate`` (upsampling would not restore the band).
    """
    clean = audio_info(clean_path)
    noisy = audio_info(noisy_path)
    for path, info in ((clean_path, clean), (noisy_path, noisy)):
        if info.frames == 0:
            raise ValueError(f"{path} has zero samples.")
        if info.channels != 1:
            raise ValueError(f"{path} has {info.channels} channels; expected mono.")
        if info.samplerate < sampling_rate:
            raise ValueError(
                f"{path} is sampled at {info.samplerate} Hz; expected at least {sampling_rate} Hz "
                f"(upsampling would not restore the missing band)."
            )
    if clean.samplerate != noisy.samplerate:
        raise ValueError(
            f"Sampling rates differ within a pair: {clean_path} is {clean.samplerate} Hz, {noisy_path} is "
            f"{noisy.samplerate} Hz."
        )
    if clean.frames != noisy.frames:
        raise ValueError(
            f"Lengths differ within a pair: {clean_path} has {clean.frames} samples, {noisy_path} has "
            f"{noisy.frames}."
        )
    return resampled_length(clean.frames, clean.samplerate, sampling_rate)


def _features() -> datasets.Features:
    return datasets.Features({
        "id": datasets.Value("string"),
        "speaker": datasets.Value("string"),
        "noisy": datasets.Audio(decode=False),
        "clean": datasets.Audio(decode=False),
        "num_samples": datasets.Value("int64"),
    })


def _finish(dataset: datasets.Dataset, *, sampling_rate: int, decode: DecodeMode) -> datasets.Dataset:
    if decode == "soundfile":
        return dataset.with_transform(DecodeAudioColumns(("noisy", "clean"), sampling_rate=sampling_rate))
    if decode == "datasets":
        for column in ("noisy", "clean"):
            dataset = dataset.cast_column(column, datasets.Audio(sampling_rate=sampling_rate))
        return dataset
    if decode is False:
        return dataset
    raise ValueError(f"decode must be 'soundfile', 'datasets' or False, got {decode!r}.")


def _select_split(rows: list[dict], split: Split, valid_speakers: Sequence[str], where: str) -> list[dict]:
    valid = set(valid_speakers)
    if split == "validation":
        if not valid:
            raise ValueError("split='validation' needs at least one speaker in valid_speakers.")
        rows = [row for row in rows if row["speaker"] in valid]
        missing = valid - {row["speaker"] for row in rows}
        if missing:
            raise ValueError(f"Validation speaker(s) {sorted(missing)} have no files in {where}.")
    elif split == "train":
        rows = [row for row in rows if row["speaker"] not in valid]
        if not rows:
            raise ValueError(f"No training files remain in {where} after holding out speakers {sorted(valid)}.")
    return rows


def voicebank_rows(
    root: str | os.PathLike, split: Split = "train", *, sampling_rate: int = 16000,
    valid_speakers: Sequence[str] = VALID_SPEAKERS, trainset: str = "28spk", check_files: bool = True,
) -> list[dict]:
    """The rows of one split of a VoiceBank-layout folder: ``id``, ``speaker``, ``clean``/``noisy`` paths
    and ``num_samples`` at ``sampling_rate``. See ``load_voicebank``."""
    if split not in ("train", "validation", "test"):
        raise ValueError(f"split must be 'train', 'validation' or 'test', got {split!r}.")
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"The VoiceBank root {root} does not exist or is not a folder.")
    clean_name, noisy_name = VOICEBANK_FOLDERS["test" if split == "test" else "train"]
    clean_dir = root / clean_name.format(trainset=trainset)
    noisy_dir = root / noisy_name.format(trainset=trainset)
    for folder in (clean_dir, noisy_dir):
        if not folder.is_dir():
            present = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise ValueError(
                f"Expected the VoiceBank folder {folder.name} in {root}; found folders {present or 'none'}."
            )
    rows = []
    for file_id, clean_path, noisy_path in pair_files(clean_dir, noisy_dir):
        rows.append({"id": file_id, "speaker": speaker_of(file_id), "clean": str(clean_path),
                     "noisy": str(noisy_path)})
    if split != "test":
        rows = _select_split(rows, split, valid_speakers, f"{clean_dir} and {noisy_dir}")
    for row in rows:
        if check_files:
            row["num_samples"] = check_pair(Path(row["clean"]), Path(row["noisy"]), sampling_rate=sampling_rate)
        else:
            row["num_samples"] = -1
    return rows


def load_voicebank(
    root: str | os.PathLike,
    split: Split = "train",
    *,
    sampling_rate: int = 16000,
    valid_speakers: Sequence[str] = VALID_SPEAKERS,
    trainset: str = "28spk",
    decode: DecodeMode = "soundfile",
    check_files: bool = True,
) -> datasets.Dataset:
    """One split of VoiceBank-DEMAND from its original folder layout.

    Args:
        root: the folder holding ``clean_trainset_28spk_wav``, ``noisy_trainset_28spk_wav``,
            ``clean_testset_wav`` and ``noisy_testset_wav``.
        split: ``"train"`` (training folders minus ``valid_speakers``), ``"validation"`` (training folders,
            only ``valid_speakers``) or ``"test"``.
        sampling_rate: the rate the audio is decoded at (the 48 kHz originals are resampled).
        valid_speakers: training-set speakers held out for validation.
        trainset: ``"28spk"`` or ``"56spk"``.
        decode: ``"soundfile"`` (lazy decoding without FFmpeg), ``"datasets"`` (``Audio`` columns decoded by
            datasets/torchcodec) or ``False`` (raw ``{"bytes", "path"}``).
        check_files: read every header and fail early on bad pairs (a few seconds for the full corpus).

    Returns:
        A ``datasets.Dataset`` with ``id``, ``speaker``, ``noisy``, ``clean``, ``num_samples`` (length at
        ``sampling_rate``, -1 when ``check_files=False``).

    Example:
        >>> ds = load_voicebank("VoiceBank-DEMAND", "validation")         # doctest: +SKIP
        >>> ds[0]["noisy"]["array"].shape, ds[0]["noisy"]["sampling_rate"]  # doctest: +SKIP
        ((37152,), 16000)
    """
    rows = voicebank_rows(root, split, sampling_rate=sampling_rate, valid_speakers=valid_speakers,
                          trainset=trainset, check_files=check_files)
    columns = {name: [row[name] for row in rows] for name in ("id", "speaker", "noisy", "clean", "num_samples")}
    dataset = datasets.Dataset.from_dict(columns, features=_features(), split=split)
    return _finish(dataset, sampling_rate=sampling_rate, decode=decode)


def load_voicebank_splits(root: str | os.PathLike, **kwargs) -> datasets.DatasetDict:
    """``train``, ``validation`` and ``test`` of a VoiceBank-layout folder as a ``DatasetDict``
    (keyword arguments as ``load_voicebank``)."""
    return datasets.DatasetDict({split: load_voicebank(root, split, **kwargs)
                                 for split in ("train", "validation", "test")})


def load_voicebank_hub(
    name_or_path: str,
    split: Split = "train",
    *,
    sampling_rate: int = 16000,
    valid_speakers: Sequence[str] = VALID_SPEAKERS,
    id_column: str = "id",
    decode: DecodeMode = "soundfile",
    revision: str | None = None,
    cache_dir: str | None = None,
    **load_kwargs,
) -> datasets.Dataset:
    """One split of VoiceBank-DEMAND from a Hub dataset (or local dataset folder) with ``clean`` and
    ``noisy`` audio columns and an id column, e.g. ``JacobLinCool/VoiceBank-DEMAND-16k``.

    The Hub split ``train`` is divided by speaker into ``train`` and ``validation`` exactly like the folder
    loader; ``test`` is the Hub's ``test`` split. Works offline from the datasets cache
    (``HF_DATASETS_OFFLINE=1``) or from a local folder path.

    Raises:
        ValueError: a missing ``clean``/``noisy``/id column, duplicate ids, or an empty split.
    """
    if split not in ("train", "validation", "test"):
        raise ValueError(f"split must be 'train', 'validation' or 'test', got {split!r}.")
    hub_split = "test" if split == "test" else "train"
    dataset = datasets.load_dataset(name_or_path, split=hub_split, revision=revision, cache_dir=cache_dir,
                                    **load_kwargs)
    missing = [c for c in ("clean", "noisy", id_column) if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{name_or_path} ({hub_split}) lacks column(s) {missing}; expected clean and noisy audio and "
            f"{id_column!r}, found {dataset.column_names}."
        )
    for column in ("clean", "noisy"):
        if not isinstance(dataset.features[column], datasets.Audio):
            raise ValueError(f"Column {column!r} of {name_or_path} is {dataset.features[column]}, expected Audio.")  # noqa: TRY004
        dataset = dataset.cast_column(column, datasets.Audio(decode=False))
    ids = [str(i) for i in dataset[id_column]]
    if len(set(ids)) != len(ids):
        counts = Counter(ids)
        duplicates = sorted(i for i, n in counts.items() if n > 1)
        raise ValueError(f"{name_or_path} ({hub_split}) has duplicate ids: {_preview(duplicates)}.")
    if id_column != "id":
        dataset = dataset.rename_column(id_column, "id")
    speakers = [speaker_of(i) for i in ids]
    if "speaker" in dataset.column_names:
        dataset = dataset.remove_columns("speaker")
    dataset = dataset.add_column("speaker", speakers)
    if split != "test":
        valid = set(valid_speakers)
        if split == "validation" and not valid:
            raise ValueError("split='validation' needs at least one speaker in valid_speakers.")
        keep = [i for i, s in enumerate(speakers) if (s in valid) == (split == "validation")]
        if not keep:
            raise ValueError(f"No {split} rows in {name_or_path} with valid_speakers={sorted(valid)}.")
        dataset = dataset.select(keep)
    return _finish(dataset, sampling_rate=sampling_rate, decode=decode)
