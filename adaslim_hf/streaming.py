"""Real-time streaming for ``AdaSlimModel``: feed chunks of any size, get enhanced audio back at a fixed latency.

``AdaSlimStreamer`` computes exactly what the offline causal forward computes, one piece at a time. Every
stage of the model (normalisation, sinc up-sampling, each encoder block, the recurrent bottleneck, each
decoder block with its overlap-add, sinc down-sampling, and the router) keeps the context it still needs
and computes a row as soon as that row is *final*: equal to what the offline forward gives it for every
possible continuation of the stream, including the stream ending right there. Nothing is computed twice
and nothing is approximated, so the streamed output equals ``model(noisy)`` up to float rounding (the
tests measure < 1e-5) for any chunking.

Latency (``AdaSlimStreamer.latency``, in samples) follows from the model's geometry and is fixed: after
``n`` samples have been fed, ``n - latency`` enhanced samples have been returned. It is the largest delay
any output sample needs before it is final (``final_output_samples`` follows every stage's rule). The last
few samples of it buy very little: the far taps of the windowed-sinc kernels weigh about 1e-6, so the
farthest dependencies are numerically invisible even in float64. For the paper's configuration (hidden 32,
depth 5, kernel 8, stride 4, resample 4, 16 kHz):

* static factor: 763 samples (47.7 ms) = 597 (receptive field of one bottleneck frame: the 41.3 ms of
  denoiser's ``DemucsStreamer``, which calls it ``valid_length(1)``) + 84 (look-ahead of the two x2 sinc
  up-samplers, 56 taps each side) + 83 (look-ahead of the two x2 sinc down-samplers). ``DemucsStreamer``
  reaches 660 by cutting the up-sampler look-ahead to 64 samples and feeding the down-sampler partial
  overlap-add sums: an approximation (about 0.2% in its README). This streamer is exact by default;
  ``resample_lookahead=k`` (< 56) makes every sinc stage wait for k input samples instead of 56 and treat
  the rest as zeros, 3 (56 - k) samples less latency: k = 20 gives 655 samples (40.9 ms), on speech about
  1e-3 relative RMS deviation from the offline output (``scripts/benchmark_streaming.py`` measures it).
* routed (``utilization="auto"``): the same 763 (655 with ``resample_lookahead=20``). The router decides
  router frame r from the hop before it (``config.router_delay`` = 1), so each decision is in before the
  first frame it governs can be computed; and there is one router frame per hop of input begun
  (``num_router_frames``), so whether frame r exists is known once its first sample is in. With
  ``router_delay=0`` (decision r from the hop it governs) a routed stream holds back 850 samples.

Normalisation. Offline, the input is divided by the standard deviation of the whole input, which a stream
cannot know. With ``input_std=None`` (the default for ``config.normalize=True``) the streamer divides
sample m by ``floor + s_m``, s_m the standard deviation (with Bessel's correction) of the mono input seen
so far, ``x[0 : max(m + 1, W)]`` with W = ``latency`` (so the first W samples share one estimate, and the
warm-up adds no delay), and multiplies output sample m by s_m. The stream then equals, exactly, the model
without normalisation applied to ``noisy / (floor + s)`` and multiplied by ``s``. With ``input_std=std``
given, every sample uses that value, and the stream equals the offline ``model(noisy)`` when ``std`` is
the offline estimate ``noisy.mean(0).std()`` (how the tests check a normalising model).

Compute budget. ``max_utilization`` caps the router's choice (or refuses a larger static factor).
``realtime_guard=True`` watches the wall-clock time of each ``feed`` against the duration of its audio;
while the stream is behind real time (a backlog over ``guard_tolerance`` seconds) it lowers the factor of
the router frames it decides by one more step per call, and raises it again a step per call once the
backlog is gone. ``stats`` says how often it did. The executed factors are in ``choice``; feeding them to
the offline model as ``utilization=choice`` gives the streamed output.

Example:
```python
>>> import torch
>>> from adaslim_hf import AdaSlimConfig, AdaSlimModel
>>> from adaslim_hf.streaming import AdaSlimStreamer
>>> model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=4, normalize=False)).eval()
>>> noisy = torch.randn(8000) * 0.1
>>> streamer = AdaSlimStreamer(model)                     # the router decides per frame
>>> pieces = [streamer.feed(chunk) for chunk in noisy.split(123)] + [streamer.flush()]
>>> streamed = torch.cat(pieces)
>>> offline = model(noisy[None]).enhanced_values[0]
>>> bool((streamed - offline).abs().max() < 1e-4), streamer.latency
(True, 315)
```
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from .configuration_adaslim import AdaSlimConfig, parse_utilization
from .execution import LayerPlan, decoder_forward, encoder_forward, router_runs
from .modeling_adaslim import AdaSlimModel
from .products import precision_dtype
from .resample import SINC_ZEROS, resample_stages, sinc_filter
from .waveform import check_dry, mix_dry

# Symbols: n samples or rows, C channels, S stride, K kernel size, Z = SINC_ZEROS (taps each side of the
# sinc interpolator), r router frame, f frame of a layer. Every stream tensor is time-major: [rows, C].

# A block whose new frames hold at least this many frame-channels (frames x block channels) runs them
# through the offline model's inference paths (``encoder_forward`` / ``decoder_forward``: cache-sized tiles,
# grouped router frames); fewer go frame by frame through the blocks' own products, whose per-call overhead
# is lower. Large chunks (the pipeline feeds seconds at a time) then cost what the offline call costs.
BULK_ELEMENTS = 1 << 15


def _append(held: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """torch.cat([held, rows]) without copying when either is empty (streams append to buffers often)."""
    if not len(held):
        return rows
    return torch.cat([held, rows]) if len(rows) else held


class _Rows:
    """The rows of a growing stream buffer, kept as the tensors they arrived in: appending copies nothing, and
    a window inside one of them is a view (a block's layer outputs are megabytes per second of audio; the
    offline model never copies them, so a stream of large chunks should not either)."""

    def __init__(self, channels: int, dtype: torch.dtype, device):
        self.parts: list[torch.Tensor] = []
        self.sizes: list[int] = []  # rows of each part (len() of a tensor costs microseconds)
        self.length = 0
        self.empty = torch.zeros(0, channels, dtype=dtype, device=device)

    def __len__(self) -> int:
        return self.length

    def append(self, rows: torch.Tensor) -> None:
        size = rows.shape[0]
        if size:
            self.parts.append(rows)
            self.sizes.append(size)
            self.length += size

    def large_parts(self, min_rows: int) -> list[tuple[int, int]]:
        """(start, end) offsets of the stored tensors of at least ``min_rows`` rows: a window inside one of them
        is a view; a window elsewhere only copies small tensors (and a few rows of a large one's edge)."""
        spans, total = [], 0
        for size in self.sizes:
            if size >= min_rows:
                spans.append((total, total + size))
            total += size
        return spans

    def get(self, start: int, stop: int) -> torch.Tensor:
        """Rows [start, stop): a view when they lie in one stored tensor, else a copy."""
        pieces, offset = [], 0
        for part, size in zip(self.parts, self.sizes):
            low, high = max(start - offset, 0), min(stop - offset, size)
            if low < high:
                pieces.append(part[low:high])
            offset += size
            if offset >= stop:
                break
        if not pieces:
            return self.empty
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)

    def drop(self, count: int) -> None:
        """Forget the first ``count`` rows."""
        self.length -= count
        while count and self.parts:
            if self.sizes[0] <= count:
                count -= self.sizes.pop(0)
                self.parts.pop(0)
            else:
                self.parts[0] = self.parts[0][count:]
                self.sizes[0] -= count
                count = 0


