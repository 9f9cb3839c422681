"""ONNX export of the adaptive-slimming DEMUCS: one graph per static utilization factor, and the router.

    from adaslim_hf import AdaSlimModel
    from adaslim_hf.export import export_onnx, export_router_onnx
    model = AdaSlimModel.from_pretrained("org/adaslim-demucs")
    export_onnx(model, "adaslim-u0.25.onnx", utilization=0.25)   # input_values [B, T] -> enhanced_values [B, T]
    export_router_onnx(model, "adaslim-router.onnx")             # input_values [B, T] -> router_logits [B, N, J]

Both graphs take any batch size and any number of samples T >= 1 (dynamic axes) at ``config.sample_rate``,
and do what ``AdaSlimModel.forward`` does for an unpadded batch: normalise by the standard deviation, pad
to ``config.valid_length(T)``, run, crop, rescale. They are traced by ``torch.onnx.export(..., dynamo=True)``
from export-only modules (``StaticExport``, ``RouterExport``) that reuse the model's own blocks and
parameters, with three substitutions, each computing the same function as the model's inference code:

- the loop-free all-frames path of the blocks (``SlimEncoderBlock.frames``, ``SlimDecoderBlock.
  forward_all_frames``, the paths training runs) instead of the cache-sized tiles, whose count is a Python
  loop over the length;
- the bottleneck's groups as one ``nn.GRU`` call each (ONNX ``GRU``), instead of the fused recurrence (a
  Python loop over frames);
- the router's diagonal GRU as an ``nn.GRU`` whose recurrent matrices are diagonal (exact: the gate
  equations are torch's GRU with W_hh = diag(u), b_hh = c), and the sinc filter of the model's resampling
  functions as ``F.conv1d`` with the same kernel instead of a banded Toeplitz matmul over ``unfold`` windows.

Per-frame (dynamic) routing is not exported: its gather/scatter by chosen factor is data-dependent control
flow. A runtime that wants adaptive compute runs the router graph and one static graph per chunk.

Needs the ``export`` extra (onnx, onnxscript; onnxruntime to check the result).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from . import __version__
from .bottleneck import DemucsLSTM, GroupedGRU
from .configuration_adaslim import AdaSlimConfig
from .macs import macs_per_sample, router_macs_per_frame
from .modeling_adaslim import AdaSlimModel
from .resample import SINC_ZEROS, downsample2_even, resample_stages, sinc_kernel, upsample2
from .router import DiagonalGRU

DEFAULT_OPSET = 18
FOLD_LIMIT = 1 << 28  # elements: constant-fold every weight computation, whatever its size
EXAMPLE_SECONDS = 1.0  # length of the example input the graph is traced with (any length runs afterwards)


# ----------------------------------------------------------------------------------------------------
# Shape arithmetic. The deepest layer's frame count M is computed from the length T inside the graph and
# read back as a fresh symbol (``.item()``): every later size is then linear in M (the padded length is
# (stride**depth / resample) * M + c), so torch.export proves the strided reshapes exact. Written with floor
# divisions of T directly, the sizes become nested FloorDiv/Max expressions whose divisibility sympy cannot
# prove, and the exporter specialises the graph to the example's length.
# ----------------------------------------------------------------------------------------------------


def _ceil_div(a, b: int):
    """ceil(a / b) for a >= 0, written (a + b - 1) // b: the same under floor and truncating division (ONNX's
    integer Div truncates, so -(-a // b) would be wrong there). For a < 0 it gives a value <= 0, which the
    frame count below clamps to 1 as the exact ceiling does."""
    return (a + b - 1) // b


def bottleneck_frames(config: AdaSlimConfig, length):
    """Frames of the deepest layer for ``length`` input samples (int or integer tensor):
    config.frames_per_layer(length)[-1]."""
    frames = length * config.resample
    for _ in range(config.depth):
        frames = _ceil_div(frames - config.kernel_size, config.stride) + 1
        frames = frames.clamp(min=1) if isinstance(frames, torch.Tensor) else max(frames, 1)
    return frames


def padded_length(config: AdaSlimConfig, frames):
    """config.valid_length(T) from the deepest layer's frame count M for T: the transposed convs' output
    length, back at the input rate (an exact division whenever stride**depth is a multiple of resample)."""
    for _ in range(config.depth):
        frames = (frames - 1) * config.stride + config.kernel_size
    return _ceil_div(frames, config.resample)


def _symbolic_router_frames(config: AdaSlimConfig, length) -> int:
    """config.num_router_frames(length) (one per hop begun), as a graph value read back as a symbol."""
    frames = _ceil_div(torch.scalar_tensor(length, dtype=torch.long), config.router_hop).item()
    torch._check(frames >= 1)
    torch._check(frames * config.router_hop >= length)
    return frames


def _symbolic_frames(config: AdaSlimConfig, length) -> int:
    """The deepest layer's frame count for ``length`` samples, as a graph value read back as a symbol."""
    frames = bottleneck_frames(config, torch.scalar_tensor(length, dtype=torch.long)).item()
    torch._check(frames >= 1)
    torch._check(padded_length(config, frames) >= length)
    return frames


# ----------------------------------------------------------------------------------------------------
# Shared pieces: normalisation and resampling as the model computes them.
# ----------------------------------------------------------------------------------------------------


class _Frontend(nn.Module):
    """[B, T] or [B, chin, T] -> (normalised [B, chin, T], std [B, 1, 1]), as AdaSlimModel.forward without
    a padding mask; and windowed-sinc resampling by 2 as plain convolutions."""

    def __init__(self, config: AdaSlimConfig):
        super().__init__()
        self.config = config
        self.register_buffer("sinc", sinc_kernel(), persistent=False)  # [1, 1, 2 * SINC_ZEROS]

    def channels_first(self, input_values: torch.Tensor) -> torch.Tensor:
        return input_values.unsqueeze(1) if self.config.chin == 1 else input_values

    def normalise(self, x: torch.Tensor):
        config = self.config
        if not config.normalize:
            return x, torch.ones_like(x[:, :1, :1])
        mono = x.mean(dim=1)  # [B, T]
        length = mono.shape[-1]
        mean = mono.mean(dim=1, keepdim=True)
        variance = ((mono - mean) ** 2).sum(dim=1) / torch.sym_max(length - 1, 1)
        std = variance.sqrt()[:, None, None]  # [B, 1, 1]
        return x / (config.floor + std), std

    def sinc_filter(self, signal: torch.Tensor) -> torch.Tensor:
        """[M, 1, T] -> [M, 1, T + 1], resample.sinc_filter as the convolution it stands for."""
        return F.conv1d(signal, self.sinc, padding=SINC_ZEROS)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T] -> [B, C, T * U]: the model's up-sampling with the convolution as its filter."""
        for _ in range(resample_stages(self.config.resample)):
            x = upsample2(x, self.sinc_filter)
        return x

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T * U] -> [B, C, T]: the model's down-sampling with the convolution as its filter (every
        length is even here: T * U is a multiple of the resample factor)."""
        for _ in range(resample_stages(self.config.resample)):
            x = downsample2_even(x, self.sinc_filter)
        return x


# ----------------------------------------------------------------------------------------------------
# Export-only modules
# ----------------------------------------------------------------------------------------------------


# The recurrences as one custom op per layer. torch.export gives aten.gru / aten.lstm no symbolic shape rule
# (fake tensors run a decomposition that unrolls the frames, fixing the time axis to the example's), so the
# layer is an opaque op with a shape rule, translated to ONNX's native GRU / LSTM operator.


@torch.library.custom_op("adaslim_export::recurrent_layer", mutates_args=())
def recurrent_layer(
    input: torch.Tensor, params: list[torch.Tensor], kind: str, bidirectional: bool, hidden_size: int
) -> torch.Tensor:
    """One layer of ``nn.GRU`` / ``nn.LSTM`` (batch_first, biases, zero initial state): [B, N, I] ->
    [B, N, D * H]. ``params``: weight_ih, weight_hh, bias_ih, bias_hh per direction, torch's layouts."""
    directions = 2 if bidirectional else 1
    zeros = input.new_zeros(directions, input.shape[0], hidden_size)
    if kind == "gru":
        return torch.ops.aten.gru.input(input, zeros, params, True, 1, 0.0, False, bidirectional, True)[0]
    return torch.ops.aten.lstm.input(input, [zeros, zeros], params, True, 1, 0.0, False, bidirectional, True)[0]


