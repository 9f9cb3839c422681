"""Analytic compute accounting for the adaptive-slimming DEMUCS.

MACs (multiply-accumulates) are counted per block and utilization factor at each block's own frame rate,
plus the recurrent bottleneck (slimmed with the factor only under ``config.slim_bottleneck``), the router and the
sinc resampling (reported separately).
Element-wise work (activations, gates, biases) is not counted, as is usual for MAC tables.

For the paper's backbone (hidden=32, depth=5, kernel 8, stride 4, resample 4) the slimmable convolutions
cost exactly 53,760 * u MACs per input sample; with the grouped-GRU bottleneck (1,536), the resampling
(672) and the router (~9) the total is 53,760 * u + 2,217, against the authors' table 53,760 * u + 2,225.

Imports only torch and siblings: this file travels to the Hub next to the model as remote code.
"""

import torch

from .configuration_adaslim import AdaSlimConfig
from .resample import SINC_TAPS, resample_stages


def _glu_expansion(config: AdaSlimConfig) -> int:
    return 2 if config.glu else 1


def block_macs_per_frame(config: AdaSlimConfig, layer: int, width: int) -> int:
    """MACs of encoder block ``layer`` plus its mirror decoder block, per frame of that layer, when the
    internal feature space keeps ``width`` channels.

    encoder: conv_in (C_in -> width, K taps) + conv_out (width -> E*C, 1x1)
    decoder: conv_in (C -> E*width, 1x1)    + conv_tr (width -> C_in, K taps), E = 2 with GLU.
    Both blocks run on the N_l frames of layer ``layer``.
    """
    c_in, c = config.in_channels[layer], config.channels[layer]
    c_out = config.chout if layer == 0 else c_in
    expansion = _glu_expansion(config)
    encoder = c_in * width * config.kernel_size + width * expansion * c
    decoder = c * expansion * width + width * c_out * config.kernel_size
    return encoder + decoder


def layer_frame_rates(config: AdaSlimConfig) -> list[float]:
    """Frames per input sample of each layer at steady state: resample / stride**(l+1)."""
    return [config.resample / config.stride ** (layer + 1) for layer in range(config.depth)]


def conv_macs_per_sample(config: AdaSlimConfig, utilization: float) -> float:
    """Slimmable-convolution MACs per input sample at a static factor (steady state, long input)."""
    index = config.factor_index(utilization)
    return sum(
        rate * block_macs_per_frame(config, layer, config.slim_width(layer, index))
        for layer, rate in enumerate(layer_frame_rates(config))
    )


def bottleneck_macs_per_frame(config: AdaSlimConfig, factor_index: int | None = None) -> int:
    """MACs of the recurrent bottleneck per bottleneck frame (matrix products only); at factor ``factor_index``
    a slimmed bottleneck (``config.slim_bottleneck``) runs only ``config.bottleneck_active_groups`` groups."""
    width = config.channels[-1]
    directions = 1 if config.causal else 2
    if config.bottleneck == "lstm":
        gates, groups, group_width = 4, 1, width
    else:
        gates, groups, group_width = 3, config.bottleneck_groups, width // config.bottleneck_groups
        if factor_index is not None:
            groups = config.bottleneck_active_groups(factor_index)
    macs = 0
    for layer in range(config.bottleneck_layers):
        layer_input = group_width if layer == 0 else group_width * directions
        macs += directions * gates * (layer_input * group_width + group_width * group_width)
    if directions == 2:
        macs += 2 * group_width * group_width  # Linear(2g -> g) after the bidirectional recurrence
    return groups * macs


def router_macs_per_frame(config: AdaSlimConfig) -> int:
    """MACs of the router per router frame: front-end conv, diagonal GRU (input projection plus the
    element-wise diagonal recurrence), pointwise projection to the factor scores."""
    directions = 1 if config.causal else 2
    conv = config.router_hop * config.router_channels
    gru = directions * (config.router_channels * 3 * config.router_hidden + 3 * config.router_hidden)
    projection = directions * config.router_hidden * config.num_factors
    return conv + gru + projection


def resampling_macs_per_sample(config: AdaSlimConfig) -> float:
    """Sinc up- and down-sampling MACs per input sample (each x2 stage filters once per new sample)."""
    stages = resample_stages(config.resample)
    up = sum(SINC_TAPS * 2**stage for stage in range(stages)) * config.chin
    down = sum(SINC_TAPS * 2**stage for stage in range(stages)) * config.chout
    return float(up + down)


