"""Adaptive-slimming DEMUCS (Miccini et al., WASPAA 2025, arXiv 2507.04879) as a transformers model.

Read top to bottom: resampling -> slimmable blocks -> execution plans -> bottleneck -> router -> output ->
the ``PreTrainedModel``.

The backbone is facebookresearch/denoiser's causal DEMUCS (Defossez et al. 2020). Each encoder and decoder
block can run its INTERNAL feature space at a utilization factor u (the first floor(C * u) channels);
block inputs, outputs, skips and the bottleneck stay full width. A tiny router picks u per frame.

One forward, three execution paths with the same result (tests assert <= 1e-5):
  1. masked  (training with the router): one full-width pass, internal activations multiplied by a
     per-frame channel mask built from the straight-through one-hot, so gradients reach the router;
  2. sliced  (a static factor): weights sliced to the factor's channels, cost proportional to u;
  3. grouped (per-frame choices at inference): per block, the frames of each router decision are
     gathered by chosen factor and computed with that factor's sliced weights.

All block math is written time-major ([B, frames, channels]) as matrix products: since kernel_size is a
multiple of stride, a strided K-tap conv over an input viewed as S-sample blocks is K/S matmuls with no
im2col copy, and slicing the weights shrinks those matmuls in proportion (F.conv1d does not scale down).

Symbols: B batch, T input samples, L padded length (``valid_length``), U resample factor, N_l frames of
layer l, N router frames, J utilization factors, C_l channels of layer l, w internal (slimmed) width.

Imports only torch, transformers and siblings: the file travels to the Hub as remote code.
"""

import functools
import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_adaslim import AdaSlimConfig
from .losses import (
    balance_loss,
    share_floor_loss,
    choice_fractions,
    efficiency_loss,
    polarity_loss,
    si_sdr_loss,
    pause_residual_loss,
    speech_enhancement_loss,
    stft_magnitudes,
)
from .macs import call_macs, frames_per_router_frame

# ----------------------------------------------------------------------------------------------------
# Windowed-sinc resampling by 2 (Smith & Gossett 1984), as DEMUCS does around the network.
# ----------------------------------------------------------------------------------------------------

SINC_ZEROS = 56


def sinc_kernel(zeros: int = SINC_ZEROS, dtype=torch.float32, device=None) -> torch.Tensor:
    """Interpolation kernel [1, 1, 2 * zeros]: sinc at half-sample offsets times the odd samples of a Hann window."""
    window = torch.hann_window(4 * zeros + 1, periodic=False, dtype=torch.float64)[1::2]
    t = torch.linspace(-zeros + 0.5, zeros - 0.5, 2 * zeros, dtype=torch.float64) * math.pi
    return (torch.sin(t) / t * window).to(dtype=dtype, device=device).view(1, 1, -1)


