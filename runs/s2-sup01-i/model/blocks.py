"""The slimmable DEMUCS blocks: the only place a block's math is written.

Each encoder and decoder block can run its INTERNAL feature space at a utilization factor u (the first
floor(C * u) channels, GLU halves sliced separately); block inputs, outputs, skips and the bottleneck stay full
width. Parameters keep denoiser's conv layouts (so checkpoints convert one to one, and state-dict keys read
``encoder.3.conv_in.weight``); the sliced, matmul-ready views are derived per call from the width passed in.

With ``narrow_widths`` (the config's ``width_gains``) a block also holds one gain per output channel for each
of its narrower widths (``width_gain`` [widths, outputs], 1 at the start): a sliced block sums fewer products,
so its outputs come out at another scale than the full block's, which a network without normalization cannot
correct (slimmable networks keep per-width batch-norm statistics for this). The gains are folded into the
sliced weights (conv_out's rows, the transposed conv's output channels): every path that reads ``weights``
uses them, the full width never does, and they cost no multiply-add at inference.

A block offers the few primitives every execution path needs (execution.py picks the path):

- ``weights(width, layout, dtype)``: its weights at a width, in the "linear" layout (F.linear's [out, in]:
  autograd, any leading dimensions) or the "matmul" layout (addmm's [in, out], contiguous: inference into
  preallocated buffers), in the compute dtype of the activations they multiply (bfloat16 under autocast);
- ``hidden(...)``: its internal activation at a width, optionally under a mask (masked execution, padding);
- the way out: the encoder's ``output`` (1x1 conv and GLU), the decoder's ``overlap_add`` (the transposed conv
  as overlap-add of per-tap products into rows of S output samples) and ``output_activation``.

All block math is written time-major ([B, frames, channels]) as matrix products: since kernel_size is a
multiple of stride, a strided K-tap conv over an input viewed as S-sample blocks is K/S matmuls with no
im2col copy, and slicing the weights shrinks those matmuls in proportion (F.conv1d does not scale down).

Symbols: B batch, N frames, C channels, C_in / C_out the block's outer channels, S stride, K kernel size,
taps = K / S, w internal (slimmed) width, E = 2 with GLU (else 1).

Imports only torch and siblings: this file travels to the Hub next to the model as remote code.
"""

import torch
from torch import nn
from torch.nn import functional as F

from .products import linear, linear_glu, records_gradient


def _cast(tensors: tuple, dtype: torch.dtype | None) -> tuple:
    """The floating-point tensors of a tuple in ``dtype`` (unchanged when None or already in it)."""
    if dtype is None:
        return tensors
    return tuple(t.to(dtype) if isinstance(t, torch.Tensor) and t.is_floating_point() else t for t in tensors)


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