@recurrent_layer.register_fake
def _recurrent_layer_shape(input, params, kind, bidirectional, hidden_size):
    return input.new_empty(input.shape[0], input.shape[1], (2 if bidirectional else 1) * hidden_size)


def _onnx_recurrent_layer(input, params, kind: str, bidirectional: bool, hidden_size: int):
    """ONNX translation of ``recurrent_layer``: one GRU (linear_before_reset=1, torch's formulation) or LSTM
    node. Gates are reordered from torch's (r, z, n) / (i, f, g, o) to ONNX's (z, r, h) / (i, o, f, c)."""
    from onnxscript import opset18 as op

    gates, order = (3, (1, 0, 2)) if kind == "gru" else (4, (0, 3, 1, 2))

    def reorder(tensor):
        parts = [op.Slice(tensor, [k * hidden_size], [(k + 1) * hidden_size], [0]) for k in range(gates)]
        return op.Concat(*[parts[k] for k in order], axis=0)

    weights, recurrent, biases = [], [], []
    for direction in range(2 if bidirectional else 1):
        w_ih, w_hh, b_ih, b_hh = params[4 * direction : 4 * direction + 4]
        weights.append(op.Unsqueeze(reorder(w_ih), [0]))  # [1, gates * H, I]
        recurrent.append(op.Unsqueeze(reorder(w_hh), [0]))  # [1, gates * H, H]
        biases.append(op.Unsqueeze(op.Concat(reorder(b_ih), reorder(b_hh), axis=0), [0]))  # [1, 2 * gates * H]
    w, r, b = (op.Concat(*parts, axis=0) for parts in (weights, recurrent, biases))
    x = op.Transpose(input, perm=[1, 0, 2])  # [N, B, I]
    direction = "bidirectional" if bidirectional else "forward"
    if kind == "gru":
        y = op.GRU(x, w, r, b, hidden_size=hidden_size, direction=direction, linear_before_reset=1)[0]
    else:
        y = op.LSTM(x, w, r, b, hidden_size=hidden_size, direction=direction)[0]
    y = op.Transpose(y, perm=[2, 0, 1, 3])  # [N, D, B, H] -> [B, N, D, H]
    return op.Reshape(y, op.Constant(value_ints=[0, 0, -1]))  # [B, N, D * H]