@functools.lru_cache(maxsize=8)
def _sinc_toeplitz(block: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[block + taps - 1, block] matrix whose product with a window of input gives ``block`` filter outputs.
    Built outside inference mode, so that the cached matrix also serves later calls under autograd."""
    with torch.inference_mode(False), torch.no_grad():
        kernel = sinc_kernel(dtype=dtype, device=device).flatten()
        lag = torch.arange(block + kernel.numel() - 1, device=device)[:, None] - torch.arange(block, device=device)
        inside = (lag >= 0) & (lag < kernel.numel())
        zero = torch.zeros((), dtype=dtype, device=device)
        return torch.where(inside, kernel[lag.clamp(0, kernel.numel() - 1)], zero)


def sinc_filter(signal: torch.Tensor, block: int = 64, padding: int = SINC_ZEROS) -> torch.Tensor:
    """F.conv1d(signal [M, 1, T], sinc_kernel(), padding=padding) -> [M, 1, T + 2 padding - 2 SINC_ZEROS + 1]
    (T + 1 at the default padding; ``padding=0`` gives only the outputs whose window lies inside the signal).

    Computed as one matrix product over overlapping windows of ``block`` outputs (a banded Toeplitz matrix):
    much faster on CPU than a long single-channel convolution, for (block + taps - 1) / taps times the
    multiply-adds (1.6x at block 64; blocks of 256 cost 30% more time at 10 s, 4x up and down, 1 thread).
    Short signals gain too: a single-channel conv1d of a few hundred samples takes PyTorch's slow generic path
    (~0.4 ms a call on this CPU; the streamer makes four such calls per 16 ms hop)."""
    rows, _, time = signal.shape
    taps = 2 * SINC_ZEROS
    out_length = time + 2 * padding - taps + 1
    num_blocks = -(-out_length // block)
    padded = F.pad(signal, (padding, padding + num_blocks * block - out_length))
    windows = padded.unfold(-1, block + taps - 1, block)  # [M, 1, num_blocks, block + taps - 1]
    out = windows @ _sinc_toeplitz(block, signal.dtype, signal.device)  # [M, 1, num_blocks, block]
    return out.reshape(rows, 1, num_blocks * block)[..., :out_length]


def upsample2(signal: torch.Tensor) -> torch.Tensor:
    """[..., T] -> [..., 2T]: keep every input sample, interleave sinc-interpolated half-sample values."""
    *other, time = signal.shape
    halfway = sinc_filter(signal.reshape(-1, 1, time))[..., 1:].reshape(*other, time)
    return torch.stack([signal, halfway], dim=-1).reshape(*other, 2 * time)


def downsample2(signal: torch.Tensor) -> torch.Tensor:
    """[..., T] -> [..., ceil(T / 2)]: average even samples with sinc-interpolated odd samples."""
    if signal.shape[-1] % 2:
        signal = F.pad(signal, (0, 1))
    even, odd = signal[..., ::2], signal[..., 1::2]
    *other, time = odd.shape
    interpolated = sinc_filter(odd.reshape(-1, 1, time))[..., :-1].reshape(*other, time)
    return (even + interpolated) * 0.5


# ----------------------------------------------------------------------------------------------------
# Matrix products of slimmed shapes. A slimmed block multiplies very tall matrices (every frame of a batch)
# by narrow ones (a few channels). MKL handles some of those shapes badly, and autograd's operand order for
# weight gradients is 10-15x slower than the other order on some of them (measured on this CPU, one thread:
# [512672, 64]^T @ [512672, 4] 270 ms, as ([512672, 4]^T @ [512672, 64])^T 18 ms; a product
# [128168, 8] @ [8, 128] 20 ms in one call, 9 ms in tiles of 2048 rows). ``linear`` gives F.linear's values
# in the faster forms.
# ----------------------------------------------------------------------------------------------------

LINEAR_TILE_ROWS = 2048


def _product(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor:
    """a [M, K] @ b [K, N] (+ bias [N]) into out [M, N]; in float32, in tiles of LINEAR_TILE_ROWS rows when a
    is tall and narrow and the output wide (K <= 64, N >= 32, M > 8 tiles), where a single call is up to 2x
    slower. bfloat16 products run as one call (oneDNN's kernels: tiles measured up to 2x slower there)."""
    rows = a.shape[0]
    untiled = rows <= 8 * LINEAR_TILE_ROWS or a.shape[1] > 64 or b.shape[1] < 32 or a.dtype != torch.float32
    tile = rows if untiled else LINEAR_TILE_ROWS
    for start in range(0, rows, tile):
        end = min(start + tile, rows)
        if bias is None:
            torch.mm(a[start:end], b, out=out[start:end])
        else:
            torch.addmm(bias, a[start:end], b, out=out[start:end])
    return out


def _transposed_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a [M, P]^T @ b [M, Q] -> [P, Q], as written or as (b^T a)^T: the narrower operand goes transposed
    on the left (the fast order for tall operands)."""
    return torch.mm(a.t(), b) if a.shape[1] <= b.shape[1] else torch.mm(b.t(), a).t()


class _Linear(torch.autograd.Function):
    """F.linear(x, weight, bias) for x [..., K], weight [N, K], bias [N] or None, in the fast forms above."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        rows = x.reshape(-1, x.shape[-1])  # [M, K]
        ctx.save_for_backward(rows, weight)
        ctx.has_bias, ctx.x_shape = bias is not None, x.shape
        out = x.new_empty(*x.shape[:-1], weight.shape[0])  # [..., N], not a view (callers add into it in place)
        _product(rows, weight.t(), bias, out.view(-1, weight.shape[0]))
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        rows, weight = ctx.saved_tensors
        grad = grad_out.reshape(-1, weight.shape[0])  # [M, N]
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.mm(grad, weight).view(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            grad_weight = _transposed_product(grad, rows)  # [N, K]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(dim=0)
        return grad_x, grad_weight, grad_bias


class _LinearGLU(torch.autograd.Function):
    """F.glu(F.linear(x, weight, bias), dim=-1) for x [..., K], weight [2C, K] (value rows, then gate rows),
    bias [2C] or None -> [..., C].

    Autograd's GLU saves the [..., 2C] product and its backward recomputes the sigmoid of the gate half from
    that strided view: on a tall, wide layer (the two outermost encoder blocks) that backward took 3-5x the
    forward. Here the value and gate halves are computed as two contiguous products, the sigmoid s once, and
    the backward needs only s and the output o = value * s: d value = g * s, d gate = g * o * (1 - s). The
    saved tensors are as large as autograd's (two [..., C]); no [..., 2C] product is ever written.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        rows = x.reshape(-1, x.shape[-1])  # [M, K]
        channels = weight.shape[0] // 2
        weights = weight[:channels], weight[channels:]  # value [C, K], gate [C, K]
        biases = (None, None) if bias is None else (bias[:channels], bias[channels:])
        value = _product(rows, weights[0].t(), biases[0], rows.new_empty(rows.shape[0], channels))  # [M, C]
        gate = _product(rows, weights[1].t(), biases[1], rows.new_empty(rows.shape[0], channels))
        sigmoid = gate.sigmoid_()  # [M, C], in place: the gate's pre-activation is not needed again
        out = value.mul_(sigmoid).view(*x.shape[:-1], channels)  # [..., C]: the output, also what the backward needs
        ctx.save_for_backward(rows, weight, sigmoid, out)
        ctx.has_bias, ctx.x_shape = bias is not None, x.shape
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        rows, weight, sigmoid, out = ctx.saved_tensors
        channels = weight.shape[0] // 2
        grad = grad_out.reshape(-1, channels)  # [M, C]
        grad_value = grad * sigmoid
        grad_gate = grad * out.view(-1, channels)
        grad_gate.addcmul_(grad_gate, sigmoid, value=-1)  # g * o * (1 - s)
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.mm(grad_value, weight[:channels])
            grad_x.addmm_(grad_gate, weight[channels:])
            grad_x = grad_x.view(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.cat([_transposed_product(grad_value, rows), _transposed_product(grad_gate, rows)])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = torch.cat([grad_value.sum(dim=0), grad_gate.sum(dim=0)])
        return grad_x, grad_weight, grad_bias


def linear_glu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.glu(F.linear(x, weight, bias), dim=-1): x [..., K], weight [2C, K] (value rows, then gate rows) ->
    [..., C]; with autograd on tall inputs as ``_LinearGLU`` (a backward without the strided sigmoid)."""
    if _plain_product(x) or not _records_gradient(x, weight, bias):
        return F.glu(linear(x, weight, bias), dim=-1)
    return _LinearGLU.apply(x, weight, bias)


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The reduced-precision dtype an enclosing ``torch.autocast`` region asks for on ``device_type`` ("cpu",
    "cuda"), or None outside one. The model reads it once per call and runs its encoder and decoder blocks in
    it explicitly (their products are written with ``out=`` buffers, which autocast cannot re-type); the
    normalisation, resampling, router, recurrent bottleneck and losses stay in the parameters' dtype."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


def _tracing() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def _plain_product(x: torch.Tensor) -> bool:
    """Whether x [..., K] goes to the plain F.linear: traced graphs, and inputs of at most 8 tiles of rows."""
    return _tracing() or x.numel() <= 8 * LINEAR_TILE_ROWS * x.shape[-1]


def _records_gradient(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd records an operation on these tensors (None entries are skipped)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias): x [..., K], weight [N, K] -> [..., N], computed as ``_Linear`` does for tall
    inputs (more than 8 tiles of rows); shorter ones (a stream's few frames) go to F.linear, whose per-call
    overhead is lower and whose shapes are then harmless. Traced graphs (torch.export, torch.compile, ONNX)
    get the plain F.linear: their shapes may be symbolic, and the compiler picks its own kernels."""
    if _plain_product(x):
        return F.linear(x, weight, bias)
    if _records_gradient(x, weight, bias):
        return _Linear.apply(x, weight, bias)
    out = x.new_empty(*x.shape[:-1], weight.shape[0])
    _product(x.reshape(-1, x.shape[-1]), weight.t(), bias, out.view(-1, weight.shape[0]))
    return out


# ----------------------------------------------------------------------------------------------------
# Slimmable blocks. Parameters keep denoiser's conv layouts (so checkpoints convert one to one); the
# sliced, matmul-ready views are derived per call from the width passed in as an argument.
# ----------------------------------------------------------------------------------------------------


def sliced_weights(block: nn.Module, width: int, build, dtype: torch.dtype | None = None):
    """``build(width)``: a block's weights sliced to ``width`` and laid out for matmuls (copies of up to 4 MB
    for the deepest block), in ``dtype`` (the compute dtype of the activations they multiply; None: the
    parameters' own). Without autograd they are kept and reused until a parameter changes (storage,
    version counter or dtype), which saves ~15% of a full-width call; with autograd they are always rebuilt
    so gradients flow to the parameters (through the cast, in the parameters' dtype). One cache per
    ``build`` (layout)."""
    if torch.is_grad_enabled():
        return _cast(build(width), dtype)
    key = (width, dtype) + tuple((p.data_ptr(), p._version, p.dtype) for p in block.parameters())
    cache = block.__dict__.setdefault("_sliced_weight_cache", {}).setdefault(build.__name__, {})
    if key not in cache:
        if len(cache) >= 8:  # a stale entry per factor and dtype at most, after the parameters changed
            cache.clear()
        cache[key] = _cast(build(width), dtype)
    return cache[key]


def _cast(tensors: tuple, dtype: torch.dtype | None) -> tuple:
    """The floating-point tensors of a tuple in ``dtype`` (unchanged when None or already in it)."""
    if dtype is None:
        return tensors
    return tuple(t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in tensors)


class SlimEncoderBlock(nn.Module):
    """Conv1d(C_in, C, K, S) -> ReLU -> [internal: first w of C channels] -> Conv1d(C, E*C, 1) -> GLU.

    Slimming keeps conv_in's first w output channels and conv_out's first w input channels.
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int, stride: int, glu: bool):
        super().__init__()
        self.in_channels, self.channels = in_channels, channels
        self.kernel_size, self.stride, self.glu = kernel_size, stride, glu
        self.conv_in = nn.Conv1d(in_channels, channels, kernel_size, stride)
        self.conv_out = nn.Conv1d(channels, channels * (2 if glu else 1), 1)

    @property
    def taps(self) -> int:
        """Number of S-sample input blocks one output frame reads (K / S)."""
        return self.kernel_size // self.stride

    def tap_views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [B, N_in, C_in] (N_in = (N_out + taps - 1) * S) -> taps views [B, N_out, S * C_in], no copy."""
        batch, n_in, c_in = x.shape
        blocks = x.reshape(batch, n_in // self.stride, self.stride * c_in)
        n_out = blocks.shape[1] - self.taps + 1
        return [blocks[:, tap : tap + n_out] for tap in range(self.taps)]

    def frame_weights(self, width: int, dtype: torch.dtype | None = None):
        """Sliced weights in F.linear layout: taps x [w, S*C_in] and bias [w]; 1x1 [E*C, w] and bias [E*C]."""
        return sliced_weights(self, width, self._slice_weights, dtype)

    def _slice_weights(self, width: int):
        weight = self.conv_in.weight[:width]  # [w, C_in, K]
        taps = weight.permute(0, 2, 1).reshape(width, self.taps, self.stride * self.in_channels)
        return taps, self.conv_in.bias[:width], self.conv_out.weight[:, :width, 0], self.conv_out.bias

    def inference_weights(self, width: int, dtype: torch.dtype | None = None):
        """Sliced weights laid out for matmuls at inference (cached): conv_in taps [taps, S*C_in, w] and bias
        [w], the same taps side by side [S*C_in, taps * w] (one product over a window of input blocks), and
        the 1x1 conv [w, E*C] and its bias [E*C]."""
        return sliced_weights(self, width, self._inference_weights, dtype)

    def _inference_weights(self, width: int):
        weight = self.conv_in.weight[:width]  # [w, C_in, K]
        taps = weight.permute(2, 1, 0).reshape(self.taps, self.stride * self.in_channels, width).contiguous()
        side_by_side = taps.permute(1, 0, 2).reshape(self.stride * self.in_channels, -1).contiguous()
        out_weight = self.conv_out.weight[:, :width, 0].t().contiguous()  # [w, E*C]
        return taps, self.conv_in.bias[:width], side_by_side, out_weight, self.conv_out.bias

    def reads_window_once(self, width: int) -> bool:
        """Whether inference computes all taps of a window of input blocks as one product (``tap_products``):
        where the taps' products are no wider than the input (taps * w <= S*C_in: every layer but the first)."""
        return self.taps * width <= self.stride * self.in_channels

    def tap_products(self, window: torch.Tensor, width: int, out: torch.Tensor) -> torch.Tensor:
        """Inference: every tap's product of each input block, window [m, S*C_in] -> out [m, taps * w]."""
        return torch.mm(window, self.inference_weights(width, window.dtype)[2], out=out)

    def _internal(self, inputs, width: int) -> torch.Tensor:
        """Inference: the internal feature space [n, w] of n frames, from their tap inputs (a list of
        [n, S*C_in]) or, where ``reads_window_once``, from the tap products [n + taps - 1, taps * w] of their
        window of input blocks, whose per-tap parts are summed at their shifts."""
        dtype = inputs.dtype if isinstance(inputs, torch.Tensor) else inputs[0].dtype
        taps, bias = self.inference_weights(width, dtype)[:2]
        if isinstance(inputs, torch.Tensor):
            n = inputs.shape[0] - self.taps + 1
            hidden = torch.add(inputs[:n, :width], bias)
            for tap in range(1, self.taps):
                hidden += inputs[tap : tap + n, tap * width : (tap + 1) * width]
            return hidden.relu_()
        hidden = torch.addmm(bias, inputs[0], taps[0])  # [n, w]
        for tap in range(1, self.taps):
            hidden.addmm_(inputs[tap], taps[tap])
        return hidden.relu_()

    def forward_all_frames(self, x: torch.Tensor, width: int, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Every frame at one width, for autograd (training): x [B, N_in, C_in] -> [B, N_out, C].

        Where the taps' products are no wider than the input (taps * w <= S * C_in: every layer but the
        first), all taps are one product over the input's S-sample blocks, whose per-tap parts are summed at
        their shifts; the backward then writes the input's gradient once, where per-tap views of the input
        would each back-propagate a zero-filled input-sized tensor."""
        if self.taps * width > self.stride * self.in_channels:
            return self.frames(self.tap_views(x), width, mask)
        taps, bias, out_weight, out_bias = self.frame_weights(width, x.dtype)  # taps [w, taps, S*C_in]
        batch, n_in, c_in = x.shape
        blocks = x.reshape(batch, n_in // self.stride, self.stride * c_in)  # [B, N_in / S, S*C_in]
        n_out = blocks.shape[1] - self.taps + 1
        products = linear(blocks, taps.transpose(0, 1).reshape(self.taps * width, -1))  # [B, N_in / S, taps*w]
        per_tap = products.unflatten(-1, (self.taps, width)).unbind(-2)  # taps x [B, N_in / S, w]
        hidden = per_tap[0][:, :n_out] + bias
        for tap in range(1, self.taps):
            hidden = hidden + per_tap[tap][:, tap : tap + n_out]
        hidden = F.relu(hidden)  # [B, N_out, w]: the internal feature space
        if mask is not None:
            hidden = hidden * mask
        if self.glu:
            return linear_glu(hidden, out_weight, out_bias)  # [B, N_out, C]
        return F.relu(linear(hidden, out_weight, out_bias))

    def frames(self, tap_inputs: list[torch.Tensor], width: int, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Output frames from their tap inputs ([..., n, S*C_in] each) at internal width w -> [..., n, C]."""
        taps, bias, out_weight, out_bias = self.frame_weights(width, tap_inputs[0].dtype)
        hidden = linear(tap_inputs[0], taps[:, 0], bias)
        for tap in range(1, self.taps):
            hidden = hidden.add_(linear(tap_inputs[tap], taps[:, tap]))
        hidden = F.relu(hidden)  # [..., n, w]: the internal feature space
        if mask is not None:
            hidden = hidden * mask
        if self.glu:
            return linear_glu(hidden, out_weight, out_bias)  # [..., n, C]
        return F.relu(linear(hidden, out_weight, out_bias))

    def frames_into(self, inputs, width: int, out: torch.Tensor, scratch: torch.Tensor):
        """Inference (no autograd): ``frames`` of n frames at width w from their tap inputs or tap products
        (see ``_internal``), written into ``out`` [n, C] (a view of the layer's output) in one pass: the 1x1
        conv (bias included) goes to ``scratch`` [n, E*C] (reused across tiles, so it stays in cache) and its
        GLU into ``out``."""
        out_weight, out_bias = self.inference_weights(width, out.dtype)[3:]  # [w, E*C], [E*C]
        hidden = self._internal(inputs, width)  # [n, w]: the internal feature space
        if not self.glu:
            return torch.addmm(out_bias, hidden, out_weight, out=out).relu_()
        products = torch.addmm(out_bias, hidden, out_weight, out=scratch)  # [n, 2C]: value and gate halves
        return torch.ops.aten.glu.out(products, -1, out=out)


class SlimDecoderBlock(nn.Module):
    """Conv1d(C, E*C, 1) -> GLU -> [internal: w of C channels] -> ConvTranspose1d(C, C_out, K, S) -> ReLU.

    Slimming is GLU-aware: conv_in keeps rows [0, w) of the value half AND rows [C, C + w) of the gate half;
    conv_tr keeps its first w input channels. No ReLU after the outermost block.
    """

    def __init__(self, channels: int, out_channels: int, kernel_size: int, stride: int, glu: bool, last: bool):
        super().__init__()
        self.channels, self.out_channels = channels, out_channels
        self.kernel_size, self.stride, self.glu, self.last = kernel_size, stride, glu, last
        self.conv_in = nn.Conv1d(channels, channels * (2 if glu else 1), 1)
        self.conv_tr = nn.ConvTranspose1d(channels, out_channels, kernel_size, stride)

    @property
    def taps(self) -> int:
        return self.kernel_size // self.stride

    def frame_weights(self, width: int, dtype: torch.dtype | None = None):
        """Sliced weights in F.linear layout: 1x1 [E*w, C] (GLU halves sliced separately) and bias,
        transposed-conv taps [K*C_out, w] ordered (tap, output channel)."""
        return sliced_weights(self, width, self._slice_weights, dtype)

    def _slice_weights(self, width: int):
        weight, bias = self.conv_in.weight[:, :, 0], self.conv_in.bias
        if self.glu:
            rows = slice(0, width), slice(self.channels, self.channels + width)
            weight = torch.cat([weight[rows[0]], weight[rows[1]]])
            bias = torch.cat([bias[rows[0]], bias[rows[1]]])
        else:
            weight, bias = weight[:width], bias[:width]
        taps = self.conv_tr.weight[:width].permute(2, 1, 0).reshape(self.kernel_size * self.out_channels, width)
        return weight, bias, taps

    def inference_weights(self, width: int, dtype: torch.dtype | None = None):
        """Sliced weights laid out for ``addmm`` at inference (cached): the 1x1 conv [C, E*w] (GLU: the value
        rows' w columns, then the gate rows' w) and its bias [E*w], transposed-conv taps [taps, w, S*C_out]
        with columns ordered (sample within the stride, output channel)."""
        return sliced_weights(self, width, self._inference_weights, dtype)

    def _inference_weights(self, width: int):
        in_weight, in_bias, _ = self._slice_weights(width)  # [E*w, C] (GLU halves sliced separately), [E*w]
        taps = self.conv_tr.weight[:width].permute(0, 2, 1)  # [w, K, C_out], K = taps * S
        taps = taps.reshape(width, self.taps, self.stride * self.out_channels).transpose(0, 1).contiguous()
        return in_weight.t().contiguous(), in_bias, taps

    def hidden_into(self, x: torch.Tensor, width: int, mask: torch.Tensor | None = None, out=None) -> torch.Tensor:
        """Inference: ``hidden`` of 2-D x [n, C] at width w -> [n, w] (into ``out`` when given): one narrow
        product for both GLU halves, then the GLU in one pass."""
        in_weight, in_bias, _ = self.inference_weights(width, x.dtype)  # [C, E*w], [E*w]
        products = torch.addmm(in_bias, x, in_weight)  # [n, E*w]
        if self.glu:
            hidden = torch.ops.aten.glu.out(products, -1, out=out) if out is not None else F.glu(products, dim=-1)
        else:
            hidden = products.relu_() if out is None else torch.clamp_min(products, 0, out=out)
        return hidden if mask is None else hidden.mul_(mask)

    def hidden(self, x: torch.Tensor, in_weight: torch.Tensor, bias: torch.Tensor, mask=None) -> torch.Tensor:
        """The internal feature space: 1x1 conv then GLU (or ReLU), times ``mask``: [..., n, C] -> [..., n, w]."""
        hidden = linear_glu(x, in_weight, bias) if self.glu else F.relu(linear(x, in_weight, bias))
        return hidden if mask is None else hidden * mask

    def forward_all_frames(self, x: torch.Tensor, width: int, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Every frame at one width: x [B, N, C] -> [B, (N + taps - 1) * S, C_out] (+ bias, ReLU).

        Output block b is sum over taps t of hidden[b - t] @ T_t, computed as matmuls over shifted views of the
        (narrow) zero-padded hidden activations, so no [B, N, K*C_out] intermediate is written."""
        in_weight, bias, taps = self.frame_weights(width, x.dtype)
        hidden = self.hidden(x, in_weight, bias, mask)  # [B, N, w]
        batch, n_frames, _ = hidden.shape
        shift = self.taps - 1
        padded = F.pad(hidden, (0, 0, shift, shift))  # [B, N + 2 * shift, w]
        per_tap = taps.reshape(self.taps, self.stride * self.out_channels, width)
        out = linear(padded[:, shift : shift + n_frames + shift], per_tap[0], self._row_bias(x.dtype))
        for tap in range(1, self.taps):
            out = out.add_(linear(padded[:, shift - tap : shift - tap + n_frames + shift], per_tap[tap]))
        out = out.reshape(batch, -1, self.out_channels)  # [B, (N + taps - 1) * S, C_out]
        return out if self.last else out.relu_()  # in place: out is this block's own sum of products

    def forward_spans(self, x: torch.Tensor, skip: torch.Tensor, spans: list, valid: torch.Tensor | None = None):
        """x + skip [B, N, C] -> [B, (N + taps - 1) * S, C_out] with each span (item, start, stop, width) of
        frames at its own width (frames in no span contribute nothing), inference without autograd: every
        output row is computed completely and once, in cache-sized tiles of rows (``_rows_into``)."""
        batch, n_frames, _ = x.shape
        out = x.new_empty(batch, n_frames + self.taps - 1, self.stride * self.out_channels)
        for item in range(batch):
            self._rows_into(out, x, skip, item, [span[1:] for span in spans if span[0] == item], valid)
        return out.view(batch, -1, self.out_channels)

    def _rows_into(self, out, x, skip, item: int, spans: list, valid=None):
        """Every output row of item ``item`` from its spans (first, stop, width), tile by tile of frames: row
        r = bias + sum over taps t of hidden[r - t] @ T_t of frame r - t's width (overlap-add). Each frame's
        hidden state is computed once, in the tile that holds it; a tile's frames complete the rows up to its
        last frame, which get their ReLU while they are in cache (the last taps - 1 rows at the end).
        out [B, N + taps - 1, S*C_out]."""
        n_frames, shift = x.shape[1], self.taps - 1
        bias = self.conv_tr.bias.repeat(self.stride)  # [S*C_out]
        out[item, :shift].copy_(bias)
        for start, end in _tiles(n_frames, max(self.channels, self.stride * self.out_channels)):
            out[item, start + shift : end + shift].copy_(bias)  # rows this tile's frames reach first
            for first, stop, width in spans:
                low, high = max(first, start), min(stop, end)  # frames of the span in this tile
                if low >= high:
                    continue
                mask = None if valid is None else valid[item, low:high]
                hidden = self.hidden_into(torch.add(x[item, low:high], skip[item, low:high]), width, mask)  # [m, w]
                per_tap = self.inference_weights(width, out.dtype)[-1]  # [taps, w, S*C_out]
                for tap in range(self.taps):  # frame f adds to row f + tap
                    out[item, low + tap : high + tap].addmm_(hidden, per_tap[tap])
            if not self.last:
                out[item, start:end].relu_()  # no later frame reaches these rows
        if not self.last:
            out[item, n_frames:].relu_()

    def forward_gathered_inference(self, x: torch.Tensor, skip: torch.Tensor, plan) -> torch.Tensor:
        """``forward_gathered`` of x + skip without autograd: per item and factor, the chosen router frames of
        x and skip are gathered as whole [F, C] blocks (``index_select``), computed at the factor's width, and
        each tap's contributions added back as whole [F, S*C_out] blocks (``index_add_``) at their shift; the
        last router frame (which runs to the layer's end) is a span."""
        batch, n_frames, channels = x.shape
        num_router_frames, per = plan.choice.shape[1], plan.per_router_frame
        split = (num_router_frames - 1) * per  # frames of the regular router frames
        row_width = self.stride * self.out_channels
        out = self._bias_rows(x)  # [B, N + taps - 1, S*C_out]
        router_frames = max(1, TILE_FLOATS // (max(channels, row_width) * per))  # per gather: tile-sized
        # buffers reused by every gather (fresh memory per gather would cost page faults)
        summed_buffer, skip_buffer = x.new_empty(2, router_frames, per * channels)
        hidden_buffer = x.new_empty(router_frames * per * max(plan.widths))
        contribution_buffer = x.new_empty(router_frames, per * row_width)
        for item, width, chosen in _factor_groups(plan, router_frames):  # chosen: [n] router frame indices
            n = len(chosen)
            summed = torch.index_select(x[item, :split].reshape(-1, per * channels), 0, chosen, out=summed_buffer[:n])
            summed += torch.index_select(skip[item, :split].reshape(-1, per * channels), 0, chosen,
                                         out=skip_buffer[:n])  # [n, F*C]
            mask = None
            if plan.valid is not None:
                mask = plan.valid[item, :split].reshape(-1, per).index_select(0, chosen).view(n * per, 1)
            hidden = self.hidden_into(summed.view(n * per, channels), width, mask,
                                      out=hidden_buffer[: n * per * width].view(n * per, width))  # [n*F, w]
            per_tap = self.inference_weights(width, out.dtype)[-1]  # [taps, w, S*C_out]
            for tap in range(self.taps):  # rows r*F + f + tap of the output, for chosen router frames r
                contribution = contribution_buffer[:n]  # [n, F*S*C_out]
                torch.mm(hidden, per_tap[tap], out=contribution.view(n * per, row_width))
                out[item, tap : tap + split].view(-1, per * row_width).index_add_(0, chosen, contribution)
        for item, tail in enumerate(plan.choice[:, -1].tolist()):
            if tail >= 0:
                self._add_span(out, x, skip, item, split, n_frames, plan.widths[tail], plan.valid)
        out = out.view(batch, -1, self.out_channels)
        return out if self.last else out.relu_()

    def _row_bias(self, dtype: torch.dtype) -> torch.Tensor:
        """The transposed conv's bias for one output row of S samples: [S*C_out], in ``dtype``."""
        return self.conv_tr.bias.repeat(self.stride).to(dtype)

    def _bias_rows(self, x: torch.Tensor) -> torch.Tensor:
        """The output before any contribution: [B, N + taps - 1, S*C_out], every row the transposed conv's bias."""
        out = x.new_empty(x.shape[0], x.shape[1] + self.taps - 1, self.stride * self.out_channels)
        return out.copy_(self.conv_tr.bias.repeat(self.stride))

    def _add_span(self, out, x, skip, item: int, first: int, stop: int, width: int, valid=None):
        """Add the contributions of frames [first, stop) of item ``item`` of x + skip at ``width`` into ``out``
        [B, N + taps - 1, S*C_out] in place, in cache-sized tiles."""
        per_tap = self.inference_weights(width, out.dtype)[-1]  # [taps, w, S*C_out]
        for start, end in _tiles(stop, max(self.channels, self.stride * self.out_channels), first):
            mask = None if valid is None else valid[item, start:end]
            hidden = self.hidden_into(torch.add(x[item, start:end], skip[item, start:end]), width, mask)
            for tap in range(self.taps):  # [n, w] @ [w, S*C_out] into output rows start + tap ...
                out[item, start + tap : end + tap].addmm_(hidden, per_tap[tap])

    def forward_gathered(self, x: torch.Tensor, plan) -> torch.Tensor:
        """x [B, N, C] (skip added) -> [B, (N + taps - 1) * S, C_out]: per factor, the frames of the router
        decisions that chose it are gathered, computed at its width, and each tap's contributions are added
        into the output rows they belong to (``index_add_``: overlap-add is linear)."""
        batch, n_frames, _ = x.shape
        num_router_frames, per = plan.choice.shape[1], plan.per_router_frame
        out_rows = n_frames + self.taps - 1
        out = self._row_bias(x.dtype).repeat(batch, out_rows, 1)  # [B, N + taps - 1, S*C_out]
        flat = out.view(batch * out_rows, -1)
        x_regular, x_tail = _segment_views(x, num_router_frames, per)
        valid_regular, valid_tail = (None, None) if plan.valid is None else _segment_views(plan.valid, num_router_frames, per)
        first_row = (num_router_frames - 1) * per  # the tail's first frame
        for index, width in enumerate(plan.widths):
            items, frames = (plan.choice[:, :-1] == index).nonzero(as_tuple=True)
            tail_items = (plan.choice[:, -1] == index).nonzero(as_tuple=True)[0]
            if not len(items) and not len(tail_items):
                continue
            in_weight, bias, taps = self.frame_weights(width, x.dtype)
            per_tap = taps.reshape(self.taps, -1, width)
            groups = []
            if len(items):  # [n, F, C] rows; output row of frame f of router frame r: r * F + f
                rows = (items * out_rows + frames * per)[:, None] + torch.arange(per, device=x.device)
                groups.append((x_regular[items, frames], None if valid_regular is None else valid_regular[items, frames], rows))
            if len(tail_items):
                rows = (tail_items * out_rows + first_row)[:, None] + torch.arange(x_tail.shape[1], device=x.device)
                groups.append((x_tail[tail_items], None if valid_tail is None else valid_tail[tail_items], rows))
            for inputs, valid, rows in groups:
                hidden = self.hidden(inputs, in_weight, bias, valid)  # [n, F, w]
                for tap in range(self.taps):
                    contribution = linear(hidden, per_tap[tap])
                    flat.index_add_(0, (rows + tap).flatten(), contribution.reshape(-1, contribution.shape[-1]))
        out = out.reshape(batch, -1, self.out_channels)
        return out if self.last else out.relu_()  # in place: out is this block's own sum of products


# ----------------------------------------------------------------------------------------------------
# Execution plans: how each block computes its frames for one call.
# ----------------------------------------------------------------------------------------------------


@dataclass
class LayerPlan:
    """What one layer (an encoder block and its mirror decoder block) computes in this call.

    mode "sliced": every frame at ``width``; "masked": full width times ``mask`` [B, N_l, C_l];
    "grouped": the frames under each router decision at the width of ``choice`` [B, N] (-1 = skip).
    ``valid`` [B, N_l, 1] marks frames inside each item's length (None when nothing is padded).
    """

    mode: str
    width: int | None = None
    mask: torch.Tensor | None = None
    choice: torch.Tensor | None = None
    widths: tuple[int, ...] = ()
    per_router_frame: int = 1
    valid: torch.Tensor | None = None
    runs: list[tuple[int, int, int, int]] | None = None  # grouped: (item, first, end router frame, factor)

    @classmethod
    def grouped(cls, choice: torch.Tensor, widths: tuple[int, ...], per_router_frame: int, n_frames: int,
                valid: torch.Tensor | None = None, runs: list | None = None) -> "LayerPlan":
        """A grouped plan for a layer of ``n_frames`` frames: ``choice`` [B, N] is cut to the router frames
        holding some of the layer's frames (deep layers end a frame or two before the router's last frame),
        the last of which runs to the layer's end; ``runs`` (``router_runs(choice)``, optional) likewise."""
        covering = min(choice.shape[1], -(-n_frames // per_router_frame))
        if runs is not None:
            runs = [(item, first, min(end, covering), factor) for item, first, end, factor in runs if first < covering]
        return cls("grouped", choice=choice[:, :covering], widths=widths, per_router_frame=per_router_frame,
                   valid=valid, runs=runs)


def straight_through_gumbel(logits: torch.Tensor, temperature: float, noise_scale: float = 1.0) -> torch.Tensor:
    """Hard one-hot choices [..., J] from scores [..., J], with the gradient of softmax((scores + s g) / tau).

    g is standard Gumbel noise and s = noise_scale: at 1 this is F.gumbel_softmax(hard=True) (the same random
    numbers for the same generator state); at 0 the choice is the arg max of the scores, as at inference.
    """
    if not noise_scale >= 0:
        raise ValueError(f"gumbel_noise_scale must be >= 0, got {noise_scale}.")
    scores = logits
    if noise_scale > 0:
        gumbels = -torch.empty_like(logits).exponential_().log()
        scores = logits + noise_scale * gumbels
    soft = (scores / temperature).softmax(dim=-1)
    hard = torch.zeros_like(soft).scatter_(-1, soft.argmax(dim=-1, keepdim=True), 1.0)
    return hard - soft.detach() + soft


def router_runs(choice: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """choice [B, N] -> maximal runs (item, first, end, factor index) of equal decisions, skipping -1."""
    runs = []
    for item, decisions in enumerate(choice.tolist()):
        first = 0
        for frame in range(1, len(decisions) + 1):
            if frame == len(decisions) or decisions[frame] != decisions[first]:
                if decisions[first] >= 0:
                    runs.append((item, first, frame, decisions[first]))
                first = frame
    return runs


def _spans(plan: LayerPlan, n_frames: int, channels: int) -> list[tuple[int, int, int, int]] | None:
    """A grouped layer's runs as (item, start frame, stop frame, width), or None when they average fewer than
    RUN_MIN_ELEMENTS / channels frames: short runs cost more in per-call overhead than gathering by factor."""
    if plan.runs is None:
        return None
    per, last = plan.per_router_frame, plan.choice.shape[1]
    spans = [(item, first * per, n_frames if end == last else end * per, plan.widths[factor])
             for item, first, end, factor in plan.runs]
    frames = sum(stop - start for _, start, stop, _ in spans)
    return spans if frames * channels >= RUN_MIN_ELEMENTS * len(spans) else None


def _segment_views(tensor: torch.Tensor, num_router_frames: int, per_router_frame: int):
    """Split [B, N_l, D] along frames into the regular part viewed [B, N-1, F, D] (router frames 0..N-2)
    and the tail [B, N_l - (N-1)*F, D] (the last router frame, which runs to the layer's end)."""
    split = (num_router_frames - 1) * per_router_frame
    batch, _, depth = tensor.shape
    regular = tensor[:, :split].reshape(batch, num_router_frames - 1, per_router_frame, depth)
    return regular, tensor[:, split:]


def _factor_groups(plan: LayerPlan, router_frames: int):
    """Inference gathers of a grouped plan: (item, width, chosen) for every item and factor, ``chosen`` the
    indices [n] (n <= ``router_frames``) of regular router frames (all but the last) that chose the factor."""
    for item, decisions in enumerate(plan.choice[:, :-1]):
        for index, width in enumerate(plan.widths):
            chosen = (decisions == index).nonzero().flatten()
            for first in range(0, len(chosen), router_frames):
                yield item, width, chosen[first : first + router_frames]


def _run_grouped(compute, inputs: list[torch.Tensor], out: torch.Tensor, plan: LayerPlan) -> torch.Tensor:
    """Fill ``out`` [B, N_l, D] by computing, for each factor, the frames of the router decisions that
    chose it (gathered) with that factor's width. ``compute(list_of_inputs, width) -> rows``.
    Views of ``out`` are taken at each write, so autograd tracks the in-place writes."""
    choice = plan.choice  # [B, N]
    num_router_frames, per_router_frame = choice.shape[1], plan.per_router_frame
    in_parts = [_segment_views(x, num_router_frames, per_router_frame) for x in inputs]
    regular_choice, tail_choice = choice[:, :-1], choice[:, -1]
    for index, width in enumerate(plan.widths):
        if num_router_frames > 1:
            chosen = regular_choice == index
            count = int(chosen.sum())
            if count == chosen.numel():  # every regular decision chose this factor: views, no gather
                rows = compute([regular for regular, _ in in_parts], width)
                _segment_views(out, num_router_frames, per_router_frame)[0].copy_(rows)
            elif count:
                items, frames = chosen.nonzero(as_tuple=True)
                rows = compute([regular[items, frames] for regular, _ in in_parts], width)
                _segment_views(out, num_router_frames, per_router_frame)[0][items, frames] = rows
        items = (tail_choice == index).nonzero(as_tuple=True)[0]
        if len(items):
            rows = compute([tail[items] for _, tail in in_parts], width)
            _segment_views(out, num_router_frames, per_router_frame)[1][items] = rows
    return out


TILE_FLOATS = 1 << 19
# A grouped layer computes runs of one decision as slices (no gather) when a run averages at least this many
# frame-channels (frames x block channels): below it, per-call overhead costs more than gathering by factor.
RUN_MIN_ELEMENTS = 1 << 16


def _tiles(n_frames: int, width: int, start: int = 0) -> list[tuple[int, int]]:
    """Split frames [start, n_frames) into tiles whose [tile, width] intermediates hold about TILE_FLOATS floats."""
    size = max(256, TILE_FLOATS // width)
    return [(first, min(first + size, n_frames)) for first in range(start, n_frames, size)]


def encoder_forward(block: SlimEncoderBlock, x: torch.Tensor, plan: LayerPlan) -> torch.Tensor:
    """x [B, N_{l-1}, C_in] -> [B, N_l, C] under ``plan``. With autograd: whole-tensor paths (and gathers);
    without: spans of frames at one width in cache-sized tiles, written in place (``frames_into``)."""
    if plan.mode == "masked":
        return block.forward_all_frames(x, block.channels, plan.mask)
    if plan.mode == "sliced" and torch.is_grad_enabled():
        return block.forward_all_frames(x, plan.width)
    batch = x.shape[0]
    blocks = x.reshape(batch, -1, block.stride * x.shape[2])  # [B, N_l + taps - 1, S*C_in]
    n_frames = blocks.shape[1] - block.taps + 1
    if plan.mode == "sliced":
        spans = [(item, 0, n_frames, plan.width) for item in range(batch)]
    else:
        if torch.is_grad_enabled():
            out = x.new_zeros(batch, n_frames, block.channels)  # frames no decision covers stay 0
            return _run_grouped(lambda parts, width: block.frames(parts, width), block.tap_views(x), out, plan)
        spans = _spans(plan, n_frames, block.channels)
        if spans is None:
            return _encoder_gathered_inference(block, blocks, plan)
    covered = sum(stop - start for _, start, stop, _ in spans) == batch * n_frames
    out = x.new_empty(batch, n_frames, block.channels) if covered else x.new_zeros(batch, n_frames, block.channels)
    for span in spans:
        _encoder_span(block, blocks, out, *span)
    return out


def _encoder_span(block: SlimEncoderBlock, blocks: torch.Tensor, out: torch.Tensor, item: int, first: int, stop: int,
                  width: int):
    """Inference: frames [first, stop) of item ``item`` at ``width`` into ``out`` [B, N_l, C], in cache-sized
    tiles, from the layer input viewed as S-sample blocks ``blocks`` [B, N_l + taps - 1, S*C_in].

    Where the block ``reads_window_once``, the span's input blocks b = 0 .. n + taps - 2 each get the
    products of the taps t that some frame of the span reads them through (frame b - t, 0 <= b - t < n): all
    taps as one product for the interior blocks, only the needed taps for the taps - 1 blocks at either end,
    so the products are exactly the MACs of the span. The last taps - 1 rows of a tile's products, which the
    next tile's first frames read too, are carried over to it."""
    tiles = _tiles(stop, 2 * block.channels, first)
    longest = max((end - start for start, end in tiles), default=0)
    scratch = out.new_empty(longest, block.conv_out.out_channels)
    carry, n_frames = block.taps - 1, stop - first
    products = out.new_empty(longest + carry, block.taps * width) if block.reads_window_once(width) else None
    side_by_side = block.inference_weights(width, blocks.dtype)[2]  # [S*C_in, taps * w]
    previous = 0  # frames of the previous tile
    for index, (start, end) in enumerate(tiles):  # frame f reads input blocks f .. f + taps - 1
        n = end - start
        if products is None:
            inputs = [blocks[item, start + tap : end + tap] for tap in range(block.taps)]  # taps x [n, S*C_in]
            block.frames_into(inputs, width, out[item, start:end], scratch[:n])
            continue
        if index:  # the previous tile's last rows are this tile's first
            products[:carry].copy_(products[previous : previous + carry])
        # block b (relative to the span) of rows [low, high) is computed here, at products row b - (start - first)
        offset = start - first
        low, high = offset + (carry if index else 0), offset + n + carry
        interior = max(low, carry), min(high, n_frames)
        if interior[0] < interior[1]:
            torch.mm(blocks[item, first + interior[0] : first + interior[1]], side_by_side,
                     out=products[interior[0] - offset : interior[1] - offset])
        for b in [*range(low, min(high, carry)), *range(max(low, n_frames, carry), high)]:  # the span's ends
            taps = slice(max(0, b - n_frames + 1) * width, (min(carry, b) + 1) * width)
            torch.mm(blocks[item, first + b : first + b + 1], side_by_side[:, taps],
                     out=products[b - offset : b - offset + 1, taps])
        previous = n
        block.frames_into(products[: n + carry], width, out[item, start:end], scratch[:n])


def _encoder_gathered_inference(block: SlimEncoderBlock, blocks: torch.Tensor, plan: LayerPlan) -> torch.Tensor:
    """``_run_grouped`` without autograd: per item and factor, the tap inputs of the chosen router frames are
    gathered as whole [F, S*C_in] blocks (``index_select``), computed at the factor's width into contiguous
    rows and copied back as whole [F, C] blocks (``index_copy_``); the last router frame is a span.
    blocks [B, N_l + taps - 1, S*C_in] (the input as S-sample blocks) -> [B, N_l, C]; frames no decision
    covers (-1) stay 0."""
    batch, n_frames, depth = blocks.shape[0], blocks.shape[1] - block.taps + 1, blocks.shape[2]
    taps = [blocks[:, tap : tap + n_frames] for tap in range(block.taps)]  # taps x [B, N_l, S*C_in]
    channels, per = block.channels, plan.per_router_frame
    split = (plan.choice.shape[1] - 1) * per  # frames of the regular router frames
    skipped = bool((plan.choice < 0).any())
    out = taps[0].new_zeros(batch, n_frames, channels) if skipped else taps[0].new_empty(batch, n_frames, channels)
    router_frames = max(1, TILE_FLOATS // (2 * channels * per))  # per gather: tile-sized intermediates
    # buffers reused by every gather (fresh memory per gather would cost page faults)
    scratch = taps[0].new_empty(router_frames * per, block.conv_out.out_channels)  # [frames, E*C]
    input_buffers = taps[0].new_empty(block.taps, router_frames, per * depth)
    rows_buffer = taps[0].new_empty(router_frames, per * channels)
    for item, width, chosen in _factor_groups(plan, router_frames):  # chosen: [n] router frame indices
        n = len(chosen)
        inputs = [torch.index_select(tap[item, :split].reshape(-1, per * depth), 0, chosen, out=buffer[:n]).view(-1, depth)
                  for tap, buffer in zip(taps, input_buffers)]  # taps x [n*F, S*C_in]
        rows = rows_buffer[:n]  # [n, F*C]
        block.frames_into(inputs, width, rows.view(-1, channels), scratch[: n * per])
        out[item, :split].view(-1, per * channels).index_copy_(0, chosen, rows)
    for item, tail in enumerate(plan.choice[:, -1].tolist()):
        if tail >= 0:
            _encoder_span(block, blocks, out, item, split, n_frames, plan.widths[tail])
    return out


def decoder_forward(block: SlimDecoderBlock, x: torch.Tensor, skip: torch.Tensor, plan: LayerPlan) -> torch.Tensor:
    """x + skip [B, N_l, C] -> [B, N_{l-1}, C_out] under ``plan``. Frames past an item's end contribute
    nothing, so a padded batch gives each item exactly what it gets alone. With autograd: whole-tensor paths
    (and gathers); without: spans in cache-sized tiles, accumulated in place (``forward_spans``)."""
    skip = skip[:, : x.shape[1]]
    if plan.mode == "masked":
        mask = plan.mask if plan.valid is None else plan.mask * plan.valid
        return block.forward_all_frames(x + skip, block.channels, mask)
    if plan.mode == "sliced":
        if torch.is_grad_enabled():
            return block.forward_all_frames(x + skip, plan.width, plan.valid)
        spans = [(item, 0, x.shape[1], plan.width) for item in range(x.shape[0])]
    else:
        if torch.is_grad_enabled():
            return block.forward_gathered(x + skip, plan)
        spans = _spans(plan, x.shape[1], block.channels)
        if spans is None:
            return block.forward_gathered_inference(x, skip, plan)
    return block.forward_spans(x, skip, spans, plan.valid)


# ----------------------------------------------------------------------------------------------------
# Bottleneck: the paper's grouped GRU (default) or DEMUCS' LSTM (for converted denoiser checkpoints).
# ----------------------------------------------------------------------------------------------------


class _GRURecurrence(torch.autograd.Function):
    """The grouped GRU's recurrence with autograd: input_gates [G, N, B, 3g] (W_i x + b_i of every frame),
    hidden [G, B, g] (the state before the first frame), w_hh [G, g, 3g], b_hh [G, 1, 3g] -> the state after
    every frame [N, G, B, g], with torch.nn.GRU's equations (r, z gates, then the candidate n).

    Written out because autograd through the per-frame loop repeats small operations N times in the backward,
    among them a [G, g, 3g] gradient of w_hh per frame; here the backward's loop only carries the state's
    gradient, and w_hh's and b_hh's gradients are one product and one sum over all frames after it
    (forward + backward of [8, 249, 512]: 0.12 -> 0.09 s on one thread). The forward runs the same
    operations as the loop it replaces; gradients agree to rounding (tests/test_modeling.py)."""

    @staticmethod
    def forward(ctx, input_gates, hidden, w_hh, b_hh):
        groups, frames, batch, three_widths = input_gates.shape
        width = three_widths // 3
        hidden_gates = input_gates.new_empty(frames, groups, batch, three_widths)  # W_h h + b_h of every frame
        gates = input_gates.new_empty(frames, groups, batch, 2 * width)  # r, z
        candidates = input_gates.new_empty(frames, groups, batch, width)  # n
        outputs = input_gates.new_empty(frames, groups, batch, width)  # h
        first = hidden
        # unbind, not input_gates[:, t] (whose autograd backward would be quadratic in N)
        for t, step_gates in enumerate(input_gates.unbind(1)):
            torch.baddbmm(b_hh, hidden, w_hh, out=hidden_gates[t])
            input_rz, input_n = step_gates.split((2 * width, width), dim=-1)
            hidden_rz, hidden_n = hidden_gates[t].split((2 * width, width), dim=-1)
            torch.sigmoid(input_rz + hidden_rz, out=gates[t])
            reset, update = gates[t].chunk(2, dim=-1)
            torch.tanh(torch.addcmul(input_n, reset, hidden_n), out=candidates[t])
            hidden = torch.lerp(candidates[t], hidden, update, out=outputs[t])  # n + z (h - n)
        ctx.save_for_backward(first, outputs, hidden_gates, gates, candidates, w_hh)
        return outputs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_outputs):
        first, outputs, hidden_gates, gates, candidates, w_hh = ctx.saved_tensors
        frames, groups, batch, width = outputs.shape
        previous = torch.cat([first[None], outputs[:-1]])  # [N, G, B, g] the state each frame starts from
        grad_input_gates = grad_outputs.new_empty(frames, groups, batch, 3 * width)
        grad_hidden_gates = grad_outputs.new_empty(frames, groups, batch, 3 * width)
        w_hh_t = w_hh.transpose(1, 2)  # [G, 3g, g]
        grad_hidden = torch.zeros_like(first)
        for t in range(frames - 1, -1, -1):
            grad_hidden = grad_hidden + grad_outputs[t]  # dL/dh_t
            reset, update = gates[t].chunk(2, dim=-1)
            candidate, grad_input, grad_hidden_gate = candidates[t], grad_input_gates[t], grad_hidden_gates[t]
            # h = n + z (h_prev - n), n = tanh(a), a = i_n + r hg_n, [r z] = sigmoid(i_rz + hg_rz)
            grad_a = grad_hidden * (1 - update) * (1 - candidate * candidate)
            grad_input[..., 2 * width :] = grad_a
            torch.mul(grad_a, reset, out=grad_hidden_gate[..., 2 * width :])
            grad_reset = grad_a * hidden_gates[t][..., 2 * width :]
            grad_update = grad_hidden * (previous[t] - candidate)
            torch.mul(grad_reset, reset * (1 - reset), out=grad_input[..., :width])
            torch.mul(grad_update, update * (1 - update), out=grad_input[..., width : 2 * width])
            grad_hidden_gate[..., : 2 * width] = grad_input[..., : 2 * width]
            grad_hidden = torch.baddbmm(grad_hidden * update, grad_hidden_gate, w_hh_t)  # dL/dh_{t-1}
        grad_w_hh = grad_b_hh = None
        if ctx.needs_input_grad[2]:  # sum over frames and items of h_prev^T dL/dhg: [G, g, N*B] @ [G, N*B, 3g]
            grad_w_hh = torch.bmm(previous.permute(1, 3, 0, 2).reshape(groups, width, frames * batch),
                                  grad_hidden_gates.transpose(0, 1).reshape(groups, frames * batch, 3 * width))
        if ctx.needs_input_grad[3]:
            grad_b_hh = grad_hidden_gates.sum(dim=(0, 2))[:, None]
        return grad_input_gates.transpose(0, 1), grad_hidden, grad_w_hh, grad_b_hh


class GroupedGRU(nn.Module):
    """Split C channels into G groups, one GRU per group, concatenate: [B, N, C] -> [B, N, C].

    Bidirectional (plus a Linear(2g, g) per group) when the model is not causal. Never slimmed.
    The one-layer causal case (the paper's) runs all groups in one recurrence with batched matmuls,
    about twice as fast on CPU as one nn.GRU call per group; the nn.GRU modules hold the parameters.
    """

    def __init__(self, channels: int, groups: int, layers: int, bidirectional: bool):
        super().__init__()
        self.groups, self.group_width = groups, channels // groups
        self.grus = nn.ModuleList(
            nn.GRU(self.group_width, self.group_width, layers, batch_first=True, bidirectional=bidirectional)
            for _ in range(groups)
        )
        self.linears = (
            nn.ModuleList(nn.Linear(2 * self.group_width, self.group_width) for _ in range(groups))
            if bidirectional
            else None
        )

    @property
    def fused(self) -> bool:
        return self.linears is None and self.grus[0].num_layers == 1

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        """x [B, N, C], state [G, B, g] or None (zeros) -> (y [B, N, C], state). ``state`` is only
        carried for the fused (one-layer causal) case; otherwise it must be None and None is returned."""
        if not self.fused:
            if state is not None:
                raise ValueError("a recurrent state can only be carried by a one-layer causal GroupedGRU.")
            outputs = []
            for index, (gru, part) in enumerate(zip(self.grus, x.split(self.group_width, dim=-1))):
                part, _ = gru(part)
                if self.linears is not None:
                    part = self.linears[index](part)
                outputs.append(part)
            return torch.cat(outputs, dim=-1), None
        if not torch.is_grad_enabled():
            return self._forward_inference(x, state)
        batch, frames, _ = x.shape
        groups, width = self.groups, self.group_width
        w_ih = torch.stack([gru.weight_ih_l0.t() for gru in self.grus])  # [G, g, 3g]
        w_hh = torch.stack([gru.weight_hh_l0.t() for gru in self.grus])  # [G, g, 3g]
        b_ih = torch.stack([gru.bias_ih_l0 for gru in self.grus])[:, None]  # [G, 1, 3g]
        b_hh = torch.stack([gru.bias_hh_l0 for gru in self.grus])[:, None]
        by_group = x.reshape(batch, frames, groups, width).permute(2, 1, 0, 3).reshape(groups, frames * batch, width)
        input_gates = torch.baddbmm(b_ih, by_group, w_ih).reshape(groups, frames, batch, 3 * width)
        hidden = x.new_zeros(groups, batch, width) if state is None else state
        if frames == 0:
            return x.new_zeros(batch, 0, groups * width), hidden
        y = _GRURecurrence.apply(input_gates, hidden, w_hh, b_hh)  # [N, G, B, g]
        return y.permute(2, 0, 1, 3).reshape(batch, frames, groups * width), y[-1]

    def _inference_weights(self, _width: int):
        """The fused recurrence's weights (cached at inference like the blocks' sliced weights): input and
        hidden products [G, g, 3g]; the input bias [G, 1, 3g] with the hidden bias of the r and z gates folded
        in (both sit outside the nonlinearity), and the hidden bias [G, 1, 3g] left with only the candidate's
        part (it sits inside r * (W_hn h + b_hn)), zero elsewhere."""
        width = self.group_width
        w_ih = torch.stack([gru.weight_ih_l0.t() for gru in self.grus])  # [G, g, 3g]
        w_hh = torch.stack([gru.weight_hh_l0.t() for gru in self.grus]).contiguous()  # [G, g, 3g]
        b_ih = torch.stack([gru.bias_ih_l0 for gru in self.grus])[:, None]  # [G, 1, 3g]
        b_hh = torch.stack([gru.bias_hh_l0 for gru in self.grus])[:, None]
        input_bias = b_ih.clone()
        input_bias[..., : 2 * width] += b_hh[..., : 2 * width]
        hidden_bias = torch.zeros_like(b_hh)
        hidden_bias[..., 2 * width :] = b_hh[..., 2 * width :]
        return w_ih, w_hh, input_bias, hidden_bias

    def _forward_inference(self, x: torch.Tensor, state: torch.Tensor | None):
        """``forward`` of the fused case without autograd: the input products of all frames at once, with
        the hidden biases of r and z folded in, then ``grouped_gru_steps`` (compiled by TorchScript)."""
        batch, frames, _ = x.shape
        groups, width = self.groups, self.group_width
        w_ih, w_hh, input_bias, hidden_bias = sliced_weights(self, width, self._inference_weights)
        by_group = x.reshape(batch, frames, groups, width).permute(2, 1, 0, 3).reshape(groups, frames * batch, width)
        input_gates = torch.baddbmm(input_bias, by_group, w_ih).reshape(groups, frames, batch, 3 * width)
        input_gates = input_gates.transpose(0, 1).contiguous()  # [N, G, B, 3g]: one contiguous block per step
        hidden = x.new_zeros(groups, batch, width) if state is None else state
        y = compiled_gru_steps()(input_gates, hidden, w_hh, hidden_bias)  # [N, G, B, g]
        last = y[-1].clone() if frames else hidden.clone()
        return y.permute(2, 0, 1, 3).reshape(batch, frames, groups * width), last


def grouped_gru_steps(input_gates: torch.Tensor, hidden: torch.Tensor, w_hh: torch.Tensor,
                      hidden_bias: torch.Tensor) -> torch.Tensor:
    """The grouped GRU's recurrence without autograd, torch's GRU equations in six operations per step, each
    writing into a preallocated buffer (the new hidden state straight into the output).

    input_gates [N, G, B, 3g]: W_i x + b_i per frame, plus b_h for r and z (outside the nonlinearity);
    hidden [G, B, g] the state before the first frame; w_hh [G, g, 3g]; hidden_bias [G, 1, 3g]: b_hn on the
    candidate's part (inside r * (W_hn h + b_hn)), zero elsewhere. -> hidden state after each frame [N, G, B, g].
    """
    frames, width = input_gates.shape[0], hidden.shape[2]
    y = hidden.new_empty(frames, hidden.shape[0], hidden.shape[1], width)
    hidden_gates = hidden.new_empty(hidden.shape[0], hidden.shape[1], 3 * width)  # W_h h (+ b_hn)
    reset_update = hidden.new_empty(hidden.shape[0], hidden.shape[1], 2 * width)
    candidate = hidden.new_empty(hidden.shape[0], hidden.shape[1], width)
    hidden_rz, hidden_n = hidden_gates[:, :, : 2 * width], hidden_gates[:, :, 2 * width :]
    reset, update = reset_update[:, :, :width], reset_update[:, :, width:]
    for t in range(frames):
        step_gates = input_gates[t]
        torch.baddbmm(hidden_bias, hidden, w_hh, out=hidden_gates)
        torch.add(step_gates[:, :, : 2 * width], hidden_rz, out=reset_update).sigmoid_()
        torch.addcmul(step_gates[:, :, 2 * width :], reset, hidden_n, out=candidate).tanh_()
        hidden = torch.lerp(candidate, hidden, update, out=y[t])
    return y


@functools.lru_cache(maxsize=1)
def compiled_gru_steps():
    """``grouped_gru_steps`` compiled by TorchScript: the same operations without Python between them, about
    25% less time for the recurrence on CPU (measured: 10 s of audio, 625 steps). Falls back to the Python
    function where TorchScript cannot compile it (it is deprecated in torch 2.x, not removed)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.script(grouped_gru_steps)
    except Exception:  # noqa: BLE001 - whatever TorchScript fails with, the identical Python function runs
        return grouped_gru_steps


class DemucsLSTM(nn.Module):
    """DEMUCS' bottleneck: nn.LSTM(C, C, layers) (bidirectional plus Linear(2C, C) when not causal)."""

    def __init__(self, channels: int, layers: int, bidirectional: bool):
        super().__init__()
        self.lstm = nn.LSTM(channels, channels, layers, batch_first=True, bidirectional=bidirectional)
        self.linear = nn.Linear(2 * channels, channels) if bidirectional else None

    def forward(self, x: torch.Tensor, state=None):
        """x [B, N, C], state (h, c) or None -> (y [B, N, C], state). State is carried only when causal."""
        if state is not None and self.linear is not None:
            raise ValueError("a recurrent state can only be carried by a causal (unidirectional) bottleneck.")
        x, state = self.lstm(x, state)
        return (self.linear(x), None) if self.linear is not None else (x, state)


# ----------------------------------------------------------------------------------------------------
# Router: Conv1d -> ReLU -> diagonal GRU -> pointwise Conv1d, one score per factor and router frame.
# ----------------------------------------------------------------------------------------------------


class DiagonalGRU(nn.Module):
    """A GRU whose hidden units each recur only on themselves (cost linear in the hidden size):

        z = sigmoid(W_z x + u_z * h + b_z)          r = sigmoid(W_r x + u_r * h + b_r)
        n = tanh(W_n x + r * (u_n * h + c_n))       h = (1 - z) * n + z * h

    with ``*`` element-wise. [B, N, I] -> [B, N, H]; ``reverse`` runs from the last frame to the first.
    """

    def __init__(self, input_size: int, hidden_size: int, reverse: bool = False):
        super().__init__()
        self.hidden_size, self.reverse = hidden_size, reverse
        self.input_projection = nn.Linear(input_size, 3 * hidden_size)
        self.recurrent_weight = nn.Parameter(torch.empty(3 * hidden_size))
        self.recurrent_bias = nn.Parameter(torch.empty(3 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.hidden_size)
        self.input_projection.reset_parameters()
        nn.init.uniform_(self.recurrent_weight, -bound, bound)
        nn.init.uniform_(self.recurrent_bias, -bound, bound)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, N, I], state [B, H] (the hidden units before the first frame; zeros when None) -> [B, N, H].
        Each output frame is the hidden state after it, so a stream carries ``output[:, -1]`` to its next call."""
        if not torch.is_grad_enabled():
            return self._forward_inference(x, state)
        projected = self.input_projection(x)  # [B, N, 3H], all frames at once
        u_z, u_r, u_n = self.recurrent_weight.chunk(3)
        c_z, c_r, c_n = self.recurrent_bias.chunk(3)
        hidden = x.new_zeros(x.shape[0], self.hidden_size) if state is None else state
        outputs = [None] * x.shape[1]
        frames = range(x.shape[1] - 1, -1, -1) if self.reverse else range(x.shape[1])
        per_frame = projected.unbind(1)  # not projected[:, t], whose backward is quadratic in N (GroupedGRU)
        for t in frames:
            p_z, p_r, p_n = per_frame[t].chunk(3, dim=-1)
            z = torch.sigmoid(p_z + u_z * hidden + c_z)
            r = torch.sigmoid(p_r + u_r * hidden + c_r)
            n = torch.tanh(p_n + r * (u_n * hidden + c_n))
            hidden = n + z * (hidden - n)
            outputs[t] = hidden
        return torch.stack(outputs, dim=1)

    def _forward_inference(self, x: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """``forward`` without autograd in six operations per step instead of about fifteen: the z and r biases
        are added to all frames' projections at once, z and r come from one fused multiply-add, every step
        writes into preallocated buffers and its hidden state straight into the output."""
        batch, frames, _ = x.shape
        size = self.hidden_size
        projected = self.input_projection(x).view(batch, frames, 3, size)  # [B, N, (z, r, n), H]
        projected[:, :, :2] += self.recurrent_bias.view(3, size)[:2]  # outside the nonlinearity
        steps = projected.transpose(0, 1).contiguous()  # [N, B, 3, H]: one contiguous block per step
        u_zr, u_n = self.recurrent_weight.view(3, size).split((2, 1))  # [2, H], [1, H]
        c_n = self.recurrent_bias.view(3, size)[2:]  # [1, H]
        out = x.new_empty(frames, batch, size)  # [N, B, H]
        hidden = x.new_zeros(batch, size) if state is None else state
        gates, recurrent_n, candidate = x.new_empty(batch, 2, size), x.new_empty(batch, size), x.new_empty(batch, size)
        update, reset = gates.unbind(1)
        inputs_zr, inputs_n, outputs = steps[:, :, :2].unbind(0), steps[:, :, 2].unbind(0), out.unbind(0)
        for t in range(frames - 1, -1, -1) if self.reverse else range(frames):
            torch.addcmul(inputs_zr[t], u_zr, hidden[:, None], out=gates).sigmoid_()  # z, r
            torch.addcmul(c_n, u_n, hidden, out=recurrent_n)
            torch.addcmul(inputs_n[t], reset, recurrent_n, out=candidate).tanh_()  # n
            hidden = torch.lerp(candidate, hidden, update, out=outputs[t])  # n + z * (h - n)
        return out.transpose(0, 1)  # [B, N, H]


class AdaSlimRouter(nn.Module):
    """Reads the normalised noisy input at the model rate; one decision per ``router_hop`` samples.

    Decision r governs the frames under input samples [r * hop, (r + 1) * hop) and is computed from the
    samples ``router_delay`` hops earlier (zeros before the start): with the default delay of one hop a causal
    router has each decision before the frames it governs can be computed, so routing adds no latency to a
    stream. Bidirectional GRU when the model is not causal.
    """

    def __init__(self, config: AdaSlimConfig):
        super().__init__()
        self.hop = config.router_hop
        self.delay = config.router_delay * config.router_hop  # samples
        self.conv = nn.Conv1d(config.chin, config.router_channels, self.hop, self.hop)
        self.gru = DiagonalGRU(config.router_channels, config.router_hidden)
        self.gru_reverse = None if config.causal else DiagonalGRU(config.router_channels, config.router_hidden, True)
        directions = 1 if config.causal else 2
        self.projection = nn.Conv1d(directions * config.router_hidden, config.num_factors, 1)

    def forward(self, x: torch.Tensor, num_frames: int, valid_frames: list[int] | None = None) -> torch.Tensor:
        """x [B, chin, L] normalised input -> logits [B, N, J] for the first ``num_frames`` router frames.
        ``valid_frames``: router frames inside each item (padded batches); the reverse recurrence of a
        non-causal router then starts at each item's own end."""
        needed = num_frames * self.hop
        x = F.pad(x, (self.delay, max(0, needed - self.delay - x.shape[-1])))[..., :needed]  # [B, chin, N * hop]
        features = F.relu(self.conv(x)).transpose(1, 2)  # [B, N, router_channels]
        hidden = self.gru(features)
        if self.gru_reverse is not None:
            if valid_frames is None or min(valid_frames) == num_frames:
                backward = self.gru_reverse(features)
            else:
                backward = torch.zeros_like(hidden)
                for item, n in enumerate(valid_frames):
                    backward[item, :n] = self.gru_reverse(features[item : item + 1, :n])[0]
            hidden = torch.cat([hidden, backward], dim=-1)
        return self.projection(hidden.transpose(1, 2)).transpose(1, 2)  # [B, N, J]


# ----------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------


@dataclass
class AdaSlimOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): with `clean_values`: L_SE + polarity_weight *
            L_Pol, plus efficiency_weight * L_Eff + balance_weight * L_Bal (+ share_weight * L_Share when
            min_factor_share > 0) when the router decided.
        enhanced_values (`torch.FloatTensor`, same shape as `input_values`): the enhanced waveform.
        choice (`torch.LongTensor` of shape `(batch, router_frames)`): factor index per router frame,
            -1 for frames entirely past an item's end.
        utilization_per_frame (`torch.FloatTensor` of shape `(batch, router_frames)`): the factor per frame
            (0 past an item's end).
        mean_utilization (`torch.FloatTensor` of shape `(batch,)`): mean factor over each item's frames.
        router_logits (`torch.FloatTensor` of shape `(batch, router_frames, factors)`, *optional*): scores of
            the router; None for a static factor or a given choice.
        macs (`torch.DoubleTensor` of shape `(batch,)`): multiply-accumulates this call spent per item
            (adaslim_hf.macs.call_macs).
        se_loss, efficiency_loss, balance_loss, polarity_loss, share_loss (`torch.FloatTensor` of shape `()`,
            *optional*): loss terms (share_loss only when min_factor_share > 0).
    """

    loss: torch.FloatTensor | None = None
    enhanced_values: torch.FloatTensor | None = None
    choice: torch.LongTensor | None = None
    utilization_per_frame: torch.FloatTensor | None = None
    mean_utilization: torch.FloatTensor | None = None
    router_logits: torch.FloatTensor | None = None
    macs: torch.DoubleTensor | None = None
    se_loss: torch.FloatTensor | None = None
    efficiency_loss: torch.FloatTensor | None = None
    balance_loss: torch.FloatTensor | None = None
    polarity_loss: torch.FloatTensor | None = None
    share_loss: torch.FloatTensor | None = None


def _versions(*tensors) -> tuple:
    """In-place version counters (None for None): a changed one means the tensor was modified since.
    Tensors made under ``torch.inference_mode()`` keep no counter; they read as "inference" (identity is
    then the only check ``SharedInputs.matches`` can make)."""
    return tuple(None if tensor is None else "inference" if tensor.is_inference() else tensor._version
                 for tensor in tensors)


@dataclass
class SharedInputs:
    """What a forward computes for one batch before any width matters (``AdaSlimModel.share_inputs``).

    A stage-1 step runs one batch at every utilization factor; ``forward(..., shared_inputs=...)`` then skips
    the normalisation, the up-sampling and the target's STFTs at every factor but the first. The forward
    only accepts it with the very tensors it was computed from, unmodified (identity and version counters).
    """

    input_values: torch.Tensor
    padding_mask: torch.Tensor | None
    clean_values: torch.Tensor | None
    versions: tuple  # _versions(input_values, padding_mask, clean_values) when computed
    flat: bool  # input_values was [B, T]
    lengths: torch.Tensor  # [B] valid samples per item (CPU)
    std: torch.Tensor  # [B, 1, 1] the normalisation scale
    sample_mask: torch.Tensor | None  # [B, 1, T] 1 = real sample; None without a padding mask
    normalized: torch.Tensor  # [B, chin, L] normalised and zero-padded (the router's input)
    upsampled: torch.Tensor  # [B, chin, L * U] the network's input
    target_magnitudes: list[torch.Tensor] | None  # per STFT resolution [B, frames, bins]; None without a target

    def matches(self, input_values, padding_mask, clean_values) -> bool:
        return (self.input_values is input_values and self.padding_mask is padding_mask
                and self.clean_values is clean_values
                and self.versions == _versions(input_values, padding_mask, clean_values))


# ----------------------------------------------------------------------------------------------------
# The models
# ----------------------------------------------------------------------------------------------------


class AdaSlimPreTrainedModel(PreTrainedModel):
    config_class = AdaSlimConfig
    config: AdaSlimConfig
    base_model_prefix = "adaslim"
    main_input_name = "input_values"
    input_modalities = "audio"
    supports_gradient_checkpointing = False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """transformers' ``from_pretrained`` restricted to safetensors weights: a folder or Hub repo that only
        has pickled weights (``pytorch_model.bin``) is refused instead of unpickled."""
        if kwargs.get("use_safetensors") is False:
            raise ValueError("adaslim_hf loads safetensors weights only; use_safetensors=False is not supported.")
        kwargs["use_safetensors"] = True
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module):
        """torch's default initialisation, then DEMUCS' rescaling of backbone convs (Defossez et al. 2019):
        weight and bias divided by sqrt(std(weight) / rescale). Tensors loaded from a checkpoint are kept."""
        if not isinstance(module, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear, nn.GRU, nn.LSTM, DiagonalGRU)):
            return
        if any(getattr(p, "_is_hf_initialized", False) for p in module.parameters(recurse=False)):
            return
        module.reset_parameters()
        if getattr(module, "demucs_rescale", False) and self.config.rescale:
            scale = (module.weight.std() / self.config.rescale) ** 0.5
            module.weight.div_(scale)
            if module.bias is not None:
                module.bias.div_(scale)


class AdaSlimModel(AdaSlimPreTrainedModel):
    """Slimmable causal DEMUCS with a per-frame utilization router.

    Example:
    ```python
    >>> import torch
    >>> from adaslim_hf import AdaSlimConfig, AdaSlimModel
    >>> model = AdaSlimModel(AdaSlimConfig(hidden=8, depth=3)).eval()
    >>> out = model(torch.randn(1, 16000) * 0.1)          # the router decides per 16 ms frame
    >>> out.enhanced_values.shape, out.choice.shape[0]
    (torch.Size([1, 16000]), 1)
    >>> model(torch.randn(1, 16000) * 0.1, utilization=0.25).macs.shape   # a static factor
    torch.Size([1])
    ```
    """

    def __init__(self, config: AdaSlimConfig):
        super().__init__(config)
        self.encoder = nn.ModuleList()
        self.decoder = nn.ModuleList()  # decoder[i] mirrors encoder[depth - 1 - i] (denoiser's order)
        for layer, (c_in, c) in enumerate(zip(config.in_channels, config.channels)):
            self.encoder.append(SlimEncoderBlock(c_in, c, config.kernel_size, config.stride, config.glu))
            c_out = config.chout if layer == 0 else c_in
            self.decoder.insert(
                0, SlimDecoderBlock(c, c_out, config.kernel_size, config.stride, config.glu, last=layer == 0)
            )
        for block in list(self.encoder) + list(self.decoder):
            for conv in block.children():
                conv.demucs_rescale = True
        width, bidirectional = config.channels[-1], not config.causal
        if config.bottleneck == "lstm":
            self.bottleneck = DemucsLSTM(width, config.bottleneck_layers, bidirectional)
        else:
            self.bottleneck = GroupedGRU(width, config.bottleneck_groups, config.bottleneck_layers, bidirectional)
        self.router = AdaSlimRouter(config)
        self.post_init()

    # ---- input checks ----

    def _check_inputs(self, input_values, padding_mask):
        """-> input [B, chin, T] float, valid lengths [B], whether the caller passed [B, T]."""
        if not isinstance(input_values, torch.Tensor):
            raise ValueError(f"input_values must be a torch.Tensor, got {type(input_values).__name__}.")
        if not input_values.is_floating_point():
            raise ValueError(f"input_values must be a floating-point waveform, got dtype {input_values.dtype}.")
        chin = self.config.chin
        if input_values.dim() == 2 and chin == 1:
            x, flat = input_values.unsqueeze(1), True
        elif input_values.dim() == 3 and input_values.shape[1] == chin:
            x, flat = input_values, False
        else:
            expected = "[batch, samples] or [batch, 1, samples]" if chin == 1 else f"[batch, {chin}, samples]"
            raise ValueError(f"input_values must have shape {expected}, got {list(input_values.shape)}.")
        batch, _, length = x.shape
        if batch == 0 or length == 0:
            raise ValueError(f"input_values is empty: shape {list(input_values.shape)}.")
        if not torch.isfinite(x).all():
            raise ValueError("input_values contains NaN or Inf samples.")
        x = x.to(self.dtype)
        if padding_mask is None:
            return x, torch.full((batch,), length, dtype=torch.long), flat
        if tuple(padding_mask.shape) != (batch, length):
            raise ValueError(
                f"padding_mask must have shape [batch, samples] = {[batch, length]}, got {list(padding_mask.shape)}."
            )
        mask = padding_mask.bool()
        lengths = mask.sum(dim=1)
        prefix = torch.arange(length, device=mask.device) < lengths[:, None]
        if not torch.equal(mask, prefix):
            raise ValueError("padding_mask must mark each item's real samples as one run from the start (1...1 0...0).")
        if (lengths == 0).any():
            raise ValueError(f"padding_mask leaves item(s) {torch.nonzero(lengths == 0).flatten().tolist()} empty.")
        return x, lengths.cpu(), flat

    def _check_choice(self, choice: torch.Tensor, batch: int, num_frames: int) -> torch.Tensor:
        if not isinstance(choice, torch.Tensor) or choice.is_floating_point() or choice.dtype == torch.bool:
            raise ValueError(
                "utilization must be None, one of the configured factors "
                f"{self.config.utilization_factors}, or an integer tensor of factor indices."
            )
        if tuple(choice.shape) != (batch, num_frames):
            raise ValueError(
                f"a per-frame utilization choice must have shape [batch, router_frames] = {[batch, num_frames]}, "
                f"got {list(choice.shape)}."
            )
        if choice.numel() and (choice.min() < 0 or choice.max() >= self.config.num_factors):
            raise ValueError(
                f"per-frame choices must be factor indices in [0, {self.config.num_factors - 1}] "
                f"(factors {self.config.utilization_factors}), got values in [{int(choice.min())}, {int(choice.max())}]."
            )
        return choice.long()

    # ---- plans ----

    def _layer_plans(self, mode, lengths, padded_length, choice=None, one_hot=None, static_index=None,
                     dtype: torch.dtype | None = None):
        """One LayerPlan per layer (index 0 = outermost). ``choice`` [B, N] (-1 = past the end); masks are
        made in ``dtype``, the blocks' compute dtype (default: the parameters')."""
        dtype = dtype or self.dtype
        config = self.config
        frames = config.frames_per_layer(padded_length)
        padded = bool((lengths < padded_length).any()) if lengths is not None else False
        valid_counts = [config.frames_per_layer(int(n)) for n in lengths.tolist()] if padded else None
        plans = []
        all_runs = router_runs(choice) if mode == "grouped" else None
        for layer in range(config.depth):
            n_frames = frames[layer]
            valid = None
            if padded:
                counts = torch.tensor([counts[layer] for counts in valid_counts])
                valid = (torch.arange(n_frames)[None, :] < counts[:, None]).to(dtype)[..., None]
                valid = valid.to(self.device)
            per_router_frame = frames_per_router_frame(config, layer)
            if mode == "sliced":
                plans.append(LayerPlan("sliced", width=config.slim_width(layer, static_index), valid=valid))
            elif mode == "masked":
                index = (torch.arange(n_frames, device=self.device) // per_router_frame).clamp(max=one_hot.shape[1] - 1)
                widths = torch.tensor([config.slim_width(layer, j) for j in range(config.num_factors)])
                channel_masks = (torch.arange(config.channels[layer])[None, :] < widths[:, None]).to(one_hot.dtype)
                mask = (one_hot[:, index] @ channel_masks.to(self.device)).to(dtype)  # [B, N_l, J] @ [J, C_l] -> [B, N_l, C_l]
                plans.append(LayerPlan("masked", mask=mask, valid=valid))
            else:
                widths = tuple(config.slim_width(layer, j) for j in range(config.num_factors))
                plans.append(LayerPlan.grouped(choice, widths, per_router_frame, n_frames, valid, all_runs))
        return plans

    # ---- the width-independent part of a forward ----

    def share_inputs(self, input_values: torch.Tensor, padding_mask: torch.Tensor | None = None,
                     clean_values: torch.Tensor | None = None) -> "SharedInputs":
        """Checks, normalisation, padding and up-sampling of the input, and the target's spectra: everything a
        forward computes before any width matters. Pass the result as ``forward(..., shared_inputs=...)``
        with the same tensors to run one batch at several widths (stage 1) without repeating it. Computed in
        the parameters' dtype, also inside a ``torch.autocast`` region."""
        device_type = input_values.device.type if isinstance(input_values, torch.Tensor) else "cpu"
        with torch.autocast(device_type, enabled=False):
            return self._share_inputs(input_values, padding_mask, clean_values)

    def _share_inputs(self, input_values, padding_mask, clean_values) -> "SharedInputs":
        config = self.config
        x, lengths, flat = self._check_inputs(input_values, padding_mask)  # x [B, chin, T]
        if clean_values is not None and tuple(clean_values.shape) != tuple(input_values.shape):
            raise ValueError(
                f"clean_values must have the shape of input_values {list(input_values.shape)}, "
                f"got {list(clean_values.shape)}."
            )
        batch, _, length = x.shape
        padded_length = config.valid_length(length)
        sample_mask = None
        if padding_mask is not None:
            sample_mask = (torch.arange(length)[None, :] < lengths[:, None]).to(x.dtype).to(x.device)[:, None]

        # normalise by each item's standard deviation over its real samples (DEMUCS), zero the padding
        if config.normalize:
            mono = x.mean(dim=1)  # [B, T]
            count = lengths.to(x.device, x.dtype)
            weights = sample_mask[:, 0] if sample_mask is not None else torch.ones_like(mono)
            mean = (mono * weights).sum(dim=1) / count
            variance = (((mono - mean[:, None]) * weights) ** 2).sum(dim=1) / (count - 1).clamp(min=1)
            std = variance.sqrt()[:, None, None]  # [B, 1, 1]
            x = x / (config.floor + std)
        else:
            std = x.new_ones(batch, 1, 1)
        if sample_mask is not None:
            x = x * sample_mask
        x = F.pad(x, (0, padded_length - length))  # [B, chin, L]
        upsampled = x
        for _ in range(int(math.log2(config.resample))):
            upsampled = upsample2(upsampled)  # -> [B, chin, L * U]

        target_magnitudes = None
        if clean_values is not None and (config.stft_sc_factor or config.stft_mag_factor):
            # the loss compares [B, chin * T] signals, masked only for [B, T] inputs (see forward)
            target = clean_values.to(x.dtype)
            target_magnitudes = stft_magnitudes(target if flat else target.reshape(batch, -1),
                                                mask=padding_mask if flat else None)
        return SharedInputs(
            input_values=input_values, padding_mask=padding_mask, clean_values=clean_values,
            versions=_versions(input_values, padding_mask, clean_values), flat=flat, lengths=lengths, std=std,
            sample_mask=sample_mask, normalized=x, upsampled=upsampled, target_magnitudes=target_magnitudes,
        )

    # ---- forward ----

    def forward(
        self,
        input_values: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        utilization: float | torch.Tensor | None = None,
        clean_values: torch.Tensor | None = None,
        execution: str | None = None,
        return_dict: bool | None = None,
        shared_inputs: "SharedInputs | None" = None,
        gumbel_noise_scale: float = 1.0,
        **kwargs,
    ) -> AdaSlimOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(batch, samples)` or `(batch, chin, samples)`): noisy
                waveform at `config.sample_rate`.
            padding_mask (`torch.Tensor` of shape `(batch, samples)`, *optional*): 1 for real samples, 0 for
                padding (one run from the start). Each item of a padded batch gets exactly what it gets alone
                (causal models).
            utilization (`float` or `torch.LongTensor` of shape `(batch, router_frames)`, *optional*): None lets
                the router decide per frame (or runs `config.default_utilization` when that is set: a model
                whose router was never trained); a configured factor runs every frame at that width; a tensor
                gives the factor index of every router frame (`config.num_router_frames(samples)` of them).
            clean_values (`torch.FloatTensor`, same shape as `input_values`, *optional*): target for the loss.
            execution (`str`, *optional*): force an execution path, "masked", "sliced" (static factors only)
                or "grouped"; by default training with gradients uses "masked" and everything else the sliced
                paths, whose cost follows the MACs.
            shared_inputs (`SharedInputs`, *optional*): `self.share_inputs(input_values, padding_mask,
                clean_values)` of these very tensors, computed once for several calls on one batch (stage-1
                training runs it at every factor); the result is the same as without it.
            gumbel_noise_scale (`float`, defaults to 1.0): training with the router only: the Gumbel noise added
                to the router's scores before the hard choice is scaled by this. 1 is the standard
                straight-through Gumbel-softmax; 0 makes the choice the arg max that inference takes (the
                gradient is still the softmax's). Stage-2 training lowers it towards 0 so that the losses act on
                the decisions inference will make (`TrainingSettings.gumbel_noise_decay_steps`).

        Inside a `torch.autocast` region (e.g. accelerate's `mixed_precision="bf16"`, or the pipeline's
        `precision="bf16"`) the encoder and decoder blocks compute in the autocast dtype; normalisation,
        resampling, the router, the recurrent bottleneck, the output and the losses stay in the parameters'
        dtype (float32).
        """
        device_type = input_values.device.type if isinstance(input_values, torch.Tensor) else "cpu"
        compute_dtype = autocast_dtype(device_type)
        with torch.autocast(device_type, enabled=False):
            return self._forward(input_values, padding_mask, utilization, clean_values, execution, return_dict,
                                 shared_inputs, gumbel_noise_scale, compute_dtype, **kwargs)

    def _forward(self, input_values, padding_mask, utilization, clean_values, execution, return_dict, shared_inputs,
                 gumbel_noise_scale, compute_dtype, **kwargs):
        """``forward`` with autocast off; the encoder and decoder blocks run in ``compute_dtype`` (None: the
        parameters' dtype)."""
        if kwargs:
            raise ValueError(f"AdaSlimModel.forward got unexpected arguments {sorted(kwargs)}.")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        config = self.config
        if utilization is None and config.default_utilization is not None:  # the router was never trained
            utilization = config.default_utilization
        if shared_inputs is None:
            shared_inputs = self.share_inputs(input_values, padding_mask, clean_values)
        elif not shared_inputs.matches(input_values, padding_mask, clean_values):
            raise ValueError("shared_inputs were computed from other (or since modified) input_values, "
                             "padding_mask or clean_values: call share_inputs on the tensors passed here.")
        x, lengths, flat = shared_inputs.normalized, shared_inputs.lengths, shared_inputs.flat  # x [B, chin, L]
        std, sample_mask = shared_inputs.std, shared_inputs.sample_mask
        batch, length = x.shape[0], input_values.shape[-1]
        padded_length = config.valid_length(length)
        num_frames = config.num_router_frames(length)

        # who decides the width of each router frame
        router_logits = one_hot = None
        static_index = None
        if utilization is None:
            valid_frames = [config.num_router_frames(int(n)) for n in lengths.tolist()]
            router_logits = self.router(x, num_frames, valid_frames)  # [B, N, J]
            if self.training:
                one_hot = straight_through_gumbel(router_logits, config.gumbel_temperature, gumbel_noise_scale)
                choice = one_hot.argmax(dim=-1)
            else:
                choice = router_logits.argmax(dim=-1)
        elif isinstance(utilization, torch.Tensor):
            choice = self._check_choice(utilization, batch, num_frames).to(x.device)
        else:
            static_index = config.factor_index(utilization)
            choice = torch.full((batch, num_frames), static_index, dtype=torch.long, device=x.device)
        # Reported choice: -1 for router frames past an item's end. Executed choice: those of them that still
        # hold valid frames of some layer (the deepest layers' receptive fields reach past the last bottleneck
        # frame) repeat the item's last decision, as they do for an item alone; the rest are skipped (-1).
        per_item_frames = [config.frames_per_layer(int(n)) for n in lengths.tolist()]
        frame_starts = torch.arange(num_frames)[None, :]  # [1, N]
        item_frames = torch.tensor([config.num_router_frames(int(n)) for n in lengths.tolist()])  # [B]
        frame_valid = frame_starts < item_frames[:, None]
        needed = torch.zeros(batch, num_frames, dtype=torch.bool)
        for layer in range(config.depth):
            per_router_frame = frames_per_router_frame(config, layer)
            layer_frames = torch.tensor([f[layer] for f in per_item_frames])[:, None]
            needed |= frame_starts * per_router_frame < layer_frames
        frame_valid, needed = frame_valid.to(x.device), needed.to(x.device)
        last_valid = (frame_valid.sum(dim=1) - 1)[:, None]  # [B, 1]
        exec_choice = torch.where(frame_valid, choice, choice.gather(1, last_valid))
        exec_choice = torch.where(needed, exec_choice, torch.full_like(choice, -1))
        choice = torch.where(frame_valid, choice, torch.full_like(choice, -1))

        # pick the execution path
        if execution is None:
            if static_index is not None:
                execution = "sliced"
            elif self.training and torch.is_grad_enabled():
                execution = "masked"
            else:
                execution = "grouped"
        if execution not in ("masked", "sliced", "grouped"):
            raise ValueError(f"execution must be 'masked', 'sliced' or 'grouped', got {execution!r}.")
        if execution == "sliced" and static_index is None:
            raise ValueError("execution='sliced' needs a static utilization factor.")
        if execution == "masked":
            hard = one_hot if one_hot is not None else F.one_hot(exec_choice.clamp(min=0), config.num_factors).to(x)
            last_hard = hard.gather(1, last_valid[..., None].expand(-1, -1, hard.shape[-1]))
            exec_one_hot = torch.where(frame_valid[..., None], hard, last_hard) * needed[..., None].to(hard)
        else:
            exec_one_hot = None
        full_dtype = shared_inputs.upsampled.dtype
        compute_dtype = compute_dtype or full_dtype
        plans = self._layer_plans(execution, lengths if padding_mask is not None else None, padded_length,
                                  choice=exec_choice, one_hot=exec_one_hot, static_index=static_index,
                                  dtype=compute_dtype)

        # (up-sampled in share_inputs), encode, recur, decode, down-sample; the blocks in compute_dtype
        x = shared_inputs.upsampled.transpose(1, 2).to(compute_dtype)  # [B, L*U, chin], time-major from here on
        skips = []
        for block, plan in zip(self.encoder, plans):
            x = encoder_forward(block, x, plan)  # [B, N_l, C_l]
            skips.append(x)
        x = self._run_bottleneck(x.to(full_dtype), lengths if padding_mask is not None else None).to(compute_dtype)
        for block, plan in zip(self.decoder, reversed(plans)):
            skip = skips.pop()
            x = decoder_forward(block, x, skip, plan)
        if padding_mask is not None:  # what lies past each item's padded length is not part of its signal
            ends = torch.tensor([config.valid_length(int(n)) * config.resample for n in lengths.tolist()])
            x = x * (torch.arange(x.shape[1])[None, :] < ends[:, None]).to(x)[..., None]
        x = x.transpose(1, 2).to(full_dtype)  # [B, chout, L*U]
        for _ in range(int(math.log2(config.resample))):
            x = downsample2(x)
        enhanced = x[..., :length] * std
        if sample_mask is not None:
            enhanced = enhanced * sample_mask

        # compute trace and losses
        factors = torch.tensor(config.utilization_factors, dtype=x.dtype, device=x.device)
        utilization_per_frame = torch.where(choice >= 0, factors[choice.clamp(min=0)], torch.zeros_like(factors[0]))
        mean_utilization = utilization_per_frame.sum(dim=1) / frame_valid.sum(dim=1)
        macs = call_macs(config, exec_choice, lengths, router=utilization is None)
        enhanced_values = enhanced[:, 0] if flat else enhanced

        loss = se_loss = pol_loss = eff_loss = bal_loss = share_loss = None
        if clean_values is not None:
            target = clean_values.to(enhanced_values.dtype)
            estimate_2d = enhanced_values.reshape(batch, -1) if not flat else enhanced_values
            target_2d = target.reshape(batch, -1) if not flat else target
            loss_mask = padding_mask if flat else None  # [B, T] 1 = real sample, for every loss term
            se_loss = speech_enhancement_loss(
                estimate_2d,
                target_2d,
                sc_factor=config.stft_sc_factor,
                mag_factor=config.stft_mag_factor,
                padding_mask=loss_mask,
                target_magnitudes=shared_inputs.target_magnitudes,
            )
            if config.si_sdr_weight:
                se_loss = se_loss + config.si_sdr_weight * si_sdr_loss(estimate_2d, target_2d, padding_mask=loss_mask)
            if config.pause_weight:
                noisy_2d = input_values.to(estimate_2d.dtype).reshape(estimate_2d.shape)
                se_loss = se_loss + config.pause_weight * pause_residual_loss(
                    estimate_2d, target_2d, noisy_2d, frame=config.sample_rate // 50, padding_mask=loss_mask)
            pol_loss = polarity_loss(estimate_2d, target_2d, loss_mask)
            loss = se_loss + config.polarity_weight * pol_loss if config.polarity_weight else se_loss
            if utilization is None:
                hard = one_hot if one_hot is not None else F.one_hot(choice.clamp(min=0), config.num_factors).to(x)
                fractions = choice_fractions(hard, frame_valid)
                eff_loss = efficiency_loss(fractions, factors, config.target_utilization)
                bal_loss = balance_loss(fractions)
                loss = loss + config.efficiency_weight * eff_loss + config.balance_weight * bal_loss
                if config.min_factor_share:
                    share_loss = share_floor_loss(fractions, config.min_factor_share)
                    loss = loss + config.share_weight * share_loss

        output = AdaSlimOutput(
            loss=loss,
            enhanced_values=enhanced_values,
            choice=choice,
            utilization_per_frame=utilization_per_frame,
            mean_utilization=mean_utilization,
            router_logits=router_logits,
            macs=macs,
            se_loss=se_loss,
            efficiency_loss=eff_loss,
            balance_loss=bal_loss,
            share_loss=share_loss,
            polarity_loss=pol_loss,
        )
        return output if return_dict else output.to_tuple()

    def _run_bottleneck(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """[B, N_L, C] -> [B, N_L, C]. A bidirectional bottleneck on a padded batch runs on packed sequences
        so that each item's backward recurrence starts at its own end."""
        if lengths is None or self.config.causal:
            return self.bottleneck(x)[0]
        frames = torch.tensor([self.config.frames_per_layer(int(n))[-1] for n in lengths.tolist()])
        outputs = torch.zeros_like(x)
        for item in range(x.shape[0]):  # bidirectional + padding: per item, so no padding enters the recurrence
            n = int(frames[item])
            outputs[item : item + 1, :n] = self.bottleneck(x[item : item + 1, :n])[0]
        return outputs


__all__ = ["AdaSlimConfig", "AdaSlimModel", "AdaSlimOutput", "AdaSlimPreTrainedModel", "AdaSlimRouter",
           "SharedInputs"]
