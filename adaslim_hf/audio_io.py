"""The one place that decodes, resamples and writes audio for enhancement (soundfile + torchaudio, no FFmpeg).

- ``open_audio(path | bytes | file object)`` -> an ``AudioSource``: rate, channels, frames and ``read(start,
  stop)`` giving float32 ``[channels, samples]``. Seekable lossless files (WAV, FLAC, AIFF, ...) are read
  lazily block by block, so an hour-long file never sits in memory; compressed streams are decoded once.
- ``load_audio`` decodes a whole file: ``(float32 [channels, samples], rate)``.
- ``read_audio`` is the data layer's reader (training corpora): one mono float32 ``[samples]``, optionally
  resampled, downmixed and cropped (the crop counted at the output rate); ``audio_info`` reads a header.
- ``resample`` wraps ``torchaudio.functional.resample``; ``resampler_margin`` says how many samples beyond a
  block it reads, so resampling block by block with that margin equals resampling the whole signal.
- ``AudioWriter`` / ``write_audio`` write atomically (a hidden temporary file next to the target, then
  ``os.replace``), refuse to write over a protected path (an input) and, unless told, over an existing file;
  ``write_audio`` (the one whole-signal writer, 16-bit PCM by default) also refuses signals that are empty,
  not finite or would clip, and creates the folder.

Every failure a user can cause (missing file, a directory, not audio, truncated, empty, unwritable folder)
raises ``AudioError``, a ``ValueError`` naming the file and what was expected.

Imports soundfile and torchaudio only when audio is decoded or resampled: this file travels to the Hub next
to the pipeline, and a user who passes arrays needs neither.
"""

import io
import math
import os
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .waveform import pcm_to_float32

try:  # optional at import time: only decoding and writing files needs it
    import soundfile
except ImportError:  # pragma: no cover - exercised only where soundfile is missing
    soundfile = None

SUPPORTED = "WAV, FLAC, OGG (Vorbis/Opus), MP3, AIFF, CAF, W64/RF64 (through soundfile/libsndfile)"
# Formats libsndfile seeks sample-exactly and reports exact lengths for: read lazily. Others are decoded once.
_LAZY_FORMATS = {"WAV", "WAVEX", "FLAC", "AIFF", "CAF", "W64", "RF64", "AU", "NIST", "IRCAM"}


class AudioError(ValueError):
    """Audio that cannot be read or written as asked; the message names the file and the expectation."""


class AudioExistsError(AudioError, FileExistsError):
    """The output file exists and overwriting was not asked for: an ``AudioError`` and a ``FileExistsError``."""


def _require_soundfile():
    if soundfile is None:
        raise ImportError("reading and writing audio files needs the `soundfile` package: pip install soundfile")
    return soundfile


# ----------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------