CUSTOM_TRANSLATIONS = {torch.ops.adaslim_export.recurrent_layer.default: _onnx_recurrent_layer}


def run_rnn(rnn: nn.GRU | nn.LSTM, x: torch.Tensor) -> torch.Tensor:
    """``rnn(x)[0]`` for a batch_first nn.GRU / nn.LSTM with biases and zero initial state, layer by layer
    through ``recurrent_layer``."""
    if not (rnn.batch_first and rnn.bias and getattr(rnn, "proj_size", 0) == 0):
        raise ValueError("export supports batch_first recurrent layers with biases and no projection.")
    kind = "gru" if isinstance(rnn, nn.GRU) else "lstm"
    suffixes = ("", "_reverse") if rnn.bidirectional else ("",)
    for layer in range(rnn.num_layers):
        params = [getattr(rnn, f"{name}_l{layer}{suffix}") for suffix in suffixes
                  for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        x = recurrent_layer(x, params, kind, rnn.bidirectional, rnn.hidden_size)
    return x


def run_bottleneck(bottleneck: nn.Module, x: torch.Tensor, groups: int | None = None) -> torch.Tensor:
    """The model's bottleneck [B, N, C] -> [B, N, C] without Python loops over frames. The grouped GRU's
    fused one-layer recurrence equals one nn.GRU call per group (``GroupedGRU.forward_per_group``); ``groups``:
    only the first groups run (a slimmed bottleneck at a static factor), the others put out zeros."""
    if isinstance(bottleneck, DemucsLSTM):
        x = run_rnn(bottleneck.lstm, x)
        return bottleneck.linear(x) if bottleneck.linear is not None else x
    if not isinstance(bottleneck, GroupedGRU):
        raise TypeError(f"unsupported bottleneck {type(bottleneck).__name__}")
    return bottleneck.forward_per_group(x, run_rnn, groups)


class StaticExport(nn.Module):
    """AdaSlimModel at one static factor, loop-free: input_values [B, T] (or [B, chin, T]) -> enhanced
    values of the same shape. Shares the model's parameters; for tracing only (run it with autograd
    enabled, which selects the blocks' all-frames path)."""

    def __init__(self, model: AdaSlimModel, utilization: float):
        super().__init__()
        config = model.config
        self.config = config
        self.utilization = float(utilization)
        index = config.factor_index(utilization)
        self.widths = [config.slim_width(layer, index) for layer in range(config.depth)]
        self.bottleneck_groups = config.bottleneck_active_groups(index) if config.slim_bottleneck else None
        self.frontend = _Frontend(config)
        self.encoder, self.decoder, self.bottleneck = model.encoder, model.decoder, model.bottleneck
        self.training = False  # this wrapper only (no Dropout/BatchNorm anywhere); the model's modes are untouched

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        # B: batch, T: samples, L: padded length, U: resample factor, N_l: frames of layer l, C_l: channels
        config = self.config
        x = self.frontend.channels_first(input_values)  # [B, chin, T]
        length = x.shape[-1]
        x, std = self.frontend.normalise(x)
        frames = _symbolic_frames(config, length)  # M, frames of the deepest layer
        x = F.pad(x, (0, padded_length(config, frames) - length))  # [B, chin, L]
        x = self.frontend.upsample(x).transpose(1, 2)  # [B, L*U, chin]
        skips = []
        for block, width in zip(self.encoder, self.widths):
            x = block.frames(block.tap_views(x), width)  # [B, N_l, C_l]
            skips.append(x)
        x = run_bottleneck(self.bottleneck, x, self.bottleneck_groups)  # [B, N_depth, C_depth]
        for block, width in zip(self.decoder, reversed(self.widths)):
            skip = skips.pop()
            x = block.forward_all_frames(x + skip[:, : x.shape[1]], width)  # [B, N_{l-1}, C_{l-1}]
        x = self.frontend.downsample(x.transpose(1, 2))  # [B, chout, L]
        enhanced = F.pad(x, (0, length - x.shape[-1])) * std  # cropped to [B, chout, T]
        return enhanced[:, 0] if input_values.dim() == 2 else enhanced


def diagonal_gru_as_gru(forward: DiagonalGRU, backward: DiagonalGRU | None = None) -> nn.GRU:
    """An nn.GRU computing the router's DiagonalGRU exactly (bidirectional with ``backward``).

    DiagonalGRU: z = sigmoid(W_z x + u_z * h + c_z), r = sigmoid(W_r x + u_r * h + c_r),
    n = tanh(W_n x + r * (u_n * h + c_n)), h' = (1 - z) * n + z * h, chunks ordered (z, r, n).
    torch's GRU is the same with W_hh h + b_hh in place of u * h + c, gates ordered (r, z, n): so
    W_ih, b_ih = the input projection reordered, W_hh = diag(u) per gate, b_hh = c.
    """
    hidden = forward.hidden_size
    gru = nn.GRU(forward.input_projection.in_features, hidden, batch_first=True, bidirectional=backward is not None)
    order = torch.cat([torch.arange(hidden, 2 * hidden), torch.arange(hidden), torch.arange(2 * hidden, 3 * hidden)])
    with torch.no_grad():
        for suffix, source in (("", forward), ("_reverse", backward)):
            if source is None:
                continue
            getattr(gru, f"weight_ih_l0{suffix}").copy_(source.input_projection.weight[order])
            getattr(gru, f"bias_ih_l0{suffix}").copy_(source.input_projection.bias[order])
            u = source.recurrent_weight[order]
            diagonal = torch.cat([torch.diag(part) for part in u.split(hidden)])  # [3H, H]
            getattr(gru, f"weight_hh_l0{suffix}").copy_(diagonal)
            getattr(gru, f"bias_hh_l0{suffix}").copy_(source.recurrent_bias[order])
    return gru.to(forward.recurrent_weight.dtype)


class RouterExport(nn.Module):
    """The router alone: input_values [B, T] (or [B, chin, T]) -> router_logits [B, N, J], N =
    config.num_router_frames(T), J factors; arg max over J is the model's per-frame choice at inference."""

    def __init__(self, model: AdaSlimModel):
        super().__init__()
        config = model.config
        self.config = config
        self.frontend = _Frontend(config)
        self.router = model.router  # its front end and projection; its recurrence as an nn.GRU:
        self.gru = diagonal_gru_as_gru(model.router.gru, model.router.gru_reverse)
        self.training = False  # this wrapper only; the model's modes are untouched

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        config = self.config
        x = self.frontend.channels_first(input_values)  # [B, chin, T]
        length = x.shape[-1]
        x, _ = self.frontend.normalise(x)
        num_frames = _symbolic_router_frames(config, length)  # N = config.num_router_frames(T)
        # decision r reads the hop router_delay hops before its own: [B, chin, N * hop] from delay zeros on
        hop, delay = self.router.hop, self.router.delay
        x = F.pad(x, (delay, num_frames * hop - delay - length))
        features = self.router.features(x)  # [B, N, router_channels]
        hidden = run_rnn(self.gru, features)  # [B, N, directions * router_hidden]
        return self.router.scores(hidden)  # [B, N, J]


# ----------------------------------------------------------------------------------------------------
# Export functions
# ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's chatter about torch internals (missing torchvision kernels, deprecations in
    its own passes, RNN weights seen as plain attributes): none of it is about this model."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.")
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*_check_is_size")
            warnings.filterwarnings("ignore", category=UserWarning, message=r".*(tensor attributes|not a parameter|_flat_weights)")
            yield
    finally:
        logger.setLevel(level)


