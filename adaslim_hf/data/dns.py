"""DNS-Challenge-style data: clean speech and noise folders mixed on the fly, and the synthetic test-set
layout.

* ``dns_training_stream``: a ``datasets.IterableDataset`` that cuts every clean file into segments and mixes
  each with a random noise crop at a random SNR (default -5..20 dB) and level (-35..-15 dBFS), optionally
  convolved with a room impulse response first. Files are read segment by segment (soundfile reads just
  the requested samples), so the corpus is never held in memory. The stream has one shard per clean file:
  ``datasets.distributed.split_dataset_by_node`` and DataLoader workers split it across processes.
  Every draw comes from a generator seeded by ``(seed, epoch, file index, segment index)``, so an example is
  the same whichever process makes it, and a new ``epoch`` gives new mixtures of the same speech.
* ``dns_eval_mixtures``: deterministic evaluation mixtures from a seed (whole utterances, SNRs cycling
  through a fixed list), and ``write_mixtures`` to store them in the DNS or the VoiceBank layout.
* ``load_dns_test_set``: the DNS synthetic test-set layout (``noisy/`` and ``clean/``, paired by the
  ``fileid_N`` at the end of each name) as a ``datasets.Dataset``.

Mixing follows the DNS Challenge's ``noisyspeech_synthesizer``: scale the noise to the drawn SNR against the
clean segment, add, scale speech and noise together so the mixture sits at the drawn level, and scale down
further if the mixture would clip. The target is the clean speech with the same gain.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import datasets
import numpy as np

from ..audio_io import audio_info, read_audio, resample, resampled_length
from .audio import AUDIO_EXTENSIONS, list_audio_files, write_audio
from .collate import segment_offsets
from .voicebank import DecodeMode, _finish, _preview

SNR_RANGE = (-5.0, 20.0)
LEVEL_RANGE = (-35.0, -15.0)
EVAL_SNRS = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
SILENCE_DB = -80.0
"""A clean segment quieter than this (dBFS) counts as silence: its noise keeps the level the SNR of a
-25 dBFS speech segment would give it, instead of being scaled to nothing."""

FILEID_PATTERN = re.compile(r"fileid_(\d+)$")


def rms_db(signal: np.ndarray) -> float:
    """Root-mean-square level in dB relative to full scale (-inf for digital silence)."""
    power = float(np.mean(np.square(signal, dtype=np.float64)))
    return 10.0 * np.log10(power) if power > 0 else float("-inf")


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float, level_db: float, *,
               peak: float = 0.99) -> dict[str, np.ndarray | float]:
    """Mix ``clean`` and ``noise`` (same length) at ``snr_db`` with the mixture at ``level_db`` dBFS.

    ``noise`` is scaled by ``g`` with ``10 log10(P_clean / (g^2 P_noise)) = snr_db``; then both are scaled by
    one gain so the mixture's RMS is ``level_db``, reduced if the mixture (or the speech) would peak above
    ``peak``.

    Returns:
        ``{"noisy", "clean", "noise"}`` float32 arrays (``noisy == clean + noise``), the achieved
        ``"level_db"``, the ``"snr_db"`` and the ``"gain"`` applied to ``clean``.
    """
    clean = np.asarray(clean, dtype=np.float32)
    noise = np.asarray(noise, dtype=np.float32)
    if clean.shape != noise.shape or clean.ndim != 1:
        raise ValueError(f"clean {list(clean.shape)} and noise {list(noise.shape)} must be 1-D of one length.")
    noise_db = rms_db(noise)
    if not np.isfinite(noise_db):
        raise ValueError("The noise segment is digital silence; cannot scale it to an SNR.")
    clean_db = rms_db(clean)
    reference_db = clean_db if clean_db > SILENCE_DB else -25.0
    noise = noise * np.float32(10.0 ** ((reference_db - snr_db - noise_db) / 20.0))
    noisy = clean + noise
    gain = 10.0 ** ((level_db - rms_db(noisy)) / 20.0)
    top = max(float(np.abs(noisy).max()), float(np.abs(clean).max())) * gain
    if top > peak:
        gain *= peak / top
    gain = np.float32(gain)
    clean, noise = clean * gain, noise * gain
    return {"noisy": clean + noise, "clean": clean, "noise": noise, "level_db": rms_db(clean + noise),
            "snr_db": float(snr_db), "gain": gain}


def apply_rir(clean: np.ndarray, rir: np.ndarray, *, sampling_rate: int = 16000,
              early_ms: float = 50.0) -> tuple[np.ndarray, np.ndarray]:
    """Convolve speech with a room impulse response.

    The response is cut at its strongest tap (the direct path), so the result stays time-aligned with the
    dry speech. Returns ``(reverberant, early)``: the speech through the whole response (what the microphone
    hears) and through the direct path plus the first ``early_ms`` ms of reflections (the usual target:
    early reflections help intelligibility; the late tail is what enhancement should remove).
    """
    rir = np.asarray(rir, dtype=np.float32)
    if rir.ndim != 1 or rir.size == 0:
        raise ValueError(f"Expected a non-empty mono impulse response, got shape {list(rir.shape)}.")
    direct = int(np.argmax(np.abs(rir)))
    rir = rir[direct:] / np.float32(np.abs(rir[direct]))
    early = rir[: max(1, round(early_ms * sampling_rate / 1000))]
    length = clean.shape[-1]
    size = 1 << int(np.ceil(np.log2(length + rir.size)))
    spectrum = np.fft.rfft(clean, size)
    reverberant = np.fft.irfft(spectrum * np.fft.rfft(rir, size), size)[:length]
    early_signal = np.fft.irfft(spectrum * np.fft.rfft(early, size), size)[:length]
    return reverberant.astype(np.float32), early_signal.astype(np.float32)


class NoiseBank:
    """Random noise crops from a list of files, read on demand (headers cached, audio never kept).

    A crop longer than the chosen file continues with further random files, as the DNS synthesizer does.
    Multi-channel noise is averaged to mono (game and field recordings are often stereo).
    """

    def __init__(self, files: Sequence[str | os.PathLike], *, sampling_rate: int = 16000):
        if not files:
            raise ValueError("NoiseBank needs at least one noise file.")
        self.files = tuple(str(f) for f in files)
        self.sampling_rate = sampling_rate
        self._lengths: dict[str, int] = {}

    def length_of(self, path: str) -> int:
        if path not in self._lengths:
            info = audio_info(path)
            if info.frames == 0:
                raise ValueError(f"Noise file {path} has zero samples.")
            self._lengths[path] = resampled_length(info.frames, info.samplerate, self.sampling_rate)
        return self._lengths[path]

    def sample(self, rng: np.random.Generator, length: int) -> tuple[np.ndarray, list[str]]:
        """A noise crop of exactly ``length`` samples and the files it came from."""
        pieces, used, filled = [], [], 0
        for _ in range(1000):
            path = self.files[int(rng.integers(len(self.files)))]
            available = self.length_of(path)
            need = length - filled
            start = int(rng.integers(0, available - need + 1)) if available > need else 0
            piece, _ = read_audio(path, sampling_rate=self.sampling_rate, downmix=True, start=start,
                                  stop=start + min(need, available))
            if rms_db(piece) == float("-inf"):
                continue  # a silent stretch of a noise file: draw again
            pieces.append(piece)
            used.append(path)
            filled += piece.size
            if filled >= length:
                return np.concatenate(pieces)[:length], used
        raise ValueError(f"Could not draw {length} samples of non-silent noise from {len(self.files)} file(s).")


def change_speed(audio: np.ndarray, factor: float, *, sampling_rate: int = 16000) -> np.ndarray:
    """Play ``audio`` ``factor`` times as fast: the speed perturbation of Kaldi and of torchaudio's
    ``SpeedPerturbation`` (Ko et al., 2015).

    The samples are resampled as if they had been recorded at ``factor * sampling_rate`` (rounded to whole
    hertz), so the duration scales by ``1 / factor`` and pitch and formants by ``factor``: below 1 the talker
    sounds slower, lower and larger (0.8 takes a 200 Hz voice to 160 Hz), above 1 faster and smaller.
    """
    if factor <= 0:
        raise ValueError(f"A speed factor must be > 0, got {factor}.")
    return resample(audio, round(sampling_rate * factor), sampling_rate)


def _draw(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return float(low) if low == high else float(rng.uniform(low, high))


def mix_example(
    rng: np.random.Generator, clean: np.ndarray, noises: NoiseBank, *, snr_db: float,
    level_range: tuple[float, float] = LEVEL_RANGE, rir_files: Sequence[str] = (), rir_probability: float = 0.0,
    sampling_rate: int = 16000,
) -> dict:
    """One mixture of a clean signal with random noise (and, with ``rir_probability``, a random RIR)."""
    rir_path = ""
    reverberant = target = clean
    if rir_files and rng.random() < rir_probability:
        rir_path = rir_files[int(rng.integers(len(rir_files)))]
        rir, _ = read_audio(rir_path, sampling_rate=sampling_rate)
        reverberant, target = apply_rir(clean, rir, sampling_rate=sampling_rate)
    noise, noise_paths = noises.sample(rng, reverberant.size)
    mixed = mix_at_snr(reverberant, noise, snr_db, _draw(rng, level_range))
    return {"noisy": mixed["noisy"], "clean": target * mixed["gain"], "snr_db": float(snr_db),
            "level_db": mixed["level_db"], "noise_paths": noise_paths, "rir_path": rir_path}


def _features() -> datasets.Features:
    return datasets.Features({
        "id": datasets.Value("string"),
        "noisy": datasets.List(datasets.Value("float32")),
        "clean": datasets.List(datasets.Value("float32")),
        "snr_db": datasets.Value("float32"),
        "level_db": datasets.Value("float32"),
        "clean_path": datasets.Value("string"),
        "noise_paths": datasets.List(datasets.Value("string")),
        "rir_path": datasets.Value("string"),
        "speed": datasets.Value("float64"),
    })


def _stream_mixtures(
    shards: list[tuple[int, str]], *, noise_files: tuple[str, ...], rir_files: tuple[str, ...], seed: int,
    epoch: int, segment: int | None, stride: int | None, pad: bool, snr_range: tuple[float, float],
    level_range: tuple[float, float], rir_probability: float, sampling_rate: int, min_samples: int,
    speed_factors: tuple[float, ...] = (), clean_probability: float = 0.0,
) -> Iterator[dict]:
    """Generator behind ``dns_training_stream``: one shard = one clean file (index, path)."""
    noises = NoiseBank(noise_files, sampling_rate=sampling_rate)
    for file_index, path in shards:
        info = audio_info(path)
        if info.channels != 1:
            raise ValueError(f"Clean file {path} has {info.channels} channels; expected mono.")
        if info.frames == 0:
            raise ValueError(f"Clean file {path} has zero samples.")
        length = resampled_length(info.frames, info.samplerate, sampling_rate)
        if length < min_samples:
            continue
        for segment_index, offset in enumerate(segment_offsets(length, segment, stride, pad=pad)):
            rng = np.random.default_rng([seed, epoch, file_index, segment_index])
            # drawn only when asked for, so that the stream without speed perturbation stays the same
            speed = float(speed_factors[int(rng.integers(len(speed_factors)))]) if speed_factors else 1.0
            # read what plays for one segment at this speed, then change its speed (and cut rounding's extra)
            stop = None if segment is None else offset + int(np.ceil(segment * speed))
            clean, _ = read_audio(path, sampling_rate=sampling_rate, start=offset, stop=stop)
            if speed != 1.0:
                clean = change_speed(clean, speed, sampling_rate=sampling_rate)[:segment]
            if clean.size < min_samples:
                continue
            example = mix_example(rng, clean, noises, snr_db=_draw(rng, snr_range), level_range=level_range,
                                  rir_files=rir_files, rir_probability=rir_probability, sampling_rate=sampling_rate)
            # drawn only when asked for, so that the stream without clean segments stays the same
            if clean_probability and rng.random() < clean_probability:
                example.update(noisy=example["clean"], snr_db=float("inf"), noise_paths=[])
            yield {"id": f"{Path(path).stem}@{offset}", "clean_path": path, "speed": speed, **example}


def _files(folder, what: str) -> list[str]:
    return [str(p) for p in list_audio_files(folder, recursive=True, what=what)]


def dns_training_stream(
    clean_dir: str | os.PathLike | Sequence[str | os.PathLike],
    noise_dir: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    rir_dir: str | os.PathLike | None = None,
    rir_probability: float = 0.5,
    sampling_rate: int = 16000,
    segment_seconds: float | None = 4.0,
    stride_seconds: float | None = None,
    pad: bool = True,
    min_seconds: float = 0.5,
    snr_range: tuple[float, float] = SNR_RANGE,
    level_range: tuple[float, float] = LEVEL_RANGE,
    speed_factors: Sequence[float] | None = None,
    clean_probability: float = 0.0,
    seed: int = 0,
    epoch: int = 0,
) -> datasets.IterableDataset:
    """Clean speech and noise mixed on the fly, as a streaming ``datasets.IterableDataset``.

    Args:
        clean_dir, noise_dir: folders searched recursively for audio (or explicit lists of files).
        rir_dir: optional folder of mono room impulse responses; each segment is reverberated with
            probability ``rir_probability`` (the target is then the early-reflection speech, see
            ``apply_rir``).
        segment_seconds: segment length (``None``: whole files); ``stride_seconds`` the hop between
            segments (default: the segment length, no overlap); ``pad`` keeps a shorter last segment.
        min_seconds: skip files and segments shorter than this.
        snr_range: SNR in dB, drawn uniformly per segment. ``level_range``: mixture level in dBFS.
        speed_factors: speed perturbation of the clean speech before mixing (``change_speed``): each segment
            plays at a factor drawn uniformly from this list, e.g. ``(0.8, 0.9, 1.0, 1.1)``; ``None`` or
            empty: off, and the stream is the same as without the argument.
        clean_probability: the share of segments left without noise: ``noisy`` is the target itself,
            ``snr_db`` is inf, ``noise_paths`` empty; the rest of the stream is the same as without it. The
            model then also learns to leave a clean voice as it is.
        seed, epoch: every draw is a function of ``(seed, epoch, file index, segment index)``; build the
            stream with a new ``epoch`` for new mixtures of the same speech (``IterableDataset.set_epoch``
            only reshuffles the shard order).

    Returns:
        An ``IterableDataset`` of ``{"id", "noisy", "clean", "snr_db", "level_db", "clean_path",
        "noise_paths", "rir_path", "speed"}`` (float32 lists; ``.with_format("torch")`` gives tensors). It has one
        shard per clean file, so ``split_dataset_by_node(stream, rank, world_size)`` gives each process its
        own files, and ``.shuffle(seed, buffer_size)`` shuffles files and examples.

    Example:
        >>> stream = dns_training_stream("dns/clean", "dns/noise", seed=0)   # doctest: +SKIP
        >>> next(iter(stream))["snr_db"]                                      # doctest: +SKIP
    """
    clean_files = _as_file_list(clean_dir, "clean speech")
    noise_files = _as_file_list(noise_dir, "noise")
    rir_files = _files(rir_dir, "room impulse response") if rir_dir is not None else []
    if not 0 <= rir_probability <= 1:
        raise ValueError(f"rir_probability must be in [0, 1], got {rir_probability}.")
    if snr_range[0] > snr_range[1] or level_range[0] > level_range[1]:
        raise ValueError(f"snr_range {snr_range} and level_range {level_range} must be (low, high).")
    try:
        speeds = tuple(float(f) for f in (speed_factors or ()))
    except (TypeError, ValueError):
        raise ValueError(f"speed_factors must be numbers such as 0.9 1.0 1.1, got {speed_factors!r}.") from None
    if not 0 <= clean_probability <= 1:
        raise ValueError(f"clean_probability must be in [0, 1], got {clean_probability}.")
    if any(not 0.5 <= f <= 2.0 for f in speeds):
        raise ValueError(f"speed_factors must lie in [0.5, 2] (1 = unchanged), got {list(speed_factors)}.")
    segment = None if segment_seconds is None else round(segment_seconds * sampling_rate)
    stride = None if stride_seconds is None else round(stride_seconds * sampling_rate)
    return datasets.IterableDataset.from_generator(
        _stream_mixtures,
        features=_features(),
        gen_kwargs={
            "shards": list(enumerate(clean_files)),
            "noise_files": tuple(noise_files),
            "rir_files": tuple(rir_files),
            "seed": int(seed), "epoch": int(epoch), "segment": segment, "stride": stride, "pad": pad,
            "snr_range": tuple(snr_range), "level_range": tuple(level_range),
            "rir_probability": float(rir_probability), "sampling_rate": int(sampling_rate),
            "min_samples": round(min_seconds * sampling_rate), "speed_factors": speeds,
            "clean_probability": float(clean_probability),
        },
    )


def _as_file_list(source, what: str) -> list[str]:
    if isinstance(source, (str, os.PathLike)):
        return _files(source, what)
    files = [str(f) for f in source]
    if not files:
        raise ValueError(f"The list of {what} files is empty.")
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise ValueError(f"{len(missing)} {what} file(s) do not exist: {_preview(missing)}.")
    return files


def _eval_examples(clean_files: list[tuple[int, str]], *, noise_files: tuple[str, ...], rir_files: tuple[str, ...],
                   seed: int, snrs: tuple[float, ...], level_range: tuple[float, float], rir_probability: float,
                   sampling_rate: int, segment: int | None) -> Iterator[dict]:
    noises = NoiseBank(noise_files, sampling_rate=sampling_rate)
    for index, path in clean_files:  # one shard per file: the index travels with it
        rng = np.random.default_rng([seed, index])
        clean, _ = read_audio(path, sampling_rate=sampling_rate, stop=segment)
        example = mix_example(rng, clean, noises, snr_db=snrs[index % len(snrs)], level_range=level_range,
                              rir_files=rir_files, rir_probability=rir_probability, sampling_rate=sampling_rate)
        yield {"id": f"fileid_{index}", "clean_path": path, **example}


def dns_eval_mixtures(
    clean_dir: str | os.PathLike | Sequence[str | os.PathLike],
    noise_dir: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    num_examples: int | None = None,
    snrs: Sequence[float] = EVAL_SNRS,
    level_range: tuple[float, float] = LEVEL_RANGE,
    rir_dir: str | os.PathLike | None = None,
    rir_probability: float = 0.0,
    max_seconds: float | None = None,
    sampling_rate: int = 16000,
    seed: int = 0,
) -> datasets.IterableDataset:
    """Deterministic evaluation mixtures: the same ``seed`` gives the same mixtures on any machine.

    ``num_examples`` clean files are picked by a seeded permutation (all of them by default), each mixed
    whole (or its first ``max_seconds``) with noise at the next SNR of ``snrs`` in turn, so every SNR is
    equally represented. Examples are ``fileid_0``, ``fileid_1``, ... with the fields of
    ``dns_training_stream``; ``write_mixtures`` stores them on disk.
    """
    clean_files = _as_file_list(clean_dir, "clean speech")
    noise_files = _as_file_list(noise_dir, "noise")
    rir_files = _files(rir_dir, "room impulse response") if rir_dir is not None else []
    if not snrs:
        raise ValueError("snrs must list at least one SNR.")
    order = np.random.default_rng([seed, 2**31 - 1]).permutation(len(clean_files))
    if num_examples is not None:
        if not 0 < num_examples <= len(clean_files):
            raise ValueError(f"num_examples must be in 1..{len(clean_files)} (the clean files), got {num_examples}.")
        order = order[:num_examples]
    chosen = [clean_files[i] for i in order]
    return datasets.IterableDataset.from_generator(
        _eval_examples,
        features=_features(),
        gen_kwargs={
            "clean_files": list(enumerate(chosen)), "noise_files": tuple(noise_files), "rir_files": tuple(rir_files),
            "seed": int(seed), "snrs": tuple(float(s) for s in snrs), "level_range": tuple(level_range),
            "rir_probability": float(rir_probability), "sampling_rate": int(sampling_rate),
            "segment": None if max_seconds is None else round(max_seconds * sampling_rate),
        },
    )


def write_mixtures(
    mixtures: Iterable[dict], output_dir: str | os.PathLike, *, layout: str = "dns", sampling_rate: int = 16000,
    names: Sequence[str] | None = None,
) -> Path:
    """Write mixtures (dicts with ``noisy``, ``clean``, ``id``, ``snr_db``, ...) to disk, atomically per file.

    Layouts:
        ``"dns"``: ``noisy/<name>_snr<S>_fileid_<N>.wav`` and ``clean/clean_fileid_<N>.wav`` (the DNS
        synthetic test set; ``load_dns_test_set`` reads it back).
        ``"voicebank"``: ``noisy_testset_wav/<name>.wav`` and ``clean_testset_wav/<name>.wav`` with
        ``names`` giving SPEAKER_UTTERANCE names (``load_voicebank(..., "test")`` reads it back).

    A ``mixtures.jsonl`` next to the folders records each file's SNR, level and sources. Existing files
    are never overwritten: writing into a folder that already holds these files raises.
    """
    output_dir = Path(output_dir)
    if layout == "dns":
        noisy_dir, clean_dir = output_dir / "noisy", output_dir / "clean"
    elif layout == "voicebank":
        noisy_dir, clean_dir = output_dir / "noisy_testset_wav", output_dir / "clean_testset_wav"
        if names is None:
            raise ValueError("layout='voicebank' needs names (SPEAKER_UTTERANCE, one per mixture).")
    else:
        raise ValueError(f"layout must be 'dns' or 'voicebank', got {layout!r}.")
    records = []
    for index, example in enumerate(mixtures):
        noisy = np.asarray(example["noisy"], dtype=np.float32)
        clean = np.asarray(example["clean"], dtype=np.float32)
        if layout == "dns":
            match = FILEID_PATTERN.search(str(example.get("id", "")))
            fileid = match.group(1) if match else str(index)
            stem = Path(example.get("clean_path") or "speech").stem
            noisy_name = f"{stem}_snr{example['snr_db']:g}_fileid_{fileid}.wav"
            clean_name = f"clean_fileid_{fileid}.wav"
        else:
            if index >= len(names):
                raise ValueError(f"More mixtures than names ({len(names)}).")
            noisy_name = clean_name = f"{names[index]}.wav"
        write_audio(noisy_dir / noisy_name, noisy, sampling_rate)
        write_audio(clean_dir / clean_name, clean, sampling_rate)
        records.append({
            "noisy": f"{noisy_dir.name}/{noisy_name}", "clean": f"{clean_dir.name}/{clean_name}",
            "snr_db": float(example.get("snr_db", float("nan"))), "level_db": float(example.get("level_db", 0.0)),
            "clean_source": example.get("clean_path", ""), "noise_sources": list(example.get("noise_paths", [])),
            "rir": example.get("rir_path", ""),
        })
    manifest = output_dir / "mixtures.jsonl"
    if manifest.exists():
        raise FileExistsError(f"{manifest} already exists; refusing to overwrite it.")
    tmp = manifest.with_name(f".{manifest.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, manifest)
    return output_dir


def _fileid(path: Path) -> str:
    match = FILEID_PATTERN.search(path.stem)
    if match is None:
        raise ValueError(f"{path.name} does not end in fileid_<N> (expected e.g. clean_fileid_12.wav).")
    return match.group(1)


def dns_test_set_rows(root: str | os.PathLike, *, sampling_rate: int = 16000,
                      check_files: bool = True) -> list[dict]:
    """Pairs of a DNS synthetic test-set folder (``root/noisy``, ``root/clean``) matched by ``fileid_N``."""
    from .voicebank import check_pair, pair_files

    root = Path(root)
    for name in ("noisy", "clean"):
        if not (root / name).is_dir():
            raise ValueError(f"Expected a {name}/ folder in the DNS test-set folder {root}.")
    pairs = pair_files(root / "clean", root / "noisy", key=_fileid)
    rows = []
    for fileid, clean_path, noisy_path in sorted(pairs, key=lambda p: int(p[0])):
        rows.append({
            "id": f"fileid_{fileid}", "clean": str(clean_path), "noisy": str(noisy_path),
            "num_samples": check_pair(clean_path, noisy_path, sampling_rate=sampling_rate) if check_files else -1,
        })
    return rows


def load_dns_test_set(root: str | os.PathLike, *, sampling_rate: int = 16000, decode: DecodeMode = "soundfile",
                      check_files: bool = True) -> datasets.Dataset:
    """A DNS synthetic test set (e.g. ``test_set/synthetic/no_reverb``) as a ``datasets.Dataset`` with
    ``id`` (``fileid_N``), ``noisy``, ``clean`` and ``num_samples``; decoding as in ``load_voicebank``.

    Raises:
        ValueError: missing folders, a name without ``fileid_N``, a fileid on one side only, or a bad pair.
    """
    rows = dns_test_set_rows(root, sampling_rate=sampling_rate, check_files=check_files)
    dataset = datasets.Dataset.from_dict(
        {name: [row[name] for row in rows] for name in ("id", "noisy", "clean", "num_samples")},
        features=datasets.Features({
            "id": datasets.Value("string"), "noisy": datasets.Audio(decode=False),
            "clean": datasets.Audio(decode=False), "num_samples": datasets.Value("int64"),
        }),
        split="test",
    )
    return _finish(dataset, sampling_rate=sampling_rate, decode=decode)


__all__ = [
    "AUDIO_EXTENSIONS", "EVAL_SNRS", "LEVEL_RANGE", "SNR_RANGE", "NoiseBank", "apply_rir", "dns_eval_mixtures",
    "dns_test_set_rows", "dns_training_stream", "load_dns_test_set", "mix_at_snr", "mix_example", "rms_db",
    "write_mixtures",
]
