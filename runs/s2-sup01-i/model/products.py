"""Matrix products of slimmed shapes, with the autograd functions that make them fast.

A slimmed block multiplies very tall matrices (every frame of a batch) by narrow ones (a few channels). MKL
handles some of those shapes badly, and autograd's operand order for weight gradients is 10-15x slower than
the other order on some of them (measured on this CPU, one thread: [512672, 64]^T @ [512672, 4] 270 ms, as
([512672, 4]^T @ [512672, 64])^T 18 ms; a product [128168, 8] @ [8, 128] 20 ms in one call, 9 ms in tiles of
2048 rows). ``linear`` and ``linear_glu`` give F.linear's (and F.glu's) values in the faster forms; the blocks
(blocks.py) compute with them. Beside them: the few torch helpers the model's files share (whether a call is
traced or records gradients, the autocast dtype, ``compiled`` for the recurrences' per-step loops).

Imports only torch: this file travels to the Hub next to the model as remote code.
"""

import functools
import warnings

import torch
from torch.nn import functional as F

LINEAR_TILE_ROWS = 2048


def tracing() -> bool:
    """Whether torch.compile, torch.export or torch.jit is tracing this call (shapes may be symbolic)."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


@functools.cache
def compiled(function):
    """``function`` compiled by TorchScript: a recurrence's per-step loop (bottleneck.py, router.py) without
    Python between its operations. ``function`` itself where TorchScript cannot compile it (it is deprecated in
    torch 2.x, not removed); the two compute the same."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.script(function)
    except Exception:  # noqa: BLE001 - whatever TorchScript fails with, the identical Python function runs
        return function


def _plain_product(x: torch.Tensor) -> bool:
    """Whether x [..., K] goes to the plain F.linear: traced graphs, and inputs of at most 8 tiles of rows."""
    return tracing() or x.numel() <= 8 * LINEAR_TILE_ROWS * x.shape[-1]


def records_gradient(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd records an operation on these tensors (None entries are skipped)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The reduced-precision dtype an enclosing ``torch.autocast`` region asks for on ``device_type`` ("cpu",
    "cuda"), or None outside one. The model reads it once per call and runs its encoder and decoder blocks in
    it explicitly (their products are written with ``out=`` buffers, which autocast cannot re-type); the
    normalisation, resampling, router, recurrent bottleneck and losses stay in the parameters' dtype."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


# Inference precisions a user can ask for (the pipeline's and the streamer's ``precision``, the CLI's
# --precision): the dtype the encoder and decoder blocks compute in, None for the parameters' own.
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


@functools.cache
def cpu_bf16_is_native() -> bool | None:
    """Whether this CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX tiles), None when torch cannot tell
    (asked once per process: every bf16 pipeline call checks it).
    Without either, oneDNN emulates bfloat16 and the model runs many times slower than in float32 (seen on
    2026-12-06 on an AMD EPYC with AVX2 only: docs/results/2026-12-06-avx2-machine-and-pause-loss.md)."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    answers = [bool(probe()) for probe in probes if callable(probe)]
    return any(answers) if answers else None


BF16_EMULATED = ("this CPU has neither AVX-512 BF16 nor AMX, so bfloat16 is emulated and runs many times slower "
                 "than float32")


def precision_dtype(precision: str) -> torch.dtype | None:
    """``precision`` ("fp32" or "bf16") -> the blocks' compute dtype (None: the parameters' own, float32).
    "bf16" on a CPU that only emulates bfloat16 is honoured, with a warning."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}.")
    if precision == "bf16" and cpu_bf16_is_native() is False:
        warnings.warn(f'precision="bf16": {BF16_EMULATED}; "fp32" is the fast choice here.', stacklevel=2)
    return PRECISIONS[precision]


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


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias): x [..., K], weight [N, K] -> [..., N], computed as ``_Linear`` does for tall
    inputs (more than 8 tiles of rows); shorter ones (a stream's few frames) go to F.linear, whose per-call
    overhead is lower and whose shapes are then harmless. Traced graphs (torch.export, torch.compile, ONNX)
    get the plain F.linear: their shapes may be symbolic, and the compiler picks its own kernels."""
    if _plain_product(x):
        return F.linear(x, weight, bias)
    if records_gradient(x, weight, bias):
        return _Linear.apply(x, weight, bias)
    out = x.new_empty(*x.shape[:-1], weight.shape[0])
    _product(x.reshape(-1, x.shape[-1]), weight.t(), bias, out.view(-1, weight.shape[0]))
    return out


def linear_glu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.glu(F.linear(x, weight, bias), dim=-1): x [..., K], weight [2C, K] (value rows, then gate rows) ->
    [..., C]; with autograd on tall inputs as ``_LinearGLU`` (a backward without the strided sigmoid)."""
    if _plain_product(x) or not records_gradient(x, weight, bias):
        return F.glu(linear(x, weight, bias), dim=-1)
    return _LinearGLU.apply(x, weight, bias)


__all__ = [
    "LINEAR_TILE_ROWS",
    "PRECISIONS",
    "autocast_dtype",
    "compiled",
    "cpu_bf16_is_native",
    "linear",
    "linear_glu",
    "precision_dtype",
    "records_gradient",
    "tracing",
]