def masked(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """hidden times ``mask`` (None: unchanged), in place where autograd does not record."""
    if mask is None:
        return hidden
    return hidden * mask if records_gradient(hidden, mask) else hidden.mul_(mask)


class WidthGains(nn.Module):
    """What a block with per-width output gains shares: ``width_gain`` [len(narrow_widths), outputs] (ones),
    registered only when ``narrow_widths`` is not empty, and ``gain(width)`` that reads a width's row."""

    def _add_width_gains(self, narrow_widths, outputs: int) -> None:
        self.narrow_widths = tuple(int(w) for w in narrow_widths)
        if self.narrow_widths:
            self.width_gain = nn.Parameter(torch.ones(len(self.narrow_widths), outputs))

    def gain(self, width: int) -> torch.Tensor | None:
        """The output gains [outputs] of internal width ``width``; None for a width without (the full one)."""
        if width not in self.narrow_widths:
            return None
        return self.width_gain[self.narrow_widths.index(width)]

    def frame_gains(self, factors: torch.Tensor | None) -> torch.Tensor | None:
        """Per-frame output gains [..., outputs] of frames whose factor is the one-hot ``factors`` [..., J]
        (the masked path's; the widest factor's gains are 1); None without gains."""
        if factors is None or not self.narrow_widths:
            return None
        table = torch.cat([self.width_gain, self.width_gain.new_ones(1, self.width_gain.shape[1])])  # [J, outputs]
        return factors.to(table.dtype) @ table


class SlimEncoderBlock(WidthGains):
    """Conv1d(C_in, C, K, S) -> ReLU -> [internal: first w of C channels] -> Conv1d(C, E*C, 1) -> GLU.

    Slimming keeps conv_in's first w output channels and conv_out's first w input channels; with
    ``narrow_widths``, conv_out's rows at such a width are scaled by its gains [E*C].
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int, stride: int, glu: bool,
                 narrow_widths=()):
        super().__init__()
        self.in_channels, self.channels = in_channels, channels
        self.kernel_size, self.stride, self.glu = kernel_size, stride, glu
        self.conv_in = nn.Conv1d(in_channels, channels, kernel_size, stride)
        self.conv_out = nn.Conv1d(channels, channels * (2 if glu else 1), 1)
        self._add_width_gains(narrow_widths, self.conv_out.out_channels)

    @property
    def taps(self) -> int:
        """Number of S-sample input blocks one output frame reads (K / S)."""
        return self.kernel_size // self.stride

    # ---- the input, seen as S-sample blocks ----

    def input_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, N_in, C_in] -> [B, N_in / S, S*C_in], no copy."""
        batch, n_in, c_in = x.shape
        return x.reshape(batch, n_in // self.stride, self.stride * c_in)

    def tap_views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [B, N_in, C_in] (N_in = (N_out + taps - 1) * S) -> taps views [B, N_out, S * C_in], no copy."""
        blocks = self.input_blocks(x)
        n_out = blocks.shape[1] - self.taps + 1
        return [blocks[:, tap : tap + n_out] for tap in range(self.taps)]

    # ---- weights at a width, in a layout ----

    def weights(self, width: int, layout: str = "linear", dtype: torch.dtype | None = None) -> tuple:
        """The weights at internal width w (cached at inference, see ``sliced_weights``).

        "linear": conv_in's taps [w, taps, S*C_in] and bias [w], conv_out [E*C, w] and bias [E*C].
        "matmul": conv_in's taps [taps, S*C_in, w] and bias [w], the same taps side by side [S*C_in, taps * w]
        (one product over a window of input blocks), conv_out [w, E*C] and bias [E*C].
        """
        build = {"linear": self._linear_layout, "matmul": self._matmul_layout}[layout]
        return sliced_weights(self, width, build, dtype)

    def _out_weight(self, width: int) -> torch.Tensor:
        """conv_out's first w input channels [E*C, w], times the width's gains when it has them."""
        weight, gain = self.conv_out.weight[:, :width, 0], self.gain(width)
        return weight if gain is None else weight * gain[:, None]

    def _linear_layout(self, width: int):
        weight = self.conv_in.weight[:width]  # [w, C_in, K]
        taps = weight.permute(0, 2, 1).reshape(width, self.taps, self.stride * self.in_channels)
        return taps, self.conv_in.bias[:width], self._out_weight(width), self.conv_out.bias

    def _matmul_layout(self, width: int):
        weight = self.conv_in.weight[:width]  # [w, C_in, K]
        taps = weight.permute(2, 1, 0).reshape(self.taps, self.stride * self.in_channels, width).contiguous()
        side_by_side = taps.permute(1, 0, 2).reshape(self.stride * self.in_channels, -1).contiguous()
        out_weight = self._out_weight(width).t().contiguous()  # [w, E*C]
        return taps, self.conv_in.bias[:width], side_by_side, out_weight, self.conv_out.bias

    # ---- the math ----

    def reads_window_once(self, width: int) -> bool:
        """Whether all taps of a window of input blocks are best computed as one product (``tap_products``):
        where the taps' products are no wider than the input (taps * w <= S*C_in: every layer but the first).
        With autograd the input's gradient is then written once, where per-tap views of the input would each
        back-propagate a zero-filled input-sized tensor."""
        return self.taps * width <= self.stride * self.in_channels

    def tap_products(self, blocks: torch.Tensor, width: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Every tap's product of each input block: blocks [..., m, S*C_in] -> [..., m, taps * w], columns
        ordered (tap, channel); written into ``out`` [m, taps * w] (inference, 2-D blocks) when given."""
        if out is None:
            taps = self.weights(width, "linear", blocks.dtype)[0]  # [w, taps, S*C_in]
            return linear(blocks, taps.transpose(0, 1).reshape(self.taps * width, -1))
        return torch.mm(blocks, self.weights(width, "matmul", blocks.dtype)[2], out=out)

    def hidden(self, inputs, width: int, mask: torch.Tensor | None = None, layout: str = "linear") -> torch.Tensor:
        """The internal feature space [..., n, w] of n frames: conv_in's first w channels, ReLU, times ``mask``.

        ``inputs``: the frames' tap inputs (a list of ``taps`` tensors [..., n, S*C_in], e.g. ``tap_views``),
        multiplied by the taps' weights in ``layout`` ("matmul": 2-D inputs, no autograd); or the tap products
        [..., n + taps - 1, taps * w] of their window of input blocks (``tap_products``), whose per-tap parts
        are summed at their shifts.
        """
        dtype = inputs.dtype if isinstance(inputs, torch.Tensor) else inputs[0].dtype
        taps, bias = self.weights(width, layout, dtype)[:2]
        if isinstance(inputs, torch.Tensor):
            n = inputs.shape[-2] - self.taps + 1
            pre = inputs[..., :n, :width] + bias
            for tap in range(1, self.taps):
                pre += inputs[..., tap : tap + n, tap * width : (tap + 1) * width]
        elif layout == "linear":
            pre = linear(inputs[0], taps[:, 0], bias)
            for tap in range(1, self.taps):
                pre = pre.add_(linear(inputs[tap], taps[:, tap]))
        else:
            pre = torch.addmm(bias, inputs[0], taps[0])  # [n, w]
            for tap in range(1, self.taps):
                pre.addmm_(inputs[tap], taps[tap])
        return masked(F.relu(pre) if records_gradient(pre) else pre.relu_(), mask)

    def output(self, hidden: torch.Tensor, width: int, out: torch.Tensor | None = None,
               scratch: torch.Tensor | None = None, gains: torch.Tensor | None = None) -> torch.Tensor:
        """conv_out, then GLU (or ReLU): hidden [..., n, w] -> [..., n, C]. With ``out`` [n, C] (inference, 2-D):
        written into it in one pass, the 1x1 conv's products (bias included) into ``scratch`` [n, E*C]
        (reused across tiles, so it stays in cache). ``gains`` [..., n, E*C]: per-frame output gains (the
        masked path's ``frame_gains``) on the products, before the bias."""
        if gains is not None:
            weight, bias = self.weights(width, "linear", hidden.dtype)[2:]
            products = linear(hidden, weight) * gains + bias
            return F.glu(products, dim=-1) if self.glu else F.relu(products)
        if out is None:
            weight, bias = self.weights(width, "linear", hidden.dtype)[2:]
            return linear_glu(hidden, weight, bias) if self.glu else F.relu(linear(hidden, weight, bias))
        weight, bias = self.weights(width, "matmul", out.dtype)[3:]  # [w, E*C], [E*C]
        if not self.glu:
            return torch.addmm(bias, hidden, weight, out=out).relu_()
        products = torch.addmm(bias, hidden, weight, out=scratch)  # [n, 2C]: value and gate halves
        return torch.ops.aten.glu.out(products, -1, out=out)

    def frames(self, inputs, width: int, mask: torch.Tensor | None = None, out: torch.Tensor | None = None,
               scratch: torch.Tensor | None = None) -> torch.Tensor:
        """Output frames [..., n, C] at internal width w from their tap inputs or tap products (``hidden``);
        with ``out`` (inference, 2-D) through the matmul layout into it (``output``)."""
        layout = "linear" if out is None else "matmul"
        return self.output(self.hidden(inputs, width, mask, layout), width, out, scratch)

    def forward_all_frames(self, x: torch.Tensor, width: int, mask: torch.Tensor | None = None,
                           gains: torch.Tensor | None = None) -> torch.Tensor:
        """Every frame at one width: x [B, N_in, C_in] -> [B, N_out, C] (the autograd and masked paths);
        ``gains`` [B, N_out, E*C]: per-frame output gains (masked path, ``frame_gains``)."""
        if self.reads_window_once(width):
            inputs = self.tap_products(self.input_blocks(x), width)
        else:
            inputs = self.tap_views(x)
        return self.output(self.hidden(inputs, width, mask), width, gains=gains)


class SlimDecoderBlock(WidthGains):
    """Conv1d(C, E*C, 1) -> GLU -> [internal: w of C channels] -> ConvTranspose1d(C, C_out, K, S) -> ReLU.

    Slimming is GLU-aware: conv_in keeps rows [0, w) of the value half AND rows [C, C + w) of the gate half;
    conv_tr keeps its first w input channels (scaled per output channel by the width's gains [C_out] with
    ``narrow_widths``). No ReLU after the outermost block.

    The transposed conv writes output row blocks of S samples ([..., S*C_out] rows): frame f adds
    hidden[f] @ T_t to row f + t for each tap t (overlap-add), so N frames give N + taps - 1 rows.
    """

    def __init__(self, channels: int, out_channels: int, kernel_size: int, stride: int, glu: bool, last: bool,
                 narrow_widths=()):
        super().__init__()
        self.channels, self.out_channels = channels, out_channels
        self.kernel_size, self.stride, self.glu, self.last = kernel_size, stride, glu, last
        self.conv_in = nn.Conv1d(channels, channels * (2 if glu else 1), 1)
        self.conv_tr = nn.ConvTranspose1d(channels, out_channels, kernel_size, stride)
        self._add_width_gains(narrow_widths, out_channels)

    @property
    def taps(self) -> int:
        """Number of output row blocks one frame reaches (K / S)."""
        return self.kernel_size // self.stride

    # ---- weights at a width, in a layout ----

    def weights(self, width: int, layout: str = "linear", dtype: torch.dtype | None = None) -> tuple:
        """The weights at internal width w (cached at inference, see ``sliced_weights``).

        "linear": conv_in [E*w, C] (GLU halves sliced separately) and bias [E*w], the transposed conv's taps
        [K*C_out, w] with rows ordered (tap, sample within the stride, output channel).
        "matmul": conv_in [C, E*w] (the value rows' w columns, then the gate rows' w) and bias [E*w], the
        transposed conv's taps [taps, w, S*C_out].
        """
        build = {"linear": self._linear_layout, "matmul": self._matmul_layout}[layout]
        return sliced_weights(self, width, build, dtype)

    def _linear_layout(self, width: int):
        weight, bias = self.conv_in.weight[:, :, 0], self.conv_in.bias
        if self.glu:
            rows = slice(0, width), slice(self.channels, self.channels + width)
            weight = torch.cat([weight[rows[0]], weight[rows[1]]])
            bias = torch.cat([bias[rows[0]], bias[rows[1]]])
        else:
            weight, bias = weight[:width], bias[:width]
        taps = self._tr_weight(width).permute(2, 1, 0).reshape(self.kernel_size * self.out_channels, width)
        return weight, bias, taps

    def _tr_weight(self, width: int) -> torch.Tensor:
        """conv_tr's first w input channels [w, C_out, K], times the width's gains when it has them."""
        weight, gain = self.conv_tr.weight[:width], self.gain(width)
        return weight if gain is None else weight * gain[None, :, None]

    def _matmul_layout(self, width: int):
        in_weight, in_bias, _ = self._linear_layout(width)  # [E*w, C], [E*w]
        taps = self._tr_weight(width).permute(0, 2, 1)  # [w, K, C_out], K = taps * S
        taps = taps.reshape(width, self.taps, self.stride * self.out_channels).transpose(0, 1).contiguous()
        return in_weight.t().contiguous(), in_bias, taps

    def row_bias(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The transposed conv's bias for one output row block of S samples: [S*C_out], in ``dtype``."""
        bias = self.conv_tr.bias.repeat(self.stride)
        return bias if dtype is None else bias.to(dtype)

    # ---- the math ----

    def hidden(self, x: torch.Tensor, width: int, mask: torch.Tensor | None = None, layout: str = "linear",
               out: torch.Tensor | None = None) -> torch.Tensor:
        """The internal feature space: 1x1 conv, then GLU (or ReLU), times ``mask``: x [..., n, C] -> [..., n, w].
        "matmul" (inference, 2-D x): one narrow product for both GLU halves, then the GLU in one pass, into
        ``out`` [n, w] when given."""
        in_weight, in_bias = self.weights(width, layout, x.dtype)[:2]
        if layout == "linear":
            hidden = linear_glu(x, in_weight, in_bias) if self.glu else F.relu(linear(x, in_weight, in_bias))
            return masked(hidden, mask)
        products = torch.addmm(in_bias, x, in_weight)  # [n, E*w]
        if self.glu:
            hidden = torch.ops.aten.glu.out(products, -1, out=out) if out is not None else F.glu(products, dim=-1)
        else:
            hidden = products.relu_() if out is None else torch.clamp_min(products, 0, out=out)
        return masked(hidden, mask)

    def overlap_add(self, hidden: torch.Tensor, width: int, out: torch.Tensor, index: torch.Tensor | None = None,
                    group: int = 1, buffer: torch.Tensor | None = None) -> torch.Tensor:
        """The transposed conv's products added into output rows ``out`` [R, S*C_out] in place.

        Without ``index`` (no autograd): frame i of hidden [m, w] adds to rows i .. i + taps - 1 (``out`` holds
        the m + taps - 1 rows they reach). With ``index`` (autograd too, ``index_add_``): the m frames of hidden
        [..., w] come in m / group runs of ``group`` consecutive frames, run j's first frame reaching rows from
        index[j] * group on (group 1: arbitrary rows; a router frame's F frames: whole [F, S*C_out] blocks);
        ``buffer`` [m, S*C_out] takes a tap's products at inference.
        """
        row = self.stride * self.out_channels
        if index is None:
            per_tap = self.weights(width, "matmul", out.dtype)[2]  # [taps, w, S*C_out]
            for tap in range(self.taps):  # [m, w] @ [w, S*C_out] into rows tap .. tap + m - 1
                out[tap : tap + hidden.shape[0]].addmm_(hidden, per_tap[tap])
            return out
        recording = records_gradient(hidden)
        per_tap = self.weights(width, "linear" if recording else "matmul", hidden.dtype)[2]
        for tap in range(self.taps):
            if recording:
                contribution = linear(hidden, per_tap.reshape(self.taps, row, width)[tap])  # [m, S*C_out]
            else:
                contribution = torch.mm(hidden, per_tap[tap], out=buffer)
            if group == 1:
                out.index_add_(0, index + tap, contribution.reshape(-1, row))
            else:
                rows = (out.shape[0] - tap) // group * group
                out[tap : tap + rows].view(-1, group * row).index_add_(0, index, contribution.view(-1, group * row))
        return out

    def output_activation(self, rows: torch.Tensor) -> torch.Tensor:
        """ReLU (in place) on complete output rows, but after the outermost block."""
        return rows if self.last else rows.relu_()

    def forward_all_frames(self, x: torch.Tensor, width: int, mask: torch.Tensor | None = None,
                           gains: torch.Tensor | None = None) -> torch.Tensor:
        """Every frame at one width: x [B, N, C] -> [B, (N + taps - 1) * S, C_out] (+ bias, ReLU), for autograd.

        Output row r is sum over taps t of hidden[r - t] @ T_t, computed as matmuls over shifted views of the
        (narrow) zero-padded hidden activations, so no [B, N, K*C_out] intermediate is written. ``gains``
        [B, N, C_out]: per-frame output gains (masked path, ``frame_gains``) on each frame's products."""
        taps = self.weights(width, "linear", x.dtype)[2]
        hidden = self.hidden(x, width, mask)  # [B, N, w]
        batch, n_frames, _ = hidden.shape
        shift = self.taps - 1
        padded = F.pad(hidden, (0, 0, shift, shift))  # [B, N + 2 * shift, w]
        per_tap = taps.reshape(self.taps, self.stride * self.out_channels, width)
        if gains is not None:  # per output row block [S*C_out], sample-major like the taps' rows
            gains = F.pad(gains, (0, 0, shift, shift)).repeat(1, 1, self.stride)
        out = None
        for tap in range(self.taps):
            rows = slice(shift - tap, shift - tap + n_frames + shift)  # the frames whose tap t reaches each row
            product = linear(padded[:, rows], per_tap[tap])
            product = product if gains is None else product * gains[:, rows]
            out = product + self.row_bias(x.dtype) if out is None else out.add_(product)
        out = out.reshape(batch, -1, self.out_channels)  # [B, (N + taps - 1) * S, C_out]
        return self.output_activation(out)  # in place: out is this block's own sum of products


__all__ = ["SlimDecoderBlock", "SlimEncoderBlock", "WidthGains", "masked", "sliced_weights"]