def macs_per_sample(config: AdaSlimConfig, utilization: float, router: bool = True) -> dict[str, float]:
    """Steady-state MACs per input sample at a static factor, broken down by part.

    Returns ``{"conv", "bottleneck", "router", "resampling", "total"}``; ``router=False`` leaves the
    router out (a static model does not need it).
    """
    parts = {
        "conv": conv_macs_per_sample(config, utilization),
        "bottleneck": bottleneck_macs_per_frame(config, config.factor_index(utilization)) / config.total_stride,
        "router": router_macs_per_frame(config) / config.router_hop if router else 0.0,
        "resampling": resampling_macs_per_sample(config),
    }
    parts["total"] = sum(parts.values())
    return parts


def macs_per_second(config: AdaSlimConfig, utilization: float, router: bool = True) -> float:
    """Total MACs per second of audio at ``config.sample_rate`` for a static factor."""
    return macs_per_sample(config, utilization, router)["total"] * config.sample_rate


def frames_per_router_frame(config: AdaSlimConfig, layer: int) -> int:
    """Frames of layer ``layer`` covered by one router decision (``AdaSlimConfig.frames_per_router_frame``)."""
    return config.frames_per_router_frame(layer)


def layer_frame_counts(config: AdaSlimConfig, lengths: torch.Tensor, num_router_frames: int) -> list[torch.Tensor]:
    """For each layer, the number of that layer's valid frames under each router frame.

    lengths: LongTensor [B] of valid input samples. Returns one LongTensor [B, N] per layer, N =
    ``num_router_frames``: router frame r covers frames [r*F, (r+1)*F) of the layer, the last one
    everything from (N-1)*F to the layer's end; frames past an item's valid length are not counted.
    """
    valid = torch.tensor([config.frames_per_layer(int(n)) for n in lengths.tolist()], dtype=torch.long)  # [B, depth]
    counts = []
    starts_index = torch.arange(num_router_frames)
    for layer in range(config.depth):
        per_frame = frames_per_router_frame(config, layer)
        starts = starts_index * per_frame  # [N]
        ends = starts + per_frame
        ends[-1] = torch.iinfo(torch.long).max
        n_valid = valid[:, layer : layer + 1]  # [B, 1]
        counts.append((torch.minimum(ends, n_valid) - starts).clamp(min=0))
    return counts


def call_macs(config: AdaSlimConfig, choice: torch.Tensor, lengths: torch.Tensor, router: bool) -> torch.Tensor:
    """MACs one forward call spent per item, from its per-router-frame choices.

    choice: LongTensor [B, N] of the factor index each router frame was computed at (-1: not computed).
    lengths: LongTensor [B] of valid input samples. Returns a float64 tensor [B].
    Counts the frames the model computes for each item's valid length (input padded to ``valid_length``);
    the router's MACs (``router=True``) cover each item's ``num_router_frames``.
    """
    choice = choice.detach().cpu()
    lengths = lengths.detach().cpu()
    batch, num_frames = choice.shape
    total = torch.zeros(batch, dtype=torch.float64)
    safe_choice = choice.clamp(min=0)
    frame_counts = layer_frame_counts(config, lengths, num_frames)
    for layer, counts in enumerate(frame_counts):
        table = torch.tensor(
            [block_macs_per_frame(config, layer, config.slim_width(layer, j)) for j in range(config.num_factors)],
            dtype=torch.float64,
        )
        total += (table[safe_choice] * counts * (choice >= 0)).sum(dim=1)
    valid_lengths = torch.tensor([config.valid_length(int(n)) for n in lengths.tolist()], dtype=torch.float64)
    if config.slim_bottleneck:  # each bottleneck frame at its router frame's factor
        table = torch.tensor([bottleneck_macs_per_frame(config, j) for j in range(config.num_factors)],
                             dtype=torch.float64)
        total += (table[safe_choice] * frame_counts[-1] * (choice >= 0)).sum(dim=1)
    else:
        bottleneck_frames = torch.tensor(
            [config.frames_per_layer(int(n))[-1] for n in lengths.tolist()], dtype=torch.float64
        )
        total += bottleneck_frames * bottleneck_macs_per_frame(config)
    total += valid_lengths * resampling_macs_per_sample(config)
    if router:
        router_frames = torch.tensor([config.num_router_frames(int(n)) for n in lengths.tolist()], dtype=torch.float64)
        total += router_frames * router_macs_per_frame(config)
    return total


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Parameters of the backbone and of the router, and the router's share in percent."""
    router = sum(p.numel() for name, p in model.named_parameters() if name.split(".")[0] == "router")
    total = sum(p.numel() for p in model.parameters())
    backbone = total - router
    return {"backbone": backbone, "router": router, "total": total, "router_percent": 100.0 * router / backbone}


__all__ = [
    "block_macs_per_frame",
    "bottleneck_macs_per_frame",
    "call_macs",
    "conv_macs_per_sample",
    "count_parameters",
    "frames_per_router_frame",
    "layer_frame_counts",
    "macs_per_sample",
    "macs_per_second",
    "resampling_macs_per_sample",
    "router_macs_per_frame",
]
