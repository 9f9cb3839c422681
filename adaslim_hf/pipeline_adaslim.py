"""The ``speech-enhancement`` pipeline (alias ``audio-to-audio``): noisy audio in, enhanced audio out.

Inference only. ``preprocess`` turns any accepted input into an ``AudioSource`` (audio_io.py), plans chunks
and yields them one channel at a time; ``_forward`` only runs the model; ``postprocess`` puts the chunks'
outputs back together at the input's rate. Both kinds of model give the result of one model call on the
whole input (within float error), in memory bounded by one chunk (plus the output when returned in memory;
``enhance_file`` streams a file to a file).

Causal models (the default): the chunks carry the model's state. Data flow for one input of ``T`` samples at
rate ``f``:

    source [C, T] @ f --(chunk by chunk)--> resample to the model rate F --> AdaSlimStreamer of channel c
      (input_std = std_c; carries every stage's context and recurrent state to the next chunk)
      --> resample back to f, block by block --> (1 - dry) * enhanced + dry * input --> audio [C, T] @ f

- the DEMUCS input normalisation uses each channel's standard deviation over the WHOLE input (computed in a
  first pass), given to the channel's streamer as ``input_std``, so every chunk sees the whole file's scaling;
- each chunk runs the model only on its own samples: the streamer computes every row that is final (the
  offline model's value whatever follows) and keeps the rest of its context, including the GRUs' states, for
  the next chunk (streaming.py; large chunks go through the offline model's own inference paths); nothing is
  computed twice, so the pipeline costs what the model costs (``scripts/benchmark_pipeline.py``);
- block-wise resampling, to the model rate and back, reads ``audio_io.resampler_margin`` extra samples, which
  makes it exact.

Non-causal models: each chunk runs with ``context_s`` seconds of left context, computed and thrown away, and
the same long context on the right (the backward recurrences), plus the model's look-ahead; chunks start on
multiples of the router hop at the model rate (every strided conv and router frame on the whole-file grid)
and on whole resampling periods, are normalised by the whole input's std, and are cross-faded at the seams.

Threads: ``threads="auto"`` (the default) runs each chunk with as many torch threads as there are cores no
other process is running on (at most torch's setting, which is restored after each chunk): on a machine where
another process holds a core, the default one thread per core made a call 10x slower and more.

This file imports only numpy, torch, transformers and its siblings (soundfile and torchaudio lazily, through
audio_io.py): it travels to the Hub with the model (``custom_pipelines`` in the config).
"""

import contextlib
import copy
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import ChunkPipeline, pad_collate_fn

from .audio_io import (
    AudioSource,
    AudioWriter,
    array_source,
    open_audio,
    rate_ratio,
    resample,
    resampled_length,
    resampler_margin,
)
from .configuration_adaslim import parse_utilization
from .feature_extraction_adaslim import AdaSlimFeatureExtractor
from .macs import call_macs
from .products import precision_dtype
from .resample import SINC_ZEROS
from .streaming import AdaSlimStreamer
from .waveform import check_dry, check_finite, mix_dry, pcm_to_float32

TASK = "speech-enhancement"
TASK_ALIAS = "audio-to-audio"
SINC_LOOKAHEAD = 4 * SINC_ZEROS  # generous bound on the look-ahead of the model's sinc up/down-sampling (input samples)


# ----------------------------------------------------------------------------------------------------
# Chunk geometry
# ----------------------------------------------------------------------------------------------------


def _align_up(value: float, unit: int) -> int:
    return math.ceil(value / unit) * unit


def model_lookahead(config) -> int:
    """Input samples (at the model rate) after sample t that the enhanced sample t can depend on, bounded
    from above: the receptive field of a bottleneck frame (strided convs) plus the sinc resampling taps."""
    receptive = config.kernel_size + sum((config.kernel_size - 1) * config.stride**layer for layer in range(1, config.depth))
    return math.ceil(receptive / config.resample) + SINC_LOOKAHEAD