def _name_axes(model, names: dict[int, str]) -> None:
    """Rename the input's symbolic axes (torch.export calls them s0, s1...) to ``names`` everywhere in the graph."""
    import onnx_ir

    (graph_input,) = model.graph.inputs
    renames = {str(graph_input.shape[axis]): name for axis, name in names.items()
               if not isinstance(graph_input.shape[axis], int)}
    values = [*model.graph.inputs, *model.graph.outputs, *(out for node in model.graph for out in node.outputs)]
    for value in values:
        if value.shape is None:
            continue
        dims = [renames.get(str(dim), dim) if not isinstance(dim, int) else dim for dim in value.shape]
        if any(isinstance(dim, str) for dim in dims):
            value.shape = onnx_ir.Shape([onnx_ir.SymbolicDim(d) if isinstance(d, str) else d for d in dims])


def _export(module: nn.Module, path, example: torch.Tensor, output_name: str, opset: int, dynamic: bool,
            metadata: dict) -> Path:
    path = Path(path)
    if path.exists() and path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give the path of the .onnx file to write.")
    dynamic_shapes = None
    if dynamic:
        time_axis = example.dim() - 1
        dynamic_shapes = {"input_values": {0: torch.export.Dim("batch"), time_axis: torch.export.Dim("samples")}}
    with _quiet_exporter():
        # torch.export first, on its own: it raises when the graph would only hold for the example's length
        # (torch.onnx.export would fall back to a specialised graph without a word). Autograd is on while
        # tracing: that selects the blocks' loop-free all-frames path and rebuilds the sliced weights from the
        # parameters (the inference-time weight cache keys on data pointers, which traced tensors lack).
        with torch.enable_grad():
            program = torch.export.export(module, (example,), dynamic_shapes=dynamic_shapes, strict=False)
        with torch.no_grad():
            program = torch.onnx.export(
                program,
                dynamo=True,
                input_names=["input_values"],
                output_names=[output_name],
                custom_translation_table=CUSTOM_TRANSLATIONS,
                opset_version=opset,
                optimize=False,  # optimised below, with folding limits that cover the weights
                verbose=False,
            )
    if dynamic:
        _name_axes(program.model, {0: "batch", example.dim() - 1: "samples"})
    # The exporter's optimisation pass, with constant folding extended to tensors of any size (its default
    # leaves those above 8k elements alone): the weight slicing and the recurrent gates' reordering become
    # initializers, so a graph for factor u stores only the weights it uses and slices nothing at run time
    # (paper's backbone at u = 0.125: 18.6 MB -> 3.9 MB).
    import onnxscript.optimizer

    onnxscript.optimizer.optimize(program.model, input_size_limit=FOLD_LIMIT, output_size_limit=FOLD_LIMIT)
    program.model.metadata_props.update({f"adaslim.{key}": json.dumps(value) for key, value in metadata.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        program.save(tmp)
        os.replace(tmp, path)  # a reader never sees a half-written graph
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _example(model: AdaSlimModel, samples: int | None, dynamic: bool) -> torch.Tensor:
    """The tracing input: batch 2 for dynamic axes (torch.export specialises axes of size 0 or 1), else 1."""
    config = model.config
    samples = samples or int(EXAMPLE_SECONDS * config.sample_rate)
    batch = 2 if dynamic else 1
    if dynamic and samples < 2:
        raise ValueError(f"example_samples must be >= 2 for a dynamic time axis, got {samples}.")
    shape = (batch, samples) if config.chin == 1 else (batch, config.chin, samples)
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(*shape, generator=generator) * 0.1).to(device=model.device, dtype=model.dtype)


def _common_metadata(model: AdaSlimModel) -> dict:
    config = model.config
    return {"sample_rate": config.sample_rate, "utilization_factors": list(config.utilization_factors),
            "router_hop": config.router_hop, "version": __version__}


def export_onnx(model: AdaSlimModel, path, utilization: float, *, opset: int = DEFAULT_OPSET,
                dynamic: bool = True, example_samples: int | None = None) -> Path:
    """Write the ONNX graph of ``model`` at the static factor ``utilization`` to ``path`` (atomically).

    Graph: ``input_values`` [batch, samples] ([batch, chin, samples] when chin > 1), the model's dtype, at
    ``config.sample_rate`` -> ``enhanced_values`` of the same shape, any batch and length >= 1 sample.
    ``dynamic=False`` fixes the shape to batch 1 and ``example_samples`` (default 1 s), for runtimes that
    want static shapes. The model's mode and parameters are left as they were.
    Metadata (``adaslim.*`` keys, JSON values): graph kind, utilization, MACs per sample, sample rate, factors.
    Raises ValueError for a factor that is not configured.
    """
    config = model.config
    config.factor_index(utilization)  # ValueError listing the configured factors
    module = StaticExport(model, utilization)
    metadata = {"graph": "static", "utilization": float(utilization),
                "macs_per_sample": macs_per_sample(config, utilization, router=False)["total"],
                **_common_metadata(model)}
    return _export(module, path, _example(model, example_samples, dynamic), "enhanced_values", opset, dynamic, metadata)


def export_router_onnx(model: AdaSlimModel, path, *, opset: int = DEFAULT_OPSET, dynamic: bool = True,
                       example_samples: int | None = None) -> Path:
    """Write the ONNX graph of the router to ``path`` (atomically): ``input_values`` [batch, samples] ->
    ``router_logits`` [batch, router_frames, factors], router_frames = ``config.num_router_frames(samples)``.
    Router frame r decides for input samples [r * router_hop, (r + 1) * router_hop), from the samples
    ``config.router_delay`` hops earlier; arg max over the last axis is the factor index the model uses at
    inference (``config.utilization_factors[j]``)."""
    module = RouterExport(model)
    metadata = {"graph": "router", "macs_per_sample": router_macs_per_frame(model.config) / model.config.router_hop,
                **_common_metadata(model)}
    return _export(module, path, _example(model, example_samples, dynamic), "router_logits", opset, dynamic, metadata)


def check_onnx(model: AdaSlimModel, path, utilization: float | None = None, *,
               lengths: tuple[int, ...] = (1, 4001, 16000), batch: int = 2, seed: int = 0) -> float:
    """Largest absolute difference between the ONNX graph at ``path`` run by onnxruntime and the torch model
    (``model(x, utilization=...).enhanced_values``, or its ``router_logits`` for the router graph when
    ``utilization`` is None) on random inputs of each length in ``lengths``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for length in lengths:
        shape = (batch, length) if model.config.chin == 1 else (batch, model.config.chin, length)
        noisy = (torch.randn(*shape, generator=generator) * 0.1).to(model.dtype)
        with torch.no_grad():
            out = model(noisy.to(model.device), utilization=utilization)
        expected = out.enhanced_values if utilization is not None else out.router_logits
        got = session.run(None, {"input_values": noisy.numpy()})[0]
        if tuple(got.shape) != tuple(expected.shape):
            raise AssertionError(f"{path}: ONNX output shape {list(got.shape)} != torch {list(expected.shape)} "
                                 f"for {length} samples.")
        worst = max(worst, float((torch.from_numpy(got) - expected.cpu()).abs().max()))
    return worst


__all__ = [
    "RouterExport",
    "StaticExport",
    "check_onnx",
    "diagonal_gru_as_gru",
    "export_onnx",
    "export_router_onnx",
    "recurrent_layer",
    "run_bottleneck",
    "run_rnn",
]