# ----------------------------------------------------------------------------------------------------
# The schedule: how many rows of each stage are final once n input samples are in. The stages below
# compute exactly this much; ``stream_latency`` takes the worst delay over a few periods.
# ----------------------------------------------------------------------------------------------------


def _resampling_stages(config) -> int:
    return resample_stages(config.resample)


class _Geometry:
    """The config numbers a stream consults on every call, read once: attribute access on a transformers
    config costs microseconds, and a stream asks for them many times per 16 ms frame (and the latency
    search below, thousands of times)."""

    def __init__(self, config: AdaSlimConfig):
        self.resample, self.depth = config.resample, config.depth
        self.kernel_size, self.stride = config.kernel_size, config.stride
        self.router_stride, self.router_hop = config.router_stride, config.router_hop
        self.router_delay = config.router_delay
        self.valid_length_1 = config.valid_length(1)
        self.per_router_frame = [config.frames_per_router_frame(layer) for layer in range(self.depth)]
        self.widths = [[config.slim_width(layer, j) for j in range(config.num_factors)] for layer in range(self.depth)]

    def num_router_frames(self, length: int) -> int:
        """``AdaSlimConfig.num_router_frames`` (the tests check they agree): one decision per hop begun."""
        return -(-length // self.router_hop)

    def key(self) -> tuple:
        """Everything the schedule depends on."""
        return (self.resample, self.depth, self.kernel_size, self.stride, self.router_hop, self.router_delay,
                self.valid_length_1, tuple(self.per_router_frame))


def final_output_samples(config: AdaSlimConfig, fed: int, routed: bool, warmup: int = 0,
                         resample_lookahead: int = SINC_ZEROS) -> int:
    """Enhanced samples that are final once ``fed`` input samples are in (before ``flush``).

    Follows every stage's rule: an up-sampled pair i needs input i + Z; an encoder frame f needs its
    K input rows (and, when ``routed``, a decision of a router frame surely inside the stream); a decoder
    position needs every frame that overlaps it; a down-sampled sample i needs odd input i + Z - 1.
    ``warmup``: no sample is normalised before that many are in (running normalisation).
    """
    geometry = config if isinstance(config, _Geometry) else _Geometry(config)
    normalised = fed if fed >= warmup else 0
    rows = normalised
    stages = _resampling_stages(geometry)
    for _ in range(stages):
        rows = 2 * max(0, rows - resample_lookahead)
    hop = geometry.router_hop
    decided = (normalised + geometry.router_delay * hop) // hop  # inputs complete
    usable = min(decided, geometry.num_router_frames(fed)) if routed and fed else 0
    frames = []
    for layer in range(geometry.depth):
        rows = (rows - geometry.kernel_size) // geometry.stride + 1 if rows >= geometry.kernel_size else 0
        if routed:
            rows = min(rows, usable * geometry.per_router_frame[layer])
        frames.append(rows)
    positions = frames[-1]
    for layer in reversed(range(geometry.depth)):
        positions = min(positions, frames[layer]) * geometry.stride
    for _ in range(stages):
        positions = max(0, positions // 2 - (resample_lookahead - 1))
    return positions


def stream_latency(config: AdaSlimConfig, routed: bool, resample_lookahead: int = SINC_ZEROS) -> int:
    """Fixed latency in samples of an exact stream: max over n of n - final_output_samples(n). The schedule is
    periodic in n with period ``router_hop`` once the receptive field is filled, so a few periods suffice.
    Remembered per geometry: a pipeline starts a stream per channel and input."""
    geometry = _Geometry(config)
    key = (geometry.key(), bool(routed), int(resample_lookahead))
    if key not in _LATENCIES:
        horizon = geometry.valid_length_1 + 4 * SINC_ZEROS + 8 * geometry.router_hop
        _LATENCIES[key] = max(fed - final_output_samples(geometry, fed, routed, 0, resample_lookahead)
                              for fed in range(horizon))
    return _LATENCIES[key]


_LATENCIES: dict[tuple, int] = {}  # stream_latency per (geometry, routed, look-ahead)


# ----------------------------------------------------------------------------------------------------
# Stream stages. Each keeps only the context its next rows need; ``final=True`` means the input has
# ended (what lies beyond it is zero, as the offline convolutions pad).
# ----------------------------------------------------------------------------------------------------


def _filter_rows(window: torch.Tensor) -> torch.Tensor:
    """The sinc filter along time of rows [count + taps - 1, C] -> [count, C] (only whole windows)."""
    return sinc_filter(window.t()[:, None], padding=0)[:, 0].t()


class _GrowingSignal:
    """A signal that arrives in pieces of rows [n, C], kept from ``history_rows`` rows before the next output's
    first input (zeros before the start); the resamplers below filter it once enough has arrived."""

    def __init__(self, channels: int, dtype: torch.dtype, device, lookahead: int, history_rows: int):
        self.lookahead = lookahead
        self.history = torch.zeros(history_rows, channels, dtype=dtype, device=device)
        self.received = self.next = 0

    def _append(self, rows: torch.Tensor) -> None:
        self.history = torch.cat([self.history, rows]) if len(rows) else self.history
        self.received += len(rows)

    def _nothing(self) -> torch.Tensor:
        return self.history.new_zeros(0, self.history.shape[1])


class _SincUpsampler(_GrowingSignal):
    """x2 windowed-sinc up-sampling of a growing signal, as ``resample.upsample2``: output 2i is input
    i, output 2i + 1 interpolates inputs i - Z + 1 .. i + Z, so the pair i is final once input i + Z is in.
    ``lookahead``: the inputs past i a pair waits for; fewer than Z treats the rest as zeros."""

    def __init__(self, channels: int, dtype: torch.dtype, device, lookahead: int = SINC_ZEROS):
        super().__init__(channels, dtype, device, lookahead, SINC_ZEROS - 1)  # inputs from next - Z + 1

    def push(self, rows: torch.Tensor, final: bool = False) -> torch.Tensor:
        """rows [n, C] -> the newly final output rows [2m, C]."""
        if not len(rows) and not final:
            return rows
        self._append(rows)
        end = self.received if final else self.received - self.lookahead
        count = end - self.next
        if count <= 0:
            return self._nothing()
        window = self.history[: count + 2 * SINC_ZEROS - 1]  # inputs next - Z + 1 .. end + Z - 1
        window = F.pad(window, (0, 0, 0, count + 2 * SINC_ZEROS - 1 - len(window)))  # zeros past the end
        halfway = _filter_rows(window)  # [count, C]
        kept = self.history[SINC_ZEROS - 1 : SINC_ZEROS - 1 + count]
        self.history = self.history[count:]
        self.next = end
        return torch.stack([kept, halfway], dim=1).reshape(2 * count, -1)


class _SincDownsampler(_GrowingSignal):
    """x2 windowed-sinc down-sampling of a growing signal, as ``resample.downsample2``: output i averages
    input 2i with odd inputs i - Z .. i + Z - 1 filtered, so it is final once odd input i + Z - 1 is in.
    ``lookahead``: output i waits for odd input i + lookahead - 1 (Z: exact)."""

    def __init__(self, channels: int, dtype: torch.dtype, device, lookahead: int = SINC_ZEROS):
        super().__init__(channels, dtype, device, lookahead, 2 * SINC_ZEROS)  # inputs from 2 (next - Z)

    def push(self, rows: torch.Tensor, final: bool = False) -> torch.Tensor:
        """rows [n, C] -> the newly final output rows [m, C]. At the end an odd length is padded by one zero."""
        if not len(rows) and not final:
            return rows
        self._append(rows)
        if final and self.received % 2:
            self.history = F.pad(self.history, (0, 0, 0, 1))
            self.received += 1
        end = self.received // 2 if final else self.received // 2 - (self.lookahead - 1)
        count = end - self.next
        if count <= 0:
            return self._nothing()
        needed = 2 * (count + 2 * SINC_ZEROS - 1)  # inputs 2 (next - Z) .. 2 (end + Z - 1)
        window = self.history[:needed]
        window = F.pad(window, (0, 0, 0, needed - len(window))).reshape(count + 2 * SINC_ZEROS - 1, 2, -1)
        interpolated = _filter_rows(window[:, 1])  # [count, C]
        self.history = self.history[2 * count :]
        self.next = end
        return (window[SINC_ZEROS : SINC_ZEROS + count, 0] + interpolated) * 0.5


class _InputScale:
    """Normalisation of the stream: ``x / (floor + s)`` on the way in, ``* s`` on the way out.

    mode "off" (config.normalize False): s = 1 and nothing is divided. "fixed": s = the given std.
    "running": s_m = std of the mono input x[0 : max(m + 1, warmup)], Bessel-corrected like the model;
    samples wait here until their s is known (only during the warm-up).
    """

    def __init__(self, mode: str, floor: float, warmup: int, std: float | None):
        self.mode, self.floor, self.warmup, self.std = mode, floor, warmup, std
        self.count, self.total, self.total_squares = 0, 0.0, 0.0  # running sums over the mono input (float64)
        self.held_rows: list[torch.Tensor] = []
        self.held_scales: list[torch.Tensor] = []
        self.warm = mode != "running" or warmup == 0

    def push(self, rows: torch.Tensor, final: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """rows [n, C] raw -> (normalised rows [m, C], s [m]) for the samples whose s is now known."""
        if self.mode == "off":
            return rows, rows.new_ones(len(rows))
        if self.mode == "fixed":
            return rows / (self.floor + self.std), rows.new_full((len(rows),), self.std)
        mono = rows.mean(dim=1).double().cpu()
        sums = self.total + torch.cumsum(mono, 0)
        squares = self.total_squares + torch.cumsum(mono * mono, 0)
        counts = self.count + torch.arange(1, len(rows) + 1, dtype=torch.float64)
        scales = ((squares - sums * sums / counts) / (counts - 1).clamp(min=1)).clamp(min=0).sqrt()  # s_m
        if len(rows):
            self.count, self.total, self.total_squares = int(counts[-1]), float(sums[-1]), float(squares[-1])
        if not self.warm:
            self.held_rows.append(rows)
            self.held_scales.append(scales)
            if self.count < self.warmup and not final:
                return rows[:0], rows.new_zeros(0)
            rows, scales = torch.cat(self.held_rows), torch.cat(self.held_scales)
            self.held_rows, self.held_scales, self.warm = [], [], True
            warm = min(self.warmup, len(scales))
            if warm:  # the first `warm` samples share the estimate over all of them
                scales = torch.cat([scales[warm - 1].expand(warm), scales[warm:]])
        scales = scales.to(device=rows.device, dtype=rows.dtype)
        return rows / (self.floor + scales[:, None]), scales


# ----------------------------------------------------------------------------------------------------
# The streamer
# ----------------------------------------------------------------------------------------------------


class AdaSlimStreamer:
    """Streams an ``AdaSlimModel``: ``feed(chunk)`` returns the enhanced samples that are due, ``flush()`` the
    rest; the result equals the offline causal forward (see the module docstring for the latency and the
    normalisation).

    Args:
        model: a causal ``AdaSlimModel`` (eval mode is set on a reference, not copied).
        utilization: ``"auto"`` (or None, as in the model's forward) lets the router choose per router frame as
            the audio arrives; a configured factor runs every frame at that width.
        max_utilization: cap on the factor (the router's choice is lowered to the largest configured factor
            <= it); a static ``utilization`` above it is refused.
        dry: share of the input mixed into the output (0 = fully enhanced), the input delayed by ``latency``.
        input_std: fixed input standard deviation for normalisation; None keeps a running estimate (only
            used when ``config.normalize``).
        realtime_guard: lower the factor while processing falls behind real time (see the module docstring).
        guard_tolerance: backlog in seconds the guard tolerates (defaults to one router frame).
        clock: seconds for the guard (``time.perf_counter``; tests pass a fake one).
        resample_lookahead: input samples each x2 sinc stage waits for (56, the interpolator's half width:
            exact); fewer lowers the latency and approximates (see the module docstring).
        precision: ``"fp32"`` or ``"bf16"``: the encoder and decoder blocks compute in bfloat16 (as the model's
            forward does under ``torch.autocast``); scaling, router, resampling and bottleneck stay float32.

    Chunks are float tensors or numpy arrays, [samples] for mono models or [chin, samples]; the output has the
    same kind, rank and dtype ([chout, samples] for 2-D input). Wrong dtype, rank or channel count, NaN/Inf, or
    a chunk after ``flush`` raise a ValueError and leave the stream as it was; ``reset()`` starts a new one.
    """

    def __init__(
        self,
        model: AdaSlimModel,
        utilization: str | float | None = "auto",
        max_utilization: float | None = None,
        dry: float = 0.0,
        input_std: float | None = None,
        realtime_guard: bool = False,
        guard_tolerance: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
        resample_lookahead: int = SINC_ZEROS,
        precision: str = "fp32",
    ):
        config: AdaSlimConfig = model.config
        compute_dtype = precision_dtype(precision)  # ValueError naming the precisions
        if not config.causal:
            raise ValueError("streaming needs a causal model (config.causal=True): a bidirectional bottleneck "
                             "or router reads the whole input.")
        factors = config.utilization_factors
        if utilization is None or isinstance(utilization, str):
            utilization = parse_utilization(utilization, factors)
            if utilization is None:
                utilization = config.default_utilization  # set when the router was never trained
        if utilization is None:
            static_index = None
        else:
            static_index = config.factor_index(utilization)  # ValueError listing the factors
        cap = len(factors) - 1
        if max_utilization is not None:
            allowed = [index for index, factor in enumerate(factors) if factor <= max_utilization + 1e-9]
            if not allowed:
                raise ValueError(f"max_utilization {max_utilization} is below the smallest factor {factors[0]}.")
            cap = allowed[-1]
            if static_index is not None and static_index > cap:
                raise ValueError(f"utilization {utilization} exceeds max_utilization {max_utilization}.")
        dry = check_dry(dry)  # the pipeline's check: a number in [0, 1], booleans refused
        if dry and config.chin != config.chout:
            raise ValueError(f"dry mixing needs as many output as input channels, the model has {config.chin} -> "
                             f"{config.chout}.")
        if input_std is not None and not (math.isfinite(input_std) and input_std >= 0):
            raise ValueError(f"input_std must be a finite value >= 0, got {input_std}.")
        model.eval()
        self.model, self.config = model, config
        self.routed = static_index is None
        self.static_index, self.cap_index = static_index, cap
        self.dry = float(dry)
        self.input_std = input_std
        self.realtime_guard = realtime_guard
        self.guard_tolerance = config.router_hop / config.sample_rate if guard_tolerance is None else guard_tolerance
        self.clock = clock
        if not 1 <= resample_lookahead <= SINC_ZEROS:
            raise ValueError(f"resample_lookahead must lie in [1, {SINC_ZEROS}] ({SINC_ZEROS}: exact), got {resample_lookahead}.")
        self.resample_lookahead = resample_lookahead
        self.latency = stream_latency(config, self.routed, resample_lookahead)
        self._geometry = _Geometry(config)
        self._chin, self._chout, self._rate = config.chin, config.chout, config.sample_rate
        self._dtype = next(model.parameters()).dtype
        self._device = next(model.parameters()).device
        # the encoder and decoder blocks (and the rows they keep) in the compute dtype; the scaling, router,
        # resampling and bottleneck in the parameters' dtype, as the model's forward under autocast
        self._compute_dtype = compute_dtype or self._dtype
        self.precision = precision
        self.reset()

    # ---- public API ----

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def latency_seconds(self) -> float:
        return self.latency / self.config.sample_rate

    @property
    def choice(self) -> torch.LongTensor:
        """Executed factor index per router frame so far, [router_frames]. After ``flush`` it has exactly
        ``config.num_router_frames(samples fed)`` entries: the offline call ``model(noisy, utilization=
        choice[None])`` gives the streamed output (frames past the offline last router frame use its choice)."""
        decisions = self._decisions[: self._num_router_frames] if self._flushed else self._decisions
        return torch.tensor(decisions, dtype=torch.long)

    @property
    def stats(self) -> dict:
        """Counters of this stream: router frames decided, how many the budget cap and the real-time guard
        lowered, how often the guard stepped down, processing time against audio time."""
        factors = self.config.utilization_factors
        decided = len(self._decisions)
        return {
            "router_frames": decided,
            "mean_utilization": sum(factors[d] for d in self._decisions) / decided if decided else float("nan"),
            "capped_frames": self._capped_frames,
            "guard_lowered_frames": self._guard_frames,
            "guard_steps": self._guard_steps,
            "guard_level": self._guard_level,
            "processing_seconds": self._processing_seconds,
            "audio_seconds": self._fed / self.config.sample_rate,
            "real_time_factor": self._processing_seconds / max(self._fed / self.config.sample_rate, 1e-12),
        }

    def reset(self):
        """Forget the stream: every buffer, recurrent state, decision and counter."""
        config = self.config
        floor = config.floor
        if not config.normalize:
            self._scale = _InputScale("off", floor, 0, None)
        elif self.input_std is not None:
            self._scale = _InputScale("fixed", floor, 0, self.input_std)
        else:
            self._scale = _InputScale("running", floor, self.latency, None)
        stages = _resampling_stages(config)
        self._up = [_SincUpsampler(config.chin, self._dtype, self._device, self.resample_lookahead) for _ in range(stages)]
        self._down = [_SincDownsampler(config.chout, self._dtype, self._device, self.resample_lookahead) for _ in range(stages)]
        empty = torch.zeros(0, dtype=self._dtype, device=self._device)
        # encoder l: input rows from frame next * S on; skip rows of layer l not yet read by decoder l
        self._enc_inputs = [_Rows(c, self._compute_dtype, self._device) for c in config.in_channels]
        self._enc_next = [0] * config.depth
        self._skips = [_Rows(c, self._compute_dtype, self._device) for c in config.channels]
        # decoder l (index = encoder layer it mirrors): upper input rows, overlap-add carry, next frame
        self._dec_inputs = [_Rows(c, self._compute_dtype, self._device) for c in config.channels]
        self._dec_next = [0] * config.depth
        self._carries = [None] * config.depth
        self._bottleneck_state = None
        # router
        self._router_rows = empty.new_zeros(config.router_delay * config.router_hop, config.chin)  # the delay
        self._router_state = None
        self._decisions: list[int] = []
        # output side: computed rows not yet returned, their scales and the dry input
        self._pending = empty.new_zeros(0, config.chout)
        self._out_scales = empty.new_zeros(0)
        self._dry_rows = empty.new_zeros(0, config.chin)
        self._fed = self._returned = 0
        self._flushed = self._flushing = False
        self._num_router_frames = 0  # offline router frames, known at the end
        self._answer_format = False, True, None  # numpy?, flat?, dtype of the last chunk
        # budget and guard counters
        self._guard_level = self._guard_steps = self._guard_frames = self._capped_frames = 0
        self._backlog = self._processing_seconds = 0.0

    def feed(self, chunk) -> torch.Tensor | np.ndarray:
        """Push input samples; returns the enhanced samples now due (``fed - latency`` in total so far)."""
        if self._flushed:
            raise ValueError("this stream was flushed; call reset() to start a new one.")
        samples, as_numpy, flat, dtype = self._check_chunk(chunk)
        start = self.clock()
        with torch.no_grad():
            out = self._advance(samples, final=False)
        elapsed = self.clock() - start
        self._processing_seconds += elapsed
        if self.realtime_guard:
            self._update_guard(elapsed, len(samples) / self._rate)
        return self._format(out, as_numpy, flat, dtype)

    def flush(self) -> torch.Tensor | np.ndarray:
        """End the stream: returns the last ``latency`` samples (fewer if less was fed), shaped like the
        answers to ``feed`` (a flat torch tensor if nothing was fed)."""
        if self._flushed:
            raise ValueError("this stream was already flushed; call reset() to start a new one.")
        start = self.clock()
        with torch.no_grad():
            out = self._advance(torch.zeros(0, self._chin, dtype=self._dtype, device=self._device), final=True)
        self._processing_seconds += self.clock() - start
        self._flushed = True
        return self._format(out, *self._answer_format)

    # ---- input checks and output format ----

    def _check_chunk(self, chunk):
        """-> samples [n, chin] in the model's dtype and device, and how to shape the answer."""
        chin = self._chin
        as_numpy = isinstance(chunk, np.ndarray)
        if as_numpy:
            if not np.issubdtype(chunk.dtype, np.floating):
                raise ValueError(f"chunks must hold floating-point samples (e.g. in [-1, 1]), got numpy {chunk.dtype}.")
            tensor = torch.from_numpy(np.ascontiguousarray(chunk))
        elif isinstance(chunk, torch.Tensor):
            if not chunk.is_floating_point():
                raise ValueError(f"chunks must hold floating-point samples (e.g. in [-1, 1]), got {chunk.dtype}.")
            tensor = chunk
        else:
            raise ValueError(f"chunks must be a torch.Tensor or numpy array, got {type(chunk).__name__}.")
        expected = f"[samples] or [chin={chin}, samples]" if chin == 1 else f"[chin={chin}, samples]"
        if tensor.dim() == 1 and chin == 1:
            flat = True
            tensor = tensor[:, None]
        elif tensor.dim() == 2 and tensor.shape[0] == chin:
            flat = False
            tensor = tensor.t()
        else:
            raise ValueError(f"chunks must have shape {expected}, got {list(tensor.shape)}.")
        if not torch.isfinite(tensor).all():
            row, channel = (~torch.isfinite(tensor)).nonzero()[0].tolist()
            raise ValueError(f"the chunk contains NaN or Inf samples (first at sample {row} of the chunk, channel "
                             f"{channel}: sample {self._fed + row} of the stream); a waveform must be finite.")
        self._answer_format = as_numpy, flat, chunk.dtype
        return tensor.to(device=self._device, dtype=self._dtype), as_numpy, flat, chunk.dtype

    @staticmethod
    def _format(out: torch.Tensor, as_numpy: bool, flat: bool, dtype):
        out = out[:, 0] if flat else out.t()
        if as_numpy:
            return out.cpu().numpy().astype(dtype if dtype is not None else np.float32, copy=False)
        return out.to(dtype) if dtype is not None else out

    # ---- decisions: router, budget cap, guard ----

    def _limit(self, wanted: int) -> int:
        """Apply the budget cap and the guard to a wanted factor index, counting what each lowered."""
        capped = min(wanted, self.cap_index)
        self._capped_frames += capped < wanted
        decision = max(0, capped - self._guard_level)
        self._guard_frames += decision < capped
        return decision

    def _update_guard(self, elapsed: float, audio_seconds: float):
        """Backlog = how far processing is behind the audio, if chunks arrive in real time. Each call that ends
        over the tolerance lowers the factor of later router frames one more step (level); each call that ends
        with no backlog raises it a step."""
        self._backlog = max(0.0, self._backlog + elapsed - audio_seconds)
        if self._backlog > self.guard_tolerance and self._guard_level < self.cap_index:
            self._guard_level += 1
            self._guard_steps += 1
        elif self._backlog == 0.0 and self._guard_level > 0:
            self._guard_level -= 1

    def _route(self, rows: torch.Tensor, total_frames: int | None):
        """Router frames for the newly normalised rows; at the end (``total_frames``) the last partial hop
        and any frames past the input are computed on zeros, as the offline router pads."""
        hop = self._geometry.router_hop
        self._router_rows = torch.cat([self._router_rows, rows])
        count = len(self._router_rows) // hop
        if total_frames is not None:
            count = max(0, total_frames - len(self._decisions))
            self._router_rows = F.pad(self._router_rows, (0, 0, 0, max(0, count * hop - len(self._router_rows))))
        if count == 0:
            return
        hops = self._router_rows[: count * hop].t()[None]  # [1, chin, count * hop]
        self._router_rows = self._router_rows[count * hop :]
        logits, self._router_state = self.model.router.step(hops, self._router_state)  # [1, count, J]
        self._decisions.extend(self._limit(int(wanted)) for wanted in logits[0].argmax(dim=-1).tolist())

    def _decide_static(self, router_frame: int):
        """Static factor: decide router frames up to ``router_frame`` when first needed. A frame not yet sure
        to lie inside the stream keeps its predecessor's factor, so that if the stream ends before it (the
        offline model then reuses the last router frame's choice) nothing computed changes."""
        if len(self._decisions) > router_frame:
            return
        sure = self._geometry.num_router_frames(self._fed)
        while len(self._decisions) <= router_frame:
            frame = len(self._decisions)
            if frame > 0 and frame >= sure:
                self._decisions.append(self._decisions[-1])
            else:
                self._decisions.append(self._limit(self.static_index))

    def _spans(self, layer: int, first: int, stop: int) -> list[tuple[int, int, int]]:
        """Frames [first, stop) of ``layer`` as (start, end, width) runs of one decision."""
        per = self._geometry.per_router_frame[layer]
        last_frame = self._num_router_frames - 1 if self._flushing else None
        spans = []
        start = first
        while start < stop:
            frame = start // per
            if last_frame is not None and frame >= last_frame:
                frame, end = last_frame, stop
            else:
                end = min(stop, (frame + 1) * per)
            if not self.routed:
                self._decide_static(frame)
            width = self._geometry.widths[layer][self._decisions[frame]]
            if spans and spans[-1][2] == width:
                spans[-1] = (spans[-1][0], end, width)
            else:
                spans.append((start, end, width))
            start = end
        return spans

    # ---- the pipeline ----

    def _advance(self, samples: torch.Tensor, final: bool) -> torch.Tensor:
        """Run every stage as far as its rows are final; return the output rows now due [n, chout]."""
        config = self.config
        self._fed += len(samples)
        self._flushing = final
        if final:
            self._num_router_frames = config.num_router_frames(self._fed) if self._fed else 0
        rows, scales = self._scale.push(samples, final)
        if len(scales):
            self._out_scales = torch.cat([self._out_scales, scales])
        if self.dry and len(samples):
            self._dry_rows = torch.cat([self._dry_rows, samples])
        if final and self._fed:  # the offline input is zero-padded to valid_length
            rows = F.pad(rows, (0, 0, 0, config.valid_length(self._fed) - self._fed))
        if self.routed:
            self._route(rows, self._num_router_frames if final else None)
        for upsampler in self._up:
            rows = upsampler.push(rows, final)
        if self._fed:
            self._encode(rows.to(self._compute_dtype), final)
            rows = self._decode(final).to(self._dtype)
        else:
            rows = samples.new_zeros(0, self._chout)
        for downsampler in self._down:
            rows = downsampler.push(rows, final)
        if len(rows):
            self._pending = torch.cat([self._pending, rows])
        due = self._fed if final else self._fed - self.latency
        count = due - self._returned
        if count <= 0:
            return self._pending[:0]
        if len(self._pending) < count:
            raise RuntimeError(f"internal error: {len(self._pending)} final samples, {count} due (latency {self.latency}).")
        out = self._pending[:count] * self._out_scales[:count, None]
        if self.dry:
            out = mix_dry(out, self._dry_rows[:count], self.dry)
            self._dry_rows = self._dry_rows[count:]
        self._pending, self._out_scales = self._pending[count:], self._out_scales[count:]
        self._returned += count
        if final:
            self._pending = self._pending[:0]
        return out

    def _layer_plans(self, layer: int, first: int, stop: int, cuts=()) -> list[tuple[int, int, LayerPlan]]:
        """Frames [first, stop) of ``layer`` as pieces (start, end, plan) for the offline inference paths, cut
        at the frames ``cuts`` too. Each stretch between cuts is one sliced piece when a single width covers
        it; otherwise a sliced head up to the next router-frame boundary (a grouped plan's frames start on
        one) and a grouped plan over the router frames after it. Makes the decisions the frames need (as
        ``_spans`` does: after the stream's last router frame, frames take its decision)."""
        per = self._geometry.per_router_frame[layer]
        widths = tuple(self._geometry.widths[layer])
        last = self._num_router_frames - 1 if self._flushing else None
        final_router_frame = (stop - 1) // per if last is None else min((stop - 1) // per, last)
        if not self.routed:
            self._decide_static(final_router_frame)
        pieces = []
        bounds = [first, *sorted(c for c in set(cuts) if first < c < stop), stop]
        for low, high in itertools.pairwise(bounds):
            begin, end = low // per, (high - 1) // per + 1  # router frames [begin, end) hold these frames
            decided = self._decisions[begin : end if last is None else min(end, last + 1)]
            decided += decided[-1:] * (end - begin - len(decided))  # past the last router frame: its decision
            if min(decided) == max(decided):
                pieces.append((low, high, LayerPlan("sliced", width=widths[decided[0]])))
                continue
            head = min(high, -(-low // per) * per)
            if head > low:
                pieces.append((low, head, LayerPlan("sliced", width=widths[decided[0]])))
                decided = decided[1:]
            if head < high:
                choice = torch.tensor([decided])
                pieces.append((head, high, LayerPlan.grouped(choice, widths, per, high - head, runs=router_runs(choice))))
        return pieces

    def _frame_factor(self, layer: int, frame: int) -> int:
        """Factor index of an already decided frame of ``layer``."""
        router_frame = frame // self._geometry.per_router_frame[layer]
        if self._flushing:
            router_frame = min(router_frame, self._num_router_frames - 1)
        return self._decisions[router_frame]

    def _frame_width(self, layer: int, frame: int) -> int:
        """Internal width of an already decided frame of ``layer``."""
        return self._geometry.widths[layer][self._frame_factor(layer, frame)]

    def _encode(self, rows: torch.Tensor, final: bool):
        """Newly final up-sampled rows -> new frames of every encoder block (kept as skips), then the bottleneck."""
        usable = None
        if self.routed and not final:
            usable = min(len(self._decisions), self._geometry.num_router_frames(self._fed))
        parts = [rows]  # the new rows of the layer's input, as stored tensors
        for layer, block in enumerate(self.model.encoder):
            inputs = self._enc_inputs[layer]  # input rows from frame `first`'s first on
            for part in parts:
                inputs.append(part)
            first = self._enc_next[layer]
            stop = first + (len(inputs) - block.kernel_size) // block.stride + 1 if len(inputs) >= block.kernel_size else first
            if usable is not None:
                stop = min(stop, usable * self._geometry.per_router_frame[layer])
            stop = max(stop, first)
            count = stop - first
            if not count:
                parts = []
                continue
            stride, taps = block.stride, block.taps
            if count * block.channels >= BULK_ELEMENTS:  # the offline path for large pieces
                # cut at the first frame whose input window starts inside a large stored tensor and after the
                # last one whose window ends inside it: the frames between read a view of it
                cuts = [first + bound for start, end in inputs.large_parts(BULK_ELEMENTS // block.in_channels)
                        for bound in (-(-start // stride), max(0, (end - block.kernel_size) // stride + 1))]
                parts = []
                for a, b, plan in self._layer_plans(layer, first, stop, cuts):
                    window = inputs.get((a - first) * stride, (b - first + taps - 1) * stride)[None]
                    if (b - a) * block.channels >= BULK_ELEMENTS:
                        parts.append(encoder_forward(block, window, plan)[0])
                        continue
                    # few frames: the blocks' own products (the offline paths' buffers are sized for long calls)
                    tap_inputs = block.tap_views(window)  # taps x [1, b - a, S*C_in]
                    parts += [block.frames([tap[:, start - a : end - a] for tap in tap_inputs], width)[0]
                              for start, end, width in self._spans(layer, a, b)]
            else:
                tap_inputs = block.tap_views(inputs.get(0, (count + taps - 1) * stride)[None])  # taps x [1, count, S*C_in]
                parts = [block.frames([tap[:, start - first : end - first] for tap in tap_inputs], width)[0]
                         for start, end, width in self._spans(layer, first, stop)]
            inputs.drop(count * stride)
            self._enc_next[layer] = stop
            bottleneck_frames = range(first, stop)  # the deepest layer's new frames, after the loop
            for part in parts:
                self._skips[layer].append(part)
        if parts:
            rows = torch.cat(parts) if len(parts) > 1 else parts[0]
            step_inputs = (rows.to(self._dtype), self._bottleneck_state)
            if self.config.slim_bottleneck:  # and the groups each frame's factor runs (grouped GRU only)
                step_inputs += ([self.config.bottleneck_active_groups(self._frame_factor(self.config.depth - 1, frame))
                                 for frame in bottleneck_frames],)
            rows, self._bottleneck_state = self.model.bottleneck.step(*step_inputs)
            self._dec_inputs[-1].append(rows.to(self._compute_dtype))

    def _decode(self, final: bool) -> torch.Tensor:
        """Every decoder block computes its newly complete frames; an output position is final once every frame
        overlapping it is in (the overlap-add tail is carried). -> the outermost block's new rows [n, chout]."""
        parts = []
        for index, block in enumerate(self.model.decoder):
            layer = len(self.model.decoder) - 1 - index
            first = self._dec_next[layer]
            upper, skip = self._dec_inputs[layer], self._skips[layer]
            count = min(len(upper), len(skip))
            if not count and not final:
                return upper.empty[:0, :0]  # nothing new here means nothing new further out
            carry = self._carries[layer]
            if carry is None:
                carry = upper.empty.new_zeros(block.taps - 1, block.stride * block.out_channels)
            if count * block.channels >= BULK_ELEMENTS:
                parts, carry = self._decode_bulk(block, layer, first, count, upper, skip, carry, final)
            else:
                out, carry = self._decode_frames(block, layer, first, count, upper.get(0, count), skip.get(0, count),
                                                 carry, final)
                parts = [out]
            self._carries[layer] = carry
            upper.drop(count)
            skip.drop(count)
            self._dec_next[layer] = first + count
            if layer > 0:
                for part in parts:
                    self._dec_inputs[layer - 1].append(part)
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def _decode_frames(self, block, layer: int, first: int, count: int, upper, skip, carry, final: bool):
        """Decoder block ``layer`` on frames [first, first + count) (upper and skip rows [count, C]), frame by
        frame into the carried overlap-add sums. -> (output rows [n * S, C_out], the new carry: partial sums
        of the next taps - 1 row blocks)."""
        stride, out_channels = block.stride, block.out_channels
        blocks = torch.cat([carry, carry.new_zeros(count, stride * out_channels)])  # [taps - 1 + count, S*C_out]
        for start, end, width in self._spans(layer, first, first + count) if count else []:
            a, b = start - first, end - first
            hidden = block.hidden(upper[a:b] + skip[a:b], width)  # [n, w]
            block.overlap_add(hidden, width, blocks[a : b + block.taps - 1])
        done = count + (block.taps - 1 if final else 0)
        out = (blocks[:done] + block.row_bias(blocks.dtype)).reshape(done * stride, out_channels)
        return block.output_activation(out), blocks[done:]

    def _decode_bulk(self, block, layer: int, first: int, count: int, upper: _Rows, skip: _Rows, carry,
                     final: bool):
        """``_decode_frames`` through the offline ``decoder_forward`` for large pieces (see ``_layer_plans``; cut
        where the stored upper or skip rows change tensor, so that every piece reads views). -> (output rows
        as a list of tensors [n_i * S, C_out], the new carry).

        A large piece of frames [a, b) gives complete output row blocks [a + taps - 1, b): no frame outside it
        reaches them; its row blocks [a, b) are its part of the output. The other row blocks (the first
        taps - 1 of each large piece, which the frames before it also reach and the carry holds partial sums
        for; every row block of a small piece; the taps - 1 after the last frame) are summed here from the
        frames that reach them: each frame's hidden state at its own width, all its taps in one product, and
        the sums gathered per tap. The row blocks after the last frame are the new carry (at the end, output)."""
        stride, shift = block.stride, block.taps - 1
        row = stride * block.out_channels
        bias = block.row_bias(carry.dtype)
        end = first + count
        large = BULK_ELEMENTS // block.channels  # frames (and rows); smaller stored tensors are copied
        cuts = [first + bound for rows in (upper, skip) for span in rows.large_parts(large) for bound in span]
        parts, summed_here = [], []  # (first row block, rows [n, S*C_out]); row blocks computed frame by frame
        for a, b, plan in self._layer_plans(layer, first, end, cuts):
            if b - a >= max(large, shift + 1):  # [(b - a + shift) * S, C_out]: row blocks [a, b + shift), keep [a, b)
                piece = decoder_forward(block, upper.get(a - first, b - first)[None], skip.get(a - first, b - first)[None],
                                        plan)[0].view(-1, row)[: b - a]
                summed_here += range(a, a + shift)
            else:
                piece = carry.new_empty(b - a, row)
                summed_here += range(a, b)
            parts.append((a, piece))
        if final:  # the last row blocks, reached only by frames of this call
            parts.append((end, carry.new_empty(shift, row)))
        summed_here += range(end, end + shift)

        # every frame that reaches those row blocks: hidden state at its width, then all taps at once
        frames = sorted({f for r in summed_here for f in range(max(first, r - shift), min(end, r + 1))})
        position = {frame: index for index, frame in enumerate(frames)}
        products = carry.new_empty(len(frames), block.taps, row)  # frame f's contribution to row block f + tap
        by_width: dict[int, list[int]] = {}
        for frame in frames:
            by_width.setdefault(self._frame_width(layer, frame), []).append(frame)
        for width, group in by_width.items():
            taps = block.weights(width, "linear", carry.dtype)[2]  # [K*C_out, w], rows (tap, sample, channel)
            indices = torch.tensor([position[f] for f in group])
            summed = self._frame_rows(upper, first, group) + self._frame_rows(skip, first, group)
            hidden = block.hidden(summed, width)  # [m, w]
            products[indices] = F.linear(hidden, taps).view(len(group), block.taps, row)
        totals = carry.new_zeros(len(summed_here), row)
        for tap in range(block.taps):
            pairs = [(i, position[r - tap]) for i, r in enumerate(summed_here) if first <= r - tap < end]
            if pairs:
                rows_at, frames_at = torch.tensor(pairs).unbind(1)
                totals.index_add_(0, rows_at, products[frames_at, tap])
        carried = [(i, r - first) for i, r in enumerate(summed_here) if r < first + shift]
        if carried:
            rows_at, carry_at = torch.tensor(carried).unbind(1)
            totals.index_add_(0, rows_at, carry[carry_at])
        new_carry = carry.new_zeros(shift, row)
        targets = {}  # part index -> ([rows in the part], [rows of totals])
        for i, r in enumerate(summed_here):
            if r >= end:  # past this call's frames: carried (final: output too)
                new_carry[r - end] = totals[i]
                if not final:
                    continue
            index = next(k for k in range(len(parts) - 1, -1, -1) if parts[k][0] <= r)
            local, source = targets.setdefault(index, ([], []))
            local.append(r - parts[index][0])
            source.append(i)
        for index, (local, source) in targets.items():
            values = totals[torch.tensor(source)] + bias
            parts[index][1][torch.tensor(local)] = block.output_activation(values)
        return [rows.reshape(-1, block.out_channels) for _, rows in parts], new_carry

    @staticmethod
    def _frame_rows(rows: _Rows, first: int, frames: list[int]) -> torch.Tensor:
        """Rows of the given frames (sorted; ``rows`` starts at frame ``first``) as one tensor [m, C]: runs of
        consecutive frames are read as windows."""
        runs, start = [], 0
        for index in range(1, len(frames) + 1):
            if index == len(frames) or frames[index] != frames[index - 1] + 1:
                runs.append(rows.get(frames[start] - first, frames[index - 1] + 1 - first))
                start = index
        return runs[0] if len(runs) == 1 else torch.cat(runs)


__all__ = ["AdaSlimStreamer", "final_output_samples", "stream_latency"]