@dataclass
class ChunkPlan:
    """Where each chunk reads, and which part of its output it keeps.

    Model-domain positions (samples at the model rate ``model_rate``) are multiples of ``unit`` =
    lcm(router hop, resampling period), so chunks sit on the whole-file frame grid. ``boundaries`` are the
    seams G_0 = 0 < G_1 < ... < G_K = model_frames; chunk k runs the model on [G_k - left, G_{k+1} + right)
    (clipped to the signal) and keeps [G_k, G_{k+1}) widened by ``crossfade`` input samples on each side,
    where it cross-fades linearly with its neighbour.
    """

    input_rate: int
    model_rate: int
    input_frames: int
    model_frames: int
    unit: int
    left: int
    right: int
    crossfade: int  # half-width of each seam's cross-fade, input samples
    boundaries: list[int]

    @classmethod
    def build(cls, config, input_rate: int, input_frames: int, chunk_length_s: float | None, context_s: float):
        model_rate = int(config.sampling_rate)
        p, q = rate_ratio(input_rate, model_rate)
        unit = config.router_hop * q // math.gcd(config.router_hop, q)
        model_frames = resampled_length(input_frames, input_rate, model_rate)
        crossfade_model = config.router_hop
        crossfade = max(1, crossfade_model * p // q)
        back_margin = resampler_margin(model_rate, input_rate)
        margin = crossfade_model + back_margin + 2 * unit
        left = _align_up(context_s * model_rate + margin, unit)
        right = _align_up(model_lookahead(config) + margin, unit)
        if not config.causal:  # backward recurrences need the same long context on the right
            right = max(right, left)
        boundaries = [0, model_frames]
        if chunk_length_s is not None:
            step = _align_up(chunk_length_s * model_rate, unit)
            boundaries = list(range(0, model_frames, step)) + [model_frames]
            if len(boundaries) > 2 and model_frames - boundaries[-2] < 2 * crossfade_model + unit:
                del boundaries[-2]  # a sliver of a last chunk: fold it into the previous one
        return cls(input_rate, model_rate, input_frames, model_frames, unit, left, right, crossfade, boundaries)

    @property
    def num_chunks(self) -> int:
        return len(self.boundaries) - 1

    def model_span(self, k: int) -> tuple[int, int]:
        """[A_k, B_k): model-domain samples chunk k runs the model on."""
        return max(self.boundaries[k] - self.left, 0), min(self.boundaries[k + 1] + self.right, self.model_frames)

    def to_input(self, model_position: int) -> int:
        """Input-domain position of a model-domain position that is a multiple of ``unit`` (or the end)."""
        if model_position >= self.model_frames:
            return self.input_frames
        p, q = rate_ratio(self.input_rate, self.model_rate)
        return model_position * p // q

    def kept_span(self, k: int) -> tuple[int, int]:
        """[lo, hi): input-domain samples chunk k contributes to (its span plus the cross-fades)."""
        lo = 0 if k == 0 else self.to_input(self.boundaries[k]) - self.crossfade
        hi = self.input_frames if k == self.num_chunks - 1 else self.to_input(self.boundaries[k + 1]) + self.crossfade
        return lo, hi

    def final_until(self, k: int) -> int:
        """Input samples that are final once chunks 0..k are in (the next seam's cross-fade still waits)."""
        return self.input_frames if k == self.num_chunks - 1 else self.to_input(self.boundaries[k + 1]) - self.crossfade


def read_model_rate(source: AudioSource, model_rate: int, start: int, stop: int) -> np.ndarray:
    """Samples [start, stop) of the whole source resampled to ``model_rate``, computed from a block of the
    source only (``start`` on a whole resampling period): float32 [channels, stop - start]."""
    if source.sampling_rate == model_rate:
        return source.read(start, stop)
    p, q = rate_ratio(source.sampling_rate, model_rate)
    margin = resampler_margin(source.sampling_rate, model_rate)
    first = start // q * p - margin  # start is a multiple of q
    first_kept = max(first, 0)
    last = -(-stop * p // q) + margin
    block = source.read(first_kept, last)
    out = resample(block, source.sampling_rate, model_rate)
    offset = start - first_kept * q // p
    return out[:, offset : offset + (stop - start)]


def channel_statistics(source: AudioSource, plan: ChunkPlan, block_seconds: float = 20.0):
    """Per-channel standard deviation (unbiased, as the model computes it) of the whole input at the model
    rate, read block by block; also the check that every sample is finite. -> float64 [channels]."""
    count = 0
    mean = np.zeros(source.channels)
    m2 = np.zeros(source.channels)
    block = _align_up(block_seconds * plan.model_rate, plan.unit)
    for start in range(0, plan.model_frames, block):
        stop = min(start + block, plan.model_frames)
        samples = read_model_rate(source, plan.model_rate, start, stop).astype(np.float64)
        if not np.isfinite(samples).all():
            bad = np.argwhere(~np.isfinite(samples))[0]
            seconds = plan.to_input(start) / source.sampling_rate + bad[1] / plan.model_rate
            raise ValueError(
                f"{source.name}: contains NaN or Inf samples (first in channel {bad[0]} near {seconds:.3f} s); "
                "a waveform must be finite."
            )
        n = samples.shape[1]
        block_mean = samples.mean(axis=1)
        block_m2 = ((samples - block_mean[:, None]) ** 2).sum(axis=1)
        delta = block_mean - mean
        total = count + n
        mean = mean + delta * n / total
        m2 = m2 + block_m2 + delta**2 * count * n / total
        count = total
    return np.sqrt(m2 / max(count - 1, 1))


# ----------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------


def _source_from_array(samples, sampling_rate: int, name: str) -> tuple[AudioSource, bool]:
    """(AudioSource, whether the caller's array was 1-D). Arrays are [samples] or [channels, samples]."""
    array = pcm_to_float32(samples, name)
    if array.ndim == 0 or array.ndim > 2:
        raise ValueError(f"{name} must have shape (samples,) or (channels, samples), got shape {tuple(array.shape)}.")
    mono = array.ndim == 1
    array = array[None] if mono else array
    channels, frames = array.shape
    if frames == 0 or channels == 0:
        raise ValueError(f"{name} is empty (shape {tuple(array.shape)}): a waveform needs at least one sample.")
    if channels > frames:
        raise ValueError(
            f"{name} has shape {tuple(array.shape)}: read as (channels, samples) that is {channels} channels of "
            f"{frames} samples. Arrays must be channels-first; transpose a (samples, channels) array (e.g. from "
            "soundfile.read) with `.T`."
        )
    check_finite(array, name)
    if not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
        raise ValueError(f"{name}: sampling_rate must be a positive integer (Hz), got {sampling_rate!r}.")
    return array_source(np.ascontiguousarray(array), int(sampling_rate), name), mono


def as_source(inputs, model_rate: int, sampling_rate: int | None = None, name: str = "input") -> tuple[AudioSource, bool]:
    """Any accepted input -> (AudioSource, whether the output should be 1-D).

    Accepted: a file path; encoded bytes or a binary file object; a numpy array or torch tensor of shape (samples,) or (channels,
    samples), any float dtype or int8/uint8/int16/int32 PCM, at ``sampling_rate`` (default: the model's
    rate); a dict with "array" or "raw" and "sampling_rate"; a dict with "bytes" and/or "path" (datasets
    ``Audio(decode=False)``); a datasets/torchcodec audio decoder (all channels are decoded).
    """
    if isinstance(inputs, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(inputs, "read"):
        source = open_audio(inputs)
        return source, source.channels == 1
    if isinstance(inputs, dict):
        key = "array" if "array" in inputs else "raw" if "raw" in inputs else None
        if key is not None:
            if inputs.get("sampling_rate") is None:
                raise ValueError(
                    f"{name}: a dict with {key!r} must also give its 'sampling_rate', got keys {sorted(inputs)}."
                )
            return _source_from_array(inputs[key], inputs["sampling_rate"], name)
        if inputs.get("bytes") is not None:
            source = open_audio(inputs["bytes"], name=inputs.get("path") or name)
            return source, source.channels == 1
        if inputs.get("path") is not None:
            source = open_audio(inputs["path"])
            return source, source.channels == 1
        raise ValueError(
            f"{name}: a dict input needs 'array' (or 'raw') with 'sampling_rate', or 'bytes'/'path'; "
            f"got keys {sorted(inputs)}."
        )
    if hasattr(inputs, "get_all_samples"):  # datasets 5 Audio value (torchcodec AudioDecoder): keep every channel
        samples = inputs.get_all_samples()
        return _source_from_array(samples.data, int(samples.sample_rate), name)
    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        return _source_from_array(inputs, model_rate if sampling_rate is None else sampling_rate, name)
    raise ValueError(
        f"{name}: unsupported input of type {type(inputs).__name__}. Expected a file path, bytes, a numpy array or "
        "torch tensor, a dict {'array' or 'raw', 'sampling_rate'}, a datasets Audio value, or a list of these "
        "(a plain list is read as a batch of inputs)."
    )


_JOB_IDS = itertools.count()


@dataclass
class _Job:
    """Everything the chunks of one input share."""

    source: AudioSource
    plan: ChunkPlan
    scales: np.ndarray  # [channels] float64: the std each channel is normalised by (1.0 without normalisation)
    floor: float
    mono: bool
    carries_state: bool = False  # causal model: chunks run one after another through AdaSlimStreamers
    token: int = 0  # names this job's streamers in the pipeline (unique per prepared input)


@dataclass
class _Chunk:
    job: _Job
    index: int
    channel: int
    samples: np.ndarray | None = None  # carries_state: this chunk's raw samples at the model rate, [n] float32


@dataclass
class _Piece:
    """What the model returned for one chunk of one channel when chunks carry the model's state."""

    chunk: _Chunk
    enhanced: np.ndarray  # [n] float32 at the model rate: the channel's next n enhanced samples (std applied)
    choice: np.ndarray | None = None  # after the channel's last chunk: factor index per router frame [frames]
    macs: float = 0.0  # after the channel's last chunk: what the whole channel cost


# ----------------------------------------------------------------------------------------------------
# Stitching
# ----------------------------------------------------------------------------------------------------


class _Assembler:
    """Turns chunk outputs, arriving chunk by chunk (all channels of a chunk together), into final blocks
    of enhanced audio at the input rate, in order, holding only one chunk and one cross-fade at a time."""

    def __init__(self, job: _Job, factors, router_hop: int, num_router_frames: int, dry: float):
        self.job, self.dry = job, float(dry)
        self.factors = np.asarray(factors, dtype=np.float32)
        self.hop = router_hop
        channels = job.source.channels
        self.choice = np.full((channels, num_router_frames), -1, dtype=np.int16)
        self.macs = 0.0
        self.emitted = 0  # input samples handed out so far
        self.pending = np.zeros((channels, 0), dtype=np.float32)  # output from `emitted` on, partly accumulated
        self.current: dict[int, np.ndarray] = {}
        self.seconds_done = 0.0

    def _ramp(self, length: int, rising: bool) -> np.ndarray:
        ramp = (np.arange(length, dtype=np.float32) + 0.5) / length
        return ramp if rising else 1.0 - ramp

    def push(self, output: dict) -> list[tuple[int, np.ndarray]]:
        chunk: _Chunk = output["chunk"]
        job, plan = self.job, self.job.plan
        k = chunk.index
        start, _ = plan.model_span(k)
        # batched outputs come back as [1, n] items (transformers' unbatching adds the dimension): flatten
        enhanced = output["enhanced"].detach().float().cpu().reshape(1, -1).numpy() * np.float32(job.scales[chunk.channel])
        back = resample(enhanced, plan.model_rate, plan.input_rate)[0]  # starts at input position to_input(start)
        origin = plan.to_input(start)
        lo, hi = plan.kept_span(k)
        piece = np.zeros(hi - lo, dtype=np.float32)
        available = back[lo - origin : hi - origin]
        piece[: available.shape[0]] = available
        fade = plan.crossfade
        if k > 0:
            piece[: 2 * fade] *= self._ramp(2 * fade, rising=True)
        if k < plan.num_chunks - 1:
            piece[-2 * fade :] *= self._ramp(2 * fade, rising=False)
        self.current[chunk.channel] = piece

        choice = output["choice"].cpu().reshape(-1).numpy()
        first = plan.boundaries[k] // self.hop
        last = self.choice.shape[1] if k == plan.num_chunks - 1 else plan.boundaries[k + 1] // self.hop
        offset = (plan.boundaries[k] - start) // self.hop
        values = choice[offset : offset + (last - first)]
        self.choice[chunk.channel, first : first + values.shape[0]] = values
        self.macs += float(output["macs"])

        if len(self.current) < job.source.channels:
            return []
        contribution = np.stack([self.current[c] for c in range(job.source.channels)])
        self.current = {}
        merged = np.zeros((job.source.channels, hi - self.emitted), dtype=np.float32)
        merged[:, : self.pending.shape[1]] = self.pending
        merged[:, lo - self.emitted :] += contribution
        final = plan.final_until(k)
        block, self.pending = merged[:, : final - self.emitted], merged[:, final - self.emitted :]
        block_start, self.emitted = self.emitted, final
        self.seconds_done = final / plan.input_rate
        if self.dry:
            block = mix_dry(block, job.source.read(block_start, final), self.dry)
        return [(block_start, block)]

    def summary(self) -> dict:
        valid = self.choice >= 0
        per_frame = np.where(valid, self.factors[np.clip(self.choice, 0, None)], 0.0).astype(np.float32)
        mean = float(per_frame[valid].mean()) if valid.any() else float("nan")
        return {
            "utilization": mean,
            "utilization_per_frame": per_frame[0] if self.job.mono else per_frame,
            "macs": self.macs,
        }


class _ToInputRate:
    """Resamples a growing model-rate signal back to the input rate block by block, exactly as resampling it
    whole would (``read_model_rate`` in reverse): an output block starting on a whole resampling period reads
    ``resampler_margin`` model-rate samples beyond it on each side; only what later blocks still read is kept."""

    def __init__(self, model_rate: int, input_rate: int, input_frames: int):
        self.model_rate, self.input_rate, self.input_frames = model_rate, input_rate, input_frames
        self.p, self.q = rate_ratio(model_rate, input_rate)  # p model samples span q input samples
        self.margin = resampler_margin(model_rate, input_rate)
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0  # model-rate position of buffer[0]
        self.emitted = 0  # input-rate samples returned so far

    def push(self, enhanced: np.ndarray, final: bool) -> np.ndarray:
        """The next model-rate samples in -> the input-rate samples now final, from ``emitted`` on."""
        if self.model_rate == self.input_rate:
            end = min(self.emitted + enhanced.shape[0], self.input_frames)
            out = enhanced[: end - self.emitted]
            self.emitted = end
            return out
        self.buffer = np.concatenate([self.buffer, enhanced]) if self.buffer.size else enhanced
        have = self.buffer_start + self.buffer.shape[0]
        end = self.input_frames if final else min(self.input_frames, max(0, have - self.margin) // self.p * self.q)
        if end <= self.emitted:
            return self.buffer[:0]
        start = self.emitted  # a multiple of q
        first = max(start // self.q * self.p - self.margin, 0)
        last = min(-(-end * self.p // self.q) + self.margin, have)
        block = resample(self.buffer[first - self.buffer_start : last - self.buffer_start], self.model_rate,
                         self.input_rate)
        offset = start - first * self.q // self.p
        out = block[offset : offset + end - start]
        keep = max(end // self.q * self.p - self.margin, self.buffer_start)  # what the next block reads first
        self.buffer, self.buffer_start = self.buffer[keep - self.buffer_start :], keep
        self.emitted = end
        return out


class _StreamAssembler(_Assembler):
    """``_Assembler`` for chunks that carry the model's state: each channel's enhanced samples arrive in order
    (the streamer's output), are resampled back to the input rate block by block and handed out as soon as
    every channel has them. No seams, no cross-fades: the result is the whole-input call's."""

    def __init__(self, job: _Job, factors, router_hop: int, num_router_frames: int, dry: float):
        super().__init__(job, factors, router_hop, num_router_frames, dry)
        plan = job.plan
        channels = job.source.channels
        self.back = [_ToInputRate(plan.model_rate, plan.input_rate, plan.input_frames) for _ in range(channels)]
        self.ready = [np.zeros(0, dtype=np.float32) for _ in range(channels)]

    def push(self, output: dict) -> list[tuple[int, np.ndarray]]:
        piece: _Piece = output["piece"]
        channel, plan = piece.chunk.channel, self.job.plan
        final = piece.choice is not None
        out = self.back[channel].push(piece.enhanced, final)
        self.ready[channel] = np.concatenate([self.ready[channel], out]) if self.ready[channel].size else out
        if final:
            values = piece.choice[: self.choice.shape[1]]
            self.choice[channel, : values.shape[0]] = values
            self.macs += piece.macs
        count = min(r.shape[0] for r in self.ready)
        if count == 0:
            return []
        block = np.stack([r[:count] for r in self.ready]).astype(np.float32, copy=False)
        self.ready = [r[count:] for r in self.ready]
        start, self.emitted = self.emitted, self.emitted + count
        self.seconds_done = self.emitted / plan.input_rate
        if self.dry:
            block = mix_dry(block, self.job.source.read(start, self.emitted), self.dry)
        return [(start, block)]


# ----------------------------------------------------------------------------------------------------
# Threads
# ----------------------------------------------------------------------------------------------------


def busy_cores(samples: int = 3) -> int:
    """Threads of other processes running on this machine right now: /proc/loadavg's count of runnable threads
    minus this process's own (its threads in state R, e.g. OpenMP workers still spinning after a call); the
    largest of a few reads. 0 where /proc is not there (not Linux)."""
    counts = []
    for _ in range(samples):
        try:
            with open("/proc/loadavg") as handle:
                counts.append(int(handle.read().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            return 0
    return max(0, max(counts) - max(1, _own_running_threads()))


def _own_running_threads() -> int:
    count = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat") as handle:
                count += handle.read().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            continue
    return count


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def auto_threads(limit: int | None = None) -> int:
    """Threads for torch now: the cores no other process is running on, at least 1, at most ``limit``
    (default: torch's current setting). On a machine where another process holds a core, torch's default of
    one thread per core makes every parallel region wait for a thread that has no core; that costs 10x and
    more (GNU OpenMP's waiting threads spin by default). Checked per chunk, so a long file follows the load."""
    limit = torch.get_num_threads() if limit is None else limit
    return max(1, min(limit, available_cores() - busy_cores()))


@contextlib.contextmanager
def torch_threads(count: int | None):
    """Run the block with ``torch.set_num_threads(count)`` and restore the previous setting after it
    (``None``: leave it alone)."""
    previous = torch.get_num_threads()
    if count is None or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _without_input_normalization(model):
    """A view of ``model`` (same modules and parameters, shared, nothing copied) whose config skips the
    DEMUCS input normalisation, so the pipeline can apply the whole-input scaling itself (see the module
    docstring). The caller's model and config are not touched."""
    if not getattr(model.config, "normalize", False):
        return model
    view = copy.copy(model)
    view.config = copy.deepcopy(model.config)
    view.config.normalize = False
    return view


# ----------------------------------------------------------------------------------------------------
# The pipeline
# ----------------------------------------------------------------------------------------------------


class SpeechEnhancementPipeline(ChunkPipeline):
    r"""
    Speech enhancement with an [`AdaSlimModel`]: noisy audio in, enhanced audio out, at the input's rate.

    Inputs: a file path, encoded bytes, a numpy array / torch tensor of shape `(samples,)` or `(channels,
    samples)` (float or int8/uint8/int16/int32 PCM; at the model's rate unless `sampling_rate=` says
    otherwise), a dict `{"array" or "raw": ..., "sampling_rate": ...}`, a datasets `Audio` value, or a list of
    these. Each channel is enhanced on its own; any rate is resampled to the model's and back.

    Call parameters:
        utilization (`"auto"` or `float`, defaults to `"auto"`): `"auto"` lets the router choose a width per
            frame (a model whose router was never trained, from stage 1 or a static run, runs its
            `config.default_utilization` instead); a configured factor (e.g. `0.25`) runs every frame at that width.
        dry (`float` in [0, 1], defaults to 0): mix `dry * input + (1 - dry) * enhanced` (a strength knob).
        sampling_rate (`int`, *optional*): rate of bare array inputs (default: the model's rate).
        output_sampling_rate (`int`, *optional*): rate of the returned audio (default: the input's rate).
        chunk_length_s (`float` or `None`): seconds of audio per model call (memory grows with it; the result
            does not depend on it); `None` runs each input in one call. By default inputs up to 12 s
            (`single_chunk_max_s`) run in one call and longer ones in 4 s chunks.
        context_s (`float`, defaults to 3): non-causal models only: seconds of left context computed and
            discarded per chunk. Causal models carry their state from chunk to chunk and need none.
        threads (`"auto"` or `int`, defaults to `"auto"`): torch threads per chunk; "auto": the cores no other
            process is running on, at most torch's current setting (restored after each chunk).
        precision (`"fp32"` or `"bf16"`, defaults to `"fp32"`): `"bf16"` runs the encoder and decoder blocks in
            bfloat16 (normalisation, resampling, router, bottleneck and output stay float32): about 2.5x faster at
            full width on a CPU with AVX-512 BF16, little faster at narrow widths, output within 1% of float32's.
        batch_size (`int`): chunks per `_forward` call (non-causal models: one padded batch; causal models run
            them one after another, as their states require).

    Returns a dict (a list of them for a list input):
        audio (`np.ndarray` float32): `(samples,)` for mono inputs and 1-D arrays, `(channels, samples)` otherwise.
        sampling_rate (`int`), utilization (`float`, mean factor over frames and channels),
        utilization_per_frame (`np.ndarray` float32, `(frames,)` or `(channels, frames)`: the factor of each
        router frame of `config.router_hop` samples at the model rate), macs (`float`: multiply-accumulates
        the model spent, chunk contexts included, resampling not).

    Example:
    ```python
    >>> from transformers import pipeline
    >>> enhancer = pipeline("speech-enhancement", model="org/adaslim-demucs")  # doctest: +SKIP
    >>> result = enhancer("noisy.wav", utilization=0.25)  # doctest: +SKIP
    >>> result["audio"].shape, result["sampling_rate"], result["macs"]  # doctest: +SKIP
    ```
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = None  # optional: loaded with the model when saved, else built from its config
    _load_tokenizer = False

    # 4 s per model call: peak RSS for a long file as with the earlier context-based chunks (887 MB for 120 s
    # through `adaslim enhance --threads 1`, measured both ways on 2026-12-05; torch and transformers alone take
    # ~790 MB); 8 s chunks took 950 MB. Non-causal models add context_s (3 s) of left context and as much on
    # the right to every call.
    default_chunk_length_s = 4.0
    default_context_s = 3.0
    # With the default chunking, an input no longer than this runs as one chunk: each chunk seam costs the
    # streamer work the bare model call does not do (10 s of speech, one thread, 2026-12-05: 1.18x the bare
    # call in 4 s chunks, 1.09x in one; docs/results/2026-12-05-bf16-and-everyday-speed.md). Longer inputs keep
    # 4 s chunks, whose memory bound holds for hours of audio (10 s chunks took a one-hour file to 1,042 MB).
    single_chunk_max_s = 12.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        config = self.model.config
        if getattr(config, "chin", 1) != 1 or getattr(config, "chout", 1) != 1:
            raise ValueError(
                f"the speech-enhancement pipeline runs mono models (chin=chout=1), got chin={config.chin}, "
                f"chout={config.chout}."
            )
        if self.feature_extractor is None:
            self.feature_extractor = AdaSlimFeatureExtractor(sampling_rate=config.sampling_rate)
        elif self.feature_extractor.sampling_rate != config.sampling_rate:
            raise ValueError(
                f"the feature extractor expects {self.feature_extractor.sampling_rate} Hz but the model runs at "
                f"{config.sampling_rate} Hz."
            )
        self.model.eval()
        self._network = _without_input_normalization(self.model)
        self._streamers: dict[tuple[int, int], AdaSlimStreamer] = {}  # (job token, channel) -> its stream

    # ---- parameters ----

    def save_pretrained(self, save_directory, **kwargs):
        """Pipeline.save_pretrained, without the task's local default model in the saved config's
        ``custom_pipelines``: that default is this installation's packaged folder (an absolute path on this
        machine), which means nothing where the saved folder is loaded or published. The registry entry lives
        on the class (``register_pipeline``); an instance attribute shadows it for this one call."""
        registered = getattr(type(self), "_registered_impl", None)
        if registered is None:
            return super().save_pretrained(save_directory, **kwargs)
        self._registered_impl = {task: {key: value for key, value in info.items() if key != "default"}
                                 for task, info in registered.items()}
        try:
            return super().save_pretrained(save_directory, **kwargs)
        finally:
            del self._registered_impl

    def _sanitize_parameters(self, utilization=None, dry=None, sampling_rate=None, output_sampling_rate=None,
                             chunk_length_s="unset", context_s=None, threads=None, precision=None, **kwargs):
        if kwargs:
            raise ValueError(
                f"unknown speech-enhancement parameter(s) {sorted(kwargs)}; accepted: utilization, dry, sampling_rate, "
                "output_sampling_rate, chunk_length_s, context_s, threads, precision, batch_size."
            )
        preprocess, forward, postprocess = {}, {}, {}
        if sampling_rate is not None:
            preprocess["sampling_rate"] = _positive_int(sampling_rate, "sampling_rate")
        if chunk_length_s != "unset":
            if chunk_length_s is not None and not (_is_number(chunk_length_s) and chunk_length_s > 0):
                raise ValueError(f"chunk_length_s must be a positive number of seconds or None, got {chunk_length_s!r}.")
            preprocess["chunk_length_s"] = chunk_length_s
        if context_s is not None:
            if not (_is_number(context_s) and context_s >= 0):
                raise ValueError(f"context_s must be a number of seconds >= 0, got {context_s!r}.")
            preprocess["context_s"] = float(context_s)
        if utilization is not None:
            forward["utilization"] = self._check_utilization(utilization)
        if threads is not None:
            if not (threads == "auto" or (isinstance(threads, (int, np.integer)) and not isinstance(threads, bool)
                                          and threads >= 1)):
                raise ValueError(f"threads must be 'auto' or a number of threads >= 1, got {threads!r}.")
            forward["threads"] = threads if threads == "auto" else int(threads)
        if precision is not None:
            precision_dtype(precision)  # ValueError naming the precisions
            forward["precision"] = precision
        if dry is not None:
            postprocess["dry"] = check_dry(dry)
        if output_sampling_rate is not None:
            postprocess["output_sampling_rate"] = _positive_int(output_sampling_rate, "output_sampling_rate")
        return preprocess, forward, postprocess

    def _check_utilization(self, utilization):
        """"auto" (or None) -> None; a configured factor -> that float; anything else -> ValueError."""
        factors = list(self.model.config.utilization_factors)
        return parse_utilization(utilization, factors, expected=f"one of this model's factors {factors}")

    # ---- preprocess: input -> chunks ----

    def prepare(self, inputs, sampling_rate=None, chunk_length_s="unset", context_s=None) -> _Job:
        """Decode and check one input, plan its chunks and measure its per-channel scale (first pass)."""
        config = self.model.config
        source, mono = as_source(inputs, config.sampling_rate, sampling_rate)
        chunk_length = chunk_length_s
        if chunk_length_s == "unset":
            short = source.frames <= self.single_chunk_max_s * source.sampling_rate
            chunk_length = None if short else self.default_chunk_length_s
        context = self.default_context_s if context_s is None else context_s
        plan = ChunkPlan.build(config, source.sampling_rate, source.frames, chunk_length, context)
        if config.normalize:
            scales = channel_statistics(source, plan)
        else:
            if source._array is None:  # still check a lazily read file for NaN/Inf before any work
                channel_statistics(source, plan)
            scales = np.ones(source.channels)
        return _Job(source, plan, scales, float(config.floor), mono, carries_state=bool(config.causal),
                    token=next(_JOB_IDS))

    def chunks(self, job: _Job):
        """Model inputs of every chunk, chunk by chunk, channel by channel (the last one marked ``is_last``).
        Causal models get each chunk's own samples (their streamers carry the state); others the chunk
        with its contexts, normalised, as model inputs."""
        plan, config = job.plan, self.model.config
        for k in range(plan.num_chunks):
            if job.carries_state:
                start, stop = plan.boundaries[k], plan.boundaries[k + 1]
            else:
                start, stop = plan.model_span(k)
            block = read_model_rate(job.source, plan.model_rate, start, stop)
            for channel in range(job.source.channels):
                samples = block[channel]
                is_last = k == plan.num_chunks - 1 and channel == job.source.channels - 1
                if job.carries_state:
                    yield {"chunk": _Chunk(job, k, channel, np.ascontiguousarray(samples, dtype=np.float32)),
                           "is_last": is_last}
                    continue
                if config.normalize:
                    samples = samples / np.float32(job.floor + job.scales[channel])
                features = self.feature_extractor(samples, sampling_rate=plan.model_rate, return_tensors="pt")
                yield {
                    "input_values": features["input_values"],
                    "padding_mask": features["padding_mask"],
                    "chunk": _Chunk(job, k, channel),
                    "is_last": is_last,
                }

    def preprocess(self, inputs, sampling_rate=None, chunk_length_s="unset", context_s=None):
        job = self.prepare(inputs, sampling_rate, chunk_length_s, context_s)
        yield from self.chunks(job)

    # ---- forward: only the model ----

    def _forward(self, model_inputs, utilization=None, threads="auto", precision="fp32"):
        batched = isinstance(model_inputs["is_last"], list)
        chunks = model_inputs["chunk"] if batched else [model_inputs["chunk"]]
        with torch_threads(auto_threads() if threads == "auto" else threads):
            if chunks[0].job.carries_state:
                pieces = [self._stream(chunk, utilization, precision) for chunk in chunks]
                return {"piece": pieces if batched else pieces[0], "is_last": model_inputs["is_last"]}
            compute_dtype = precision_dtype(precision)
            with torch.autocast(self.model.device.type, dtype=compute_dtype, enabled=compute_dtype is not None):
                return self._forward_with_context(model_inputs, utilization, batched)

    def _stream(self, chunk: _Chunk, utilization, precision: str = "fp32") -> _Piece:
        """Feed one chunk of one channel to that channel's streamer (made at its first chunk, flushed and
        dropped after its last): the model runs on the chunk alone, its state carried from the chunk before."""
        job, key = chunk.job, (chunk.job.token, chunk.channel)
        streamer = self._streamers.get(key)
        if streamer is None or chunk.index == 0:
            std = float(job.scales[chunk.channel]) if self.model.config.normalize else None
            streamer = AdaSlimStreamer(self.model, utilization="auto" if utilization is None else utilization,
                                       input_std=std, precision=precision)
            self._streamers[key] = streamer
        enhanced = streamer.feed(torch.from_numpy(chunk.samples).to(self.model.dtype))
        if chunk.index < job.plan.num_chunks - 1:
            return _Piece(chunk, enhanced.float().cpu().numpy())
        enhanced = torch.cat([enhanced, streamer.flush()])
        del self._streamers[key]
        choice = streamer.choice
        macs = float(call_macs(self.model.config, choice[None], torch.tensor([job.plan.model_frames]),
                               router=streamer.routed)[0])
        return _Piece(chunk, enhanced.float().cpu().numpy(), choice.numpy(), macs)

    def _forward_with_context(self, model_inputs, utilization, batched: bool):
        """Non-causal models: every chunk with its contexts through the model, as one padded batch."""
        values, mask = model_inputs["input_values"], model_inputs["padding_mask"]
        padding_mask = None if bool(mask.all()) else mask
        out = self._network(values.to(self.model.dtype), padding_mask=padding_mask, utilization=utilization)
        config = self.model.config
        lengths = mask.sum(dim=1).tolist()
        enhanced = [out.enhanced_values[i, :n] for i, n in enumerate(lengths)]
        choice = [out.choice[i, : config.num_router_frames(n)] for i, n in enumerate(lengths)]
        macs = [float(m) for m in out.macs]
        if batched:
            return {"enhanced": enhanced, "choice": choice, "macs": macs, "chunk": model_inputs["chunk"],
                    "is_last": model_inputs["is_last"]}
        return {"enhanced": enhanced[0], "choice": choice[0], "macs": macs[0], "chunk": model_inputs["chunk"],
                "is_last": model_inputs["is_last"]}

    def _forget(self, job: _Job) -> None:
        """Drop the streamers of ``job`` (an input that failed half way leaves them behind)."""
        for key in [key for key in self._streamers if key[0] == job.token]:
            del self._streamers[key]

    # ---- postprocess: chunks -> audio ----

    def _assembler(self, job: _Job, dry: float) -> _Assembler:
        config = self.model.config
        frames = config.num_router_frames(job.plan.model_frames)
        kind = _StreamAssembler if job.carries_state else _Assembler
        return kind(job, config.utilization_factors, config.router_hop, frames, dry)

    def postprocess(self, model_outputs, dry=0.0, output_sampling_rate=None):
        first = model_outputs[0]
        job = first["piece"].chunk.job if "piece" in first else first["chunk"].job
        self._forget(job)
        assembler = self._assembler(job, dry)
        audio = np.empty((job.source.channels, job.source.frames), dtype=np.float32)
        model_outputs.reverse()  # consume (and free) chunk outputs in order
        while model_outputs:
            for start, block in assembler.push(model_outputs.pop()):
                audio[:, start : start + block.shape[1]] = block
        rate = job.source.sampling_rate
        if output_sampling_rate is not None and output_sampling_rate != rate:
            audio = resample(audio, rate, output_sampling_rate)
            rate = output_sampling_rate
        return {"audio": audio[0] if job.mono else audio, "sampling_rate": int(rate), **assembler.summary()}

    # ---- streaming: file to file ----

    def enhance_file(self, inputs, output_path, *, subtype: str | None = "FLOAT", overwrite: bool = False,
                     protect=(), progress=None, batch_size: int | None = None, **parameters) -> dict:
        """Enhance ``inputs`` (a path, or anything the pipeline accepts) into the audio file ``output_path``,
        streaming chunk by chunk: memory stays bounded by one chunk whatever the length. The output is written
        atomically at the input's rate, never over the input nor over the paths in ``protect``, nor over an
        existing file unless ``overwrite``. ``progress(seconds_done)`` is called after each chunk. Returns the
        summary dict of a pipeline call without "audio", plus "seconds" and "output".
        """
        preprocess, forward, postprocess = self._sanitize_parameters(**parameters)
        preprocess = {**self._preprocess_params, **preprocess}
        forward = {**self._forward_params, **forward}
        postprocess = {**self._postprocess_params, **postprocess}
        if postprocess.get("output_sampling_rate") is not None:
            raise ValueError("enhance_file writes at the input's rate; output_sampling_rate is not supported here.")
        batch_size = batch_size or self._batch_size or 1
        job = self.prepare(inputs, **preprocess)
        assembler = self._assembler(job, postprocess.get("dry", 0.0))
        protect = [*protect, inputs] if isinstance(inputs, (str, os.PathLike)) else list(protect)
        collate = pad_collate_fn(None, self.feature_extractor)
        try:
            with AudioWriter(output_path, job.source.sampling_rate, job.source.channels, subtype, protect,
                             overwrite) as writer:
                items = self.chunks(job)
                while True:
                    batch = [item for _, item in zip(range(batch_size), items)]
                    if not batch:
                        break
                    outputs = self.forward(collate(batch) if len(batch) > 1 else batch[0], **forward)
                    for output in _unbatch(outputs, len(batch)):
                        for _, block in assembler.push(output):
                            writer.write(block)
                            if progress is not None:
                                progress(assembler.seconds_done)
        finally:
            self._forget(job)
        return {"sampling_rate": job.source.sampling_rate, "seconds": job.source.seconds, "output": os.fspath(output_path),
                **assembler.summary()}


def _unbatch(outputs: dict, size: int) -> list[dict]:
    if size == 1 and not isinstance(outputs["is_last"], list):
        return [outputs]
    return [{key: value[i] for key, value in outputs.items()} for i in range(size)]


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(value, name: str) -> int:
    if not _is_number(value) or int(value) != value or value <= 0:
        raise ValueError(f"{name} must be a positive integer (Hz), got {value!r}.")
    return int(value)


# The trained model packaged with adaslim_hf (scripts/package_default_model.py): what `pipeline("speech-enhancement")`,
# `adaslim enhance` and `adaslim stream` use when no model is named.
PACKAGED_MODEL = Path(__file__).resolve().parent / "pretrained" / "adaslim-demucs"


def register_pipeline(default_model: str | os.PathLike | None = PACKAGED_MODEL) -> None:
    """Register the task "speech-enhancement" (alias "audio-to-audio") with transformers' ``pipeline()``; with
    ``default_model`` (a save_pretrained folder, when it exists) ``pipeline("speech-enhancement")`` loads it."""
    default = None
    if default_model is not None and (Path(default_model) / "config.json").is_file():
        default = {"model": (str(default_model), None)}
    PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=SpeechEnhancementPipeline, pt_model=AutoModel,
                                        default=default, type="audio")
    PIPELINE_REGISTRY.task_aliases[TASK_ALIAS] = TASK


__all__ = ["ChunkPlan", "SpeechEnhancementPipeline", "as_source", "model_lookahead", "register_pipeline"]
