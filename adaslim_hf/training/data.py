"""Data for training: adapters over ``adaslim_hf.data`` (datasets, augmentations, collation), and the seeds
that make every micro-batch's randomness a function of where the run is."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..configuration_adaslim import AdaSlimConfig
from .settings import TrainingSettings


@dataclass
class EpochStream:
    """A streaming training set rebuilt for every epoch (new mixtures of the same speech each epoch):
    ``build(epoch) -> datasets.IterableDataset``. It has no length: runs on it need ``max_train_steps``."""

    build: Callable[[int], Any]
    description: str


def load_mixtures(folder: str, sample_rate: int):
    """Fixed noisy/clean pairs from a folder in the VoiceBank test layout (noisy_testset_wav/clean_testset_wav)
    or the DNS synthetic test-set layout (noisy/, clean/ paired by fileid_N)."""
    from ..data.dns import load_dns_test_set
    from ..data.voicebank import load_voicebank

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
    from ..data.collate import segment_pairs

    rate = config.sample_rate
    if settings.data_dir is None:
        raise ValueError(f"dataset {settings.dataset!r} needs `data_dir`.")
    valid_set = load_mixtures(settings.valid_dir, rate) if settings.valid_dir else None
    test_set = load_mixtures(settings.test_dir, rate) if settings.test_dir and settings.evaluate_test else None
    if settings.dataset == "voicebank":
        from ..data.voicebank import VALID_SPEAKERS, load_voicebank, load_voicebank_hub

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
        from ..data.dns import SNR_RANGE, dns_training_stream

        if settings.dataset == "corpus":
            from ..data.corpus import load_corpus, read_corpus_info

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
                clean_probability=settings.clean_probability,
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
    from ..data.collate import SpeechEnhancementCollator

    return SpeechEnhancementCollator(valid_length=config.valid_length, valid_length_mode="crop",
                                     sampling_rate=config.sample_rate, return_ids=True)


def make_augment(settings: TrainingSettings, sample_rate: int) -> Callable:
    """DEMUCS' chain (remix -> band-mask -> shift -> reverb) on the (noise = noisy - clean, clean) stack:
    ``augment(noisy [B, T], clean [B, T], generator) -> (noisy, clean)``; the identity when all are off."""
    from ..data.augment import augment_pair, build_augmentation

    chain = build_augmentation(remix=settings.remix, bandmask=settings.bandmask, shift=settings.shift,
                               shift_same=settings.shift_same, revecho=settings.revecho, sample_rate=sample_rate)
    chain.train()
    if not len(chain.steps):
        return lambda noisy, clean, generator=None: (noisy, clean)
    return lambda noisy, clean, generator=None: augment_pair(chain, noisy, clean, generator=generator)



def calibration_batches(train_dataset, count: int, batch_size: int, collator) -> list[dict]:
    """The first ``count`` training segments (epoch 0's order for a stream), collated in batches."""
    if isinstance(train_dataset, EpochStream):
        items = list(itertools.islice(iter(train_dataset.build(0)), count))
    else:
        items = [train_dataset[i] for i in range(min(count, len(train_dataset)))]
    return [collator(items[start : start + batch_size]) for start in range(0, len(items), batch_size)]



def micro_batch_seed(seed: int, epoch: int, batch: int, process: int) -> int:
    """The seed of one micro-batch's randomness (augmentation, Gumbel noise): a pure function of where the
    run is, so a resumed run draws exactly what the uninterrupted one did."""
    digest = hashlib.sha256(f"{seed}/{epoch}/{batch}/{process}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def whole_updates(batches: Iterable, micro_batches_per_update: int,
                  every_process_has: Callable[[bool], bool]) -> Iterator:
    """``batches`` in whole updates of ``micro_batches_per_update``: before each update, every process says
    whether it holds a full one (``every_process_has(full) -> all full``, one collective per update), and the
    epoch ends for all at the first update one of them cannot fill; its micro-batches are not used."""
    iterator = iter(batches)
    while True:
        update = list(itertools.islice(iterator, micro_batches_per_update))
        if not every_process_has(len(update) == micro_batches_per_update):
            return
        yield from update