@dataclass
class AudioSource:
    """Audio that can be read in pieces: ``read(start, stop)`` -> float32 ``[channels, stop - start]``.

    ``name`` is what error messages call it (a path, "<bytes>", "input 3"). Built by ``open_audio`` (files,
    bytes) or ``array_source`` (arrays already in memory).
    """

    sampling_rate: int
    channels: int
    frames: int
    name: str
    _array: np.ndarray | None = field(default=None, repr=False)  # [channels, frames] float32, when in memory
    _path: str | None = field(default=None, repr=False)  # lazily read file

    @property
    def seconds(self) -> float:
        return self.frames / self.sampling_rate

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, int(start)), min(self.frames, int(stop))
        if stop <= start:
            return np.zeros((self.channels, 0), dtype=np.float32)
        if self._array is not None:
            return self._array[:, start:stop]
        sf = _require_soundfile()
        try:
            with sf.SoundFile(self._path) as handle:
                handle.seek(start)
                block = handle.read(stop - start, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as error:
            raise AudioError(f"{self.name}: decoding failed at sample {start} ({error}); the file may be truncated or corrupt.") from None
        if block.shape[0] != stop - start:
            raise AudioError(
                f"{self.name}: expected {stop - start} samples from sample {start}, the file gave {block.shape[0]}; "
                "it is truncated or was modified while being read."
            )
        return np.ascontiguousarray(block.T)


def array_source(samples: np.ndarray, sampling_rate: int, name: str = "audio") -> AudioSource:
    """An in-memory ``[channels, samples]`` (or ``[samples]``) float32 array as an ``AudioSource``."""
    samples = np.asarray(samples)
    if samples.ndim == 1:
        samples = samples[None]
    return AudioSource(int(sampling_rate), samples.shape[0], samples.shape[1], name, _array=samples)


def _wav_data_shortfall(header: bytes, total_size: int) -> tuple[int, int] | None:
    """For a RIFF/WAVE byte string: (announced data bytes, present data bytes) when the file is shorter than
    its 'data' chunk says, else None. Streaming writers' placeholder sizes (0, 0xFFFFFFFF) are not judged."""
    if len(header) < 12 or header[:4] not in (b"RIFF", b"RIFX") or header[8:12] != b"WAVE":
        return None
    endian = "<" if header[:4] == b"RIFF" else ">"
    offset = 12
    while offset + 8 <= len(header):
        chunk_id = header[offset : offset + 4]
        (size,) = struct.unpack(endian + "I", header[offset + 4 : offset + 8])
        if chunk_id == b"data":
            if size in (0, 0xFFFFFFFF):
                return None
            present = total_size - (offset + 8)
            return (size, present) if present < size else None
        offset += 8 + size + (size & 1)
    return None


def _check_wav_complete(name: str, header: bytes, total_size: int, frame_bytes: int) -> None:
    shortfall = _wav_data_shortfall(header, total_size)
    if shortfall is not None:
        announced, present = shortfall
        raise AudioError(
            f"{name}: truncated WAV: its header announces {announced // frame_bytes} frames but the file holds "
            f"{max(present, 0) // frame_bytes}. Re-export it, or repair the header (e.g. `sox in.wav out.wav`) to keep "
            "what is there."
        )


def _frame_bytes(info) -> int:
    bits = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64,
            "ULAW": 8, "ALAW": 8}.get(info.subtype, 16)
    return max(1, bits // 8 * info.channels)


def open_audio(source, name: str | None = None) -> AudioSource:
    """A file path, raw encoded bytes or a binary file object -> an ``AudioSource``.

    Raises ``AudioError`` for a missing path, a directory, undecodable data, a truncated WAV/FLAC/MP3 and
    audio without samples.
    """
    sf = _require_soundfile()
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _open_bytes(bytes(source), name or "<bytes>")
    if hasattr(source, "read"):
        return _open_bytes(source.read(), name or getattr(source, "name", "<file object>"))
    if not isinstance(source, (str, os.PathLike)):
        raise AudioError(f"expected a path, bytes or a binary file object, got {type(source).__name__}.")
    path = os.fspath(source)
    name = name or path
    if not os.path.exists(path):
        raise AudioError(f"{name}: no such file.")
    if os.path.isdir(path):
        raise AudioError(f"{name}: is a directory; expected an audio file ({SUPPORTED}).")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{name}: permission denied (cannot read the file).")
    try:
        info = sf.info(path)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioError(f"{name}: not a readable audio file ({_reason(error)}). Supported: {SUPPORTED}.") from None
    if info.format in ("WAV", "WAVEX"):
        with open(path, "rb") as handle:
            header = handle.read(1 << 16)
        _check_wav_complete(name, header, os.path.getsize(path), _frame_bytes(info))
    if info.format in _LAZY_FORMATS:
        if info.frames <= 0:
            raise AudioError(f"{name}: contains no audio samples.")
        return AudioSource(int(info.samplerate), int(info.channels), int(info.frames), name, _path=path)
    with open(path, "rb") as handle:
        return _decode(handle.read(), name, expected_frames=int(info.frames), file_format=info.format)


def _open_bytes(data: bytes, name: str) -> AudioSource:
    if len(data) == 0:
        raise AudioError(f"{name}: empty (0 bytes); expected encoded audio ({SUPPORTED}).")
    sf = _require_soundfile()
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioError(f"{name}: not decodable audio ({_reason(error)}). Supported: {SUPPORTED}.") from None
    if info.format in ("WAV", "WAVEX"):
        _check_wav_complete(name, data[: 1 << 16], len(data), _frame_bytes(info))
    return _decode(data, name, expected_frames=int(info.frames), file_format=info.format)


def _decode(data: bytes, name: str, expected_frames: int, file_format: str) -> AudioSource:
    sf = _require_soundfile()
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioError(f"{name}: decoding failed ({_reason(error)}); the file may be truncated or corrupt.") from None
    if samples.shape[0] == 0:
        raise AudioError(f"{name}: contains no audio samples.")
    if file_format not in ("OGG",) and 0 < samples.shape[0] < 0.99 * expected_frames:
        raise AudioError(
            f"{name}: truncated {file_format}: its header announces {expected_frames} frames, only {samples.shape[0]} "
            "could be decoded."
        )
    return array_source(np.ascontiguousarray(samples.T), rate, name)


def _reason(error: Exception) -> str:
    """libsndfile's own words without its "Error opening '<name>': " prefix or final period."""
    text = str(error)
    text = text.split(": ", 1)[1] if text.startswith("Error opening") and ": " in text else text
    return text.strip().rstrip(".")


def load_audio(source, name: str | None = None) -> tuple[np.ndarray, int]:
    """Decode a whole file (path, bytes or file object) -> (float32 ``[channels, samples]``, sampling rate)."""
    audio = open_audio(source, name)
    return audio.read(0, audio.frames), audio.sampling_rate


def audio_info(source, *, name: str | None = None):
    """soundfile's header info (``frames``, ``samplerate``, ``channels``) of a path or bytes; an ``AudioError``
    naming the file if it cannot be read."""
    sf = _require_soundfile()
    label = _label(source, name)
    try:
        return sf.info(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    except Exception as error:  # soundfile raises LibsndfileError, RuntimeError or TypeError
        raise AudioError(f"Could not read audio file {label}: {error}") from error


def _label(source, name: str | None) -> str:
    if name is not None:
        return name
    return str(source) if isinstance(source, (str, os.PathLike)) else "<in-memory audio>"


def read_audio(source, *, sampling_rate: int | None = None, downmix: bool = False, start: int = 0,
               stop: int | None = None, name: str | None = None) -> tuple[np.ndarray, int]:
    """Decode a file (path or bytes) to a mono float32 array ``[T]``: the data layer's reader.

    Args:
        source: a path, or the bytes of an encoded file.
        sampling_rate: resample to this rate; ``None`` keeps the file's own rate.
        downmix: average the channels of a multi-channel file. By default a multi-channel file raises,
            because a stereo file in a paired corpus is usually a mistake worth seeing.
        start, stop: read only samples ``[start, stop)``, counted at the *output* rate (so a crop of a
            48 kHz file is given in 16 kHz samples when ``sampling_rate=16000``). ``stop`` past the end
            is clipped to the end.
        name: how errors refer to the source (defaults to the path).

    Returns:
        ``(audio [T] float32, sampling_rate)``.

    Raises:
        AudioError (a ValueError): unreadable file, zero samples (or an empty crop), multi-channel without
            ``downmix``, non-finite samples.
    """
    sf = _require_soundfile()
    label = _label(source, name)
    info = audio_info(source, name=label)
    native = int(info.samplerate)
    out_rate = int(sampling_rate) if sampling_rate else native
    if info.channels > 1 and not downmix:
        raise AudioError(
            f"{label} has {info.channels} channels; expected mono. Pass downmix=True to average the channels."
        )
    if info.frames == 0:
        raise AudioError(f"{label} has zero samples.")
    if start < 0 or (stop is not None and stop <= start):
        raise AudioError(f"Invalid crop [{start}, {stop}) for {label}: expected 0 <= start < stop.")
    # The crop in native samples, starting a few samples early so the resampling filter has settled by
    # `start`, and on a sample that lies on the output grid, so the crop's samples are exactly those of
    # the fully resampled file (no fractional delay).
    margin = 0 if native == out_rate else 64
    step, out_step = rate_ratio(native, out_rate)
    block = max(0, (start * native // out_rate - margin) // step)
    native_start, out_origin = block * step, block * out_step
    native_stop = None if stop is None else min(info.frames, -(-stop * native // out_rate) + margin)
    if native_start >= info.frames:
        raise AudioError(f"Crop start {start} is past the end of {label} ({info.frames} samples at {native} Hz).")
    try:
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        audio, _ = sf.read(handle, start=native_start, stop=native_stop, dtype="float32", always_2d=True)
    except Exception as error:
        raise AudioError(f"Could not decode audio file {label}: {error}") from error
    audio = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if audio.size == 0:
        raise AudioError(f"{label} decoded to zero samples.")
    if not np.isfinite(audio).all():
        raise AudioError(f"{label} contains non-finite samples (NaN or inf).")
    audio = resample(audio, native, out_rate)
    offset = start - out_origin
    audio = audio[offset:] if stop is None else audio[offset:offset + stop - start]
    if audio.size == 0:
        raise AudioError(f"The crop [{start}, {stop}) of {label} is empty.")
    return np.ascontiguousarray(audio, dtype=np.float32), out_rate


# ----------------------------------------------------------------------------------------------------
# Resampling
# ----------------------------------------------------------------------------------------------------


def resample(samples, orig_rate: int, new_rate: int):
    """Band-limited resampling along the last axis (``torchaudio.functional.resample``, its defaults).

    Accepts a numpy array or a torch tensor and returns the same kind, float32. Output length is
    ``ceil(samples * new_rate / orig_rate)``.
    """
    if int(orig_rate) == int(new_rate):
        return np.asarray(samples, dtype=np.float32) if isinstance(samples, np.ndarray) else samples
    try:
        import torchaudio.functional as audio_functional
    except (ImportError, OSError, RuntimeError) as error:  # torchaudio missing or broken: say so, no deep traceback
        raise ImportError(f"resampling needs torchaudio ({error}); pip install torchaudio") from None
    is_numpy = isinstance(samples, np.ndarray)
    tensor = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)) if is_numpy else samples.float()
    out = audio_functional.resample(tensor, int(orig_rate), int(new_rate))
    return out.numpy() if is_numpy else out


def rate_ratio(orig_rate: int, new_rate: int) -> tuple[int, int]:
    """(p, q): ``p`` input samples span exactly ``q`` output samples (the rates divided by their gcd)."""
    divisor = math.gcd(int(orig_rate), int(new_rate))
    return int(orig_rate) // divisor, int(new_rate) // divisor


def resampler_margin(orig_rate: int, new_rate: int) -> int:
    """Input samples beyond a block that ``resample`` reads, rounded up to a whole period ``p``.

    Resampling ``x[a - m : b + m]`` (``a`` a multiple of ``p``, ``m`` this margin) and keeping the outputs of
    ``x[a:b]`` gives exactly what resampling all of ``x`` gives there (torchaudio's kernel spans
    ``[-width, width + p)`` input samples around each period).
    """
    if int(orig_rate) == int(new_rate):
        return 0
    p, q = rate_ratio(orig_rate, new_rate)
    width = math.ceil(6 * p / (min(p, q) * 0.99))  # lowpass_filter_width=6, rolloff=0.99 (torchaudio defaults)
    return p * math.ceil((width + 2 * p) / p)


def resampled_length(frames: int, orig_rate: int, new_rate: int) -> int:
    """Length of ``resample`` of ``frames`` samples (exact integer arithmetic)."""
    p, q = rate_ratio(orig_rate, new_rate)
    return -(-int(frames) * q // p)


# ----------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


class AudioWriter:
    """Atomic, streaming audio file writer.

    ``with AudioWriter(path, rate, channels) as writer: writer.write(block)`` writes ``[channels, n]`` float
    blocks into a hidden temporary file in the target's folder and moves it onto ``path`` (``os.replace``)
    only when the block exits cleanly; on an exception the temporary file is removed and ``path`` is left as
    it was. ``protect`` lists paths (the inputs) that must never be written; an existing ``path`` is refused
    unless ``overwrite``. The format follows the extension (.wav, .flac, .ogg, ...).
    """

    def __init__(self, path, sampling_rate: int, channels: int, subtype: str | None = "FLOAT",
                 protect=(), overwrite: bool = False):
        sf = _require_soundfile()
        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        for protected in protect:
            if os.path.exists(self.path) and _same_file(self.path, os.fspath(protected)):
                raise AudioError(f"{self.path}: refusing to write over an input file.")
            if os.path.realpath(self.path) == os.path.realpath(os.fspath(protected)):
                raise AudioError(f"{self.path}: refusing to write over an input file.")
        if os.path.isdir(self.path):
            raise AudioError(f"{self.path}: is a directory; expected an output file path.")
        if os.path.exists(self.path) and not overwrite:
            raise AudioExistsError(f"{self.path}: already exists; refusing to overwrite it.")
        extension = os.path.splitext(self.path)[1].lstrip(".").upper()
        file_format = {"OGA": "OGG", "OPUS": "OGG", "AIF": "AIFF"}.get(extension, extension)
        if file_format not in sf.available_formats():
            raise AudioError(f"{self.path}: unknown audio format '.{extension.lower()}'; use .wav or .flac.")
        if subtype is not None and not sf.check_format(file_format, subtype):
            subtype = None  # the format's default (e.g. FLAC stores PCM_16, OGG Vorbis)
        if not os.path.isdir(folder):
            raise AudioError(f"{self.path}: the output folder {folder} does not exist.")
        self._temporary = os.path.join(folder, f".{os.path.basename(self.path)}.{uuid.uuid4().hex[:8]}.tmp")
        try:  # create it ourselves first: the OS's reason (permission, read-only, full) is clearer than libsndfile's
            os.close(os.open(self._temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except OSError as error:
            raise AudioError(f"{self.path}: cannot write into {folder} ({error.strerror}).") from None
        try:
            self._handle = sf.SoundFile(self._temporary, "w", samplerate=int(sampling_rate), channels=int(channels),
                                        subtype=subtype, format=file_format)
        except (sf.LibsndfileError, RuntimeError, OSError) as error:
            self._remove_temporary()
            raise AudioError(f"{self.path}: cannot write into {folder} ({_reason(error)}).") from None
        self.channels = int(channels)

    def write(self, block) -> None:
        """Append ``[channels, n]`` samples (numpy or torch, float)."""
        block = pcm_to_float32(block, "output block")
        if block.ndim == 1:
            block = block[None]
        if block.shape[0] != self.channels:
            raise ValueError(f"expected {self.channels} channel(s), got a block of shape {tuple(block.shape)}.")
        try:
            self._handle.write(np.ascontiguousarray(block.T))
        except (RuntimeError, OSError) as error:
            raise AudioError(f"{self.path}: writing failed ({error}).") from None

    def commit(self) -> None:
        self._handle.close()
        os.replace(self._temporary, self.path)

    def abort(self) -> None:
        try:
            self._handle.close()
        finally:
            self._remove_temporary()

    def _remove_temporary(self):
        try:
            os.remove(self._temporary)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False


def write_audio(path, samples, sampling_rate: int, subtype: str | None = "PCM_16", protect=(),
                overwrite: bool = False) -> Path:
    """Write ``[channels, samples]`` (or ``[samples]``; float, or integer PCM) atomically through ``AudioWriter``,
    16-bit PCM by default, creating the folder; -> the path. The package's one whole-signal writer (the corpus
    builders' and ``data.write_mixtures``' too).

    Raises ``AudioError`` (a ``ValueError``) for what ``AudioWriter`` refuses (a protected path; an existing one
    unless ``overwrite``: ``AudioExistsError``, also a ``FileExistsError``), for an empty signal, for non-finite
    samples, and for samples outside [-1, 1] with an integer (``PCM_*``) subtype, which would clip.
    """
    path = Path(path)
    samples = pcm_to_float32(samples, "audio")
    if samples.ndim == 1:
        samples = samples[None]
    if samples.size == 0:
        raise AudioError(f"Refusing to write an empty signal to {path}.")
    if not np.isfinite(samples).all():
        raise AudioError(f"Refusing to write non-finite samples to {path}.")
    peak = float(np.abs(samples).max())
    if subtype is not None and subtype.startswith("PCM") and peak > 1.0:
        raise AudioError(f"Samples for {path} peak at {peak:.3f}; expected |x| <= 1 for {subtype} (it would clip).")
    path.parent.mkdir(parents=True, exist_ok=True)
    with AudioWriter(path, sampling_rate, samples.shape[0], subtype, protect, overwrite) as writer:
        writer.write(samples)
    return path



def spectrogram_db(source, channel: int, n_fft: int, max_columns: int) -> tuple[np.ndarray, float]:
    """Magnitude spectrogram (dB) of one channel of an ``AudioSource`` with at most ``max_columns`` frames, read block by block.
    -> ([freq, frames], seconds per frame). The CLI's --plot and the demo draw it."""
    frames = source.frames
    hop = max(n_fft // 4, math.ceil(max(frames - n_fft, 1) / max_columns))
    starts = np.arange(0, max(frames - n_fft, 0) + 1, hop)
    window = np.hanning(n_fft).astype(np.float32)
    columns = []
    per_block = max(1, (1 << 20) // hop)
    for first in range(0, len(starts), per_block):
        chosen = starts[first : first + per_block]
        block = source.read(int(chosen[0]), int(chosen[-1]) + n_fft)[channel]
        block = np.pad(block, (0, int(chosen[-1]) + n_fft - int(chosen[0]) - block.shape[0]))
        offsets = chosen - chosen[0]
        windows = block[offsets[:, None] + np.arange(n_fft)[None, :]] * window
        columns.append(np.abs(np.fft.rfft(windows, axis=1)).T)
    magnitude = np.concatenate(columns, axis=1)
    return 20 * np.log10(magnitude + 1e-8), hop / source.sampling_rate

__all__ = [
    "SUPPORTED",
    "AudioError",
    "AudioExistsError",
    "AudioSource",
    "AudioWriter",
    "array_source",
    "audio_info",
    "load_audio",
    "open_audio",
    "rate_ratio",
    "read_audio",
    "resample",
    "resampled_length",
    "resampler_margin",
    "spectrogram_db",
    "write_audio",
]
