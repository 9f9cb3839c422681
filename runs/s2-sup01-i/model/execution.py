"""How each block computes its frames for one call: the execution strategies, on the blocks' primitives.

One forward, three execution paths with the same result (tests assert <= 1e-5):
  1. masked  (training with the router): one full-width pass, internal activations multiplied by a
     per-frame channel mask built from the straight-through one-hot, so gradients reach the router;
  2. sliced  (a static factor): weights sliced to the factor's channels, cost proportional to u;
  3. grouped (per-frame choices at inference): per block, the frames of each router decision are
     gathered by chosen factor and computed with that factor's sliced weights.

With autograd every path runs on whole tensors (``forward_all_frames``, gathers). Without it, the sliced and
grouped paths run runs of frames at one width ("spans") in cache-sized tiles written in place, or, where
the router's decisions change too often for spans to pay, gather the router frames of each factor as whole
blocks (``index_select`` / ``index_add_``). A ``LayerPlan`` says what one layer computes; ``layer_plans``
makes them from the config and the call's decisions; ``encoder_forward`` and ``decoder_forward`` run them.

Symbols: B batch, N router frames, N_l frames of layer l, F = frames of layer l per router frame, C_l
channels of layer l, S stride, w internal (slimmed) width.

Imports only torch and siblings: this file travels to the Hub next to the model as remote code.
"""

from dataclasses import dataclass

import torch

from .blocks import SlimDecoderBlock, SlimEncoderBlock
from .bottleneck import active_groups
from .configuration_adaslim import AdaSlimConfig

# Inference tiles hold about this many floats per intermediate (frames x channels), so they stay in cache.
TILE_FLOATS = 1 << 19
# A grouped layer computes runs of one decision as slices (no gather) when a run averages at least this many
# frame-channels (frames x block channels): below it, per-call overhead costs more than gathering by factor.
RUN_MIN_ELEMENTS = 1 << 16


def _tiles(n_frames: int, width: int, start: int = 0) -> list[tuple[int, int]]:
    """Split frames [start, n_frames) into tiles whose [tile, width] intermediates hold about TILE_FLOATS floats."""
    size = max(256, TILE_FLOATS // width)
    return [(first, min(first + size, n_frames)) for first in range(start, n_frames, size)]


# ----------------------------------------------------------------------------------------------------
# Plans
# ----------------------------------------------------------------------------------------------------


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


@dataclass
class Decisions:
    """The factor index of every router frame of a call, as reported and as executed.

    ``reported`` [B, N]: the decision, -1 for router frames past an item's end. ``executed`` [B, N]: router
    frames past an item's end that still hold valid frames of some layer (the deepest layers' receptive fields
    reach past the last bottleneck frame) repeat the item's last decision, as they do for the item alone; the
    rest are skipped (-1). ``frame_valid`` [B, N]: router frames inside each item; ``needed`` [B, N]: router
    frames holding valid frames of some layer; ``last_valid`` [B, 1]: each item's last router frame.
    """

    reported: torch.Tensor
    executed: torch.Tensor
    frame_valid: torch.Tensor
    needed: torch.Tensor
    last_valid: torch.Tensor

    @classmethod
    def resolve(cls, config: AdaSlimConfig, choice: torch.Tensor, lengths: torch.Tensor) -> "Decisions":
        """From the decisions ``choice`` [B, N] of every router frame and the valid samples ``lengths`` [B]."""
        batch, num_frames = choice.shape
        frame_starts = torch.arange(num_frames)[None, :]  # [1, N]
        item_frames = torch.tensor([config.num_router_frames(int(n)) for n in lengths.tolist()])  # [B]
        layer_frames = torch.tensor([config.frames_per_layer(int(n)) for n in lengths.tolist()])  # [B, depth]
        needed = torch.zeros(batch, num_frames, dtype=torch.bool)
        for layer in range(config.depth):
            needed |= frame_starts * config.frames_per_router_frame(layer) < layer_frames[:, layer : layer + 1]
        frame_valid = (frame_starts < item_frames[:, None]).to(choice.device)
        needed = needed.to(choice.device)
        last_valid = (frame_valid.sum(dim=1) - 1)[:, None]  # [B, 1]
        executed = torch.where(frame_valid, choice, choice.gather(1, last_valid))
        executed = torch.where(needed, executed, torch.full_like(choice, -1))
        reported = torch.where(frame_valid, choice, torch.full_like(choice, -1))
        return cls(reported, executed, frame_valid, needed, last_valid)

    def executed_one_hot(self, hard: torch.Tensor) -> torch.Tensor:
        """One-hots [B, N, J] of the decisions -> those of the executed decisions (zeros where skipped)."""
        last_hard = hard.gather(1, self.last_valid[..., None].expand(-1, -1, hard.shape[-1]))
        return torch.where(self.frame_valid[..., None], hard, last_hard) * self.needed[..., None].to(hard)


@dataclass
class LayerPlan:
    """What one layer (an encoder block and its mirror decoder block) computes in this call.

    mode "sliced": every frame at ``width``; "masked": full width times ``mask`` [B, N_l, C_l], and each
    frame's factor one-hot ``factors`` [B, N_l, J] (for the blocks' per-width output gains);
    "grouped": the frames under each router decision at the width of ``choice`` [B, N] (-1 = skip).
    ``valid`` [B, N_l, 1] marks frames inside each item's length (None when nothing is padded).
    """

    mode: str
    width: int | None = None
    mask: torch.Tensor | None = None
    factors: torch.Tensor | None = None
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


def _valid_frames(config: AdaSlimConfig, lengths: torch.Tensor | None, padded_length: int, dtype, device):
    """Per layer, [B, N_l, 1] marking each item's frames (1) against its padding (0); Nones when no item is
    padded."""
    if lengths is None or not bool((lengths < padded_length).any()):
        return [None] * config.depth
    counts = torch.tensor([config.frames_per_layer(int(n)) for n in lengths.tolist()])  # [B, depth]
    frames = config.frames_per_layer(padded_length)
    return [(torch.arange(frames[layer])[None, :] < counts[:, layer : layer + 1]).to(dtype)[..., None].to(device)
            for layer in range(config.depth)]


def layer_plans(config: AdaSlimConfig, mode: str, lengths: torch.Tensor | None, padded_length: int,
                choice: torch.Tensor | None = None, one_hot: torch.Tensor | None = None,
                static_index: int | None = None, dtype: torch.dtype = torch.float32, device=None) -> list[LayerPlan]:
    """One LayerPlan per layer (index 0 = outermost) for an input padded to ``padded_length``: "sliced" at the
    factor ``static_index``; "masked" by ``one_hot`` [B, N, J]; "grouped" by ``choice`` [B, N] (-1 = past the
    end). ``lengths`` [B]: valid samples per item (None: nothing padded). Masks are made in ``dtype``, the
    blocks' compute dtype."""
    frames = config.frames_per_layer(padded_length)
    valid = _valid_frames(config, lengths, padded_length, dtype, device)
    all_runs = router_runs(choice) if mode == "grouped" else None
    plans = []
    for layer in range(config.depth):
        per_router_frame = config.frames_per_router_frame(layer)
        widths = tuple(config.slim_width(layer, j) for j in range(config.num_factors))
        if mode == "sliced":
            plans.append(LayerPlan("sliced", width=widths[static_index], valid=valid[layer]))
        elif mode == "masked":
            index = (torch.arange(frames[layer], device=device) // per_router_frame).clamp(max=one_hot.shape[1] - 1)
            channel_masks = (torch.arange(config.channels[layer])[None, :] < torch.tensor(widths)[:, None])
            mask = one_hot[:, index] @ channel_masks.to(one_hot.dtype).to(device)  # [B, N_l, J] @ [J, C_l]
            plans.append(LayerPlan("masked", mask=mask.to(dtype), factors=one_hot[:, index], valid=valid[layer]))
        else:
            plans.append(LayerPlan.grouped(choice, widths, per_router_frame, frames[layer], valid[layer], all_runs))
    return plans


def bottleneck_active(config: AdaSlimConfig, padded_length: int, choice: torch.Tensor,
                      one_hot: torch.Tensor | None = None) -> torch.Tensor | None:
    """The groups of the grouped GRU each bottleneck frame of a ``padded_length``-sample call runs, as
    ``GroupedGRU.forward``'s ``active`` [B, N_L, G], or None when the bottleneck is not slimmed
    (``config.slim_bottleneck``). From the
    executed decisions ``choice`` [B, N] (-1: skipped, no group runs), or, training with the router, from their
    one-hots ``one_hot`` [B, N, J] (zeros where skipped), whose gradient then reaches the router as the blocks'
    channel masks pass it. Bottleneck frames past the last router frame take its decision."""
    if not config.slim_bottleneck:
        return None
    n_frames = config.frames_per_layer(padded_length)[-1]
    per_router_frame = config.frames_per_router_frame(config.depth - 1)
    index = (torch.arange(n_frames, device=choice.device) // per_router_frame).clamp(max=choice.shape[1] - 1)
    counts = torch.tensor([config.bottleneck_active_groups(j) for j in range(config.num_factors)])
    table = active_groups(counts, config.bottleneck_groups).to(choice.device)  # [J, G]
    if one_hot is not None:
        return one_hot[:, index] @ table.to(one_hot.dtype)  # [B, N_L, J] @ [J, G]
    chosen = choice[:, index]  # [B, N_L]
    return torch.where(chosen[..., None] >= 0, table[chosen.clamp(min=0)], 0.0)


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


# ----------------------------------------------------------------------------------------------------
# Encoder blocks
# ----------------------------------------------------------------------------------------------------


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
    side_by_side = block.weights(width, "matmul", blocks.dtype)[2]  # [S*C_in, taps * w]
    previous = 0  # frames of the previous tile
    for index, (start, end) in enumerate(tiles):  # frame f reads input blocks f .. f + taps - 1
        n = end - start
        if products is None:
            inputs = [blocks[item, start + tap : end + tap] for tap in range(block.taps)]  # taps x [n, S*C_in]
            block.frames(inputs, width, out=out[item, start:end], scratch=scratch[:n])
            continue
        if index:  # the previous tile's last rows are this tile's first
            products[:carry].copy_(products[previous : previous + carry])
        # block b (relative to the span) of rows [low, high) is computed here, at products row b - (start - first)
        offset = start - first
        low, high = offset + (carry if index else 0), offset + n + carry
        interior = max(low, carry), min(high, n_frames)
        if interior[0] < interior[1]:
            block.tap_products(blocks[item, first + interior[0] : first + interior[1]], width,
                               out=products[interior[0] - offset : interior[1] - offset])
        for b in [*range(low, min(high, carry)), *range(max(low, n_frames, carry), high)]:  # the span's ends
            taps = slice(max(0, b - n_frames + 1) * width, (min(carry, b) + 1) * width)
            torch.mm(blocks[item, first + b : first + b + 1], side_by_side[:, taps],
                     out=products[b - offset : b - offset + 1, taps])
        previous = n
        block.frames(products[: n + carry], width, out=out[item, start:end], scratch=scratch[:n])


def _encoder_gathered(block: SlimEncoderBlock, blocks: torch.Tensor, plan: LayerPlan) -> torch.Tensor:
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
        block.frames(inputs, width, out=rows.view(-1, channels), scratch=scratch[: n * per])
        out[item, :split].view(-1, per * channels).index_copy_(0, chosen, rows)
    for item, tail in enumerate(plan.choice[:, -1].tolist()):
        if tail >= 0:
            _encoder_span(block, blocks, out, item, split, n_frames, plan.widths[tail])
    return out


def encoder_forward(block: SlimEncoderBlock, x: torch.Tensor, plan: LayerPlan) -> torch.Tensor:
    """x [B, N_{l-1}, C_in] -> [B, N_l, C] under ``plan``. With autograd: whole-tensor paths (and gathers);
    without: spans of frames at one width in cache-sized tiles, written in place."""
    if plan.mode == "masked":
        return block.forward_all_frames(x, block.channels, plan.mask, block.frame_gains(plan.factors))
    if plan.mode == "sliced" and torch.is_grad_enabled():
        return block.forward_all_frames(x, plan.width)
    batch = x.shape[0]
    blocks = block.input_blocks(x)  # [B, N_l + taps - 1, S*C_in]
    n_frames = blocks.shape[1] - block.taps + 1
    if plan.mode == "sliced":
        spans = [(item, 0, n_frames, plan.width) for item in range(batch)]
    else:
        if torch.is_grad_enabled():
            out = x.new_zeros(batch, n_frames, block.channels)  # frames no decision covers stay 0
            return _run_grouped(lambda parts, width: block.frames(parts, width), block.tap_views(x), out, plan)
        spans = _spans(plan, n_frames, block.channels)
        if spans is None:
            return _encoder_gathered(block, blocks, plan)
    covered = sum(stop - start for _, start, stop, _ in spans) == batch * n_frames
    out = x.new_empty(batch, n_frames, block.channels) if covered else x.new_zeros(batch, n_frames, block.channels)
    for span in spans:
        _encoder_span(block, blocks, out, *span)
    return out


# ----------------------------------------------------------------------------------------------------
# Decoder blocks: output rows [B, N_l + taps - 1, S*C_out] of S samples, which every frame's taps reach
# ----------------------------------------------------------------------------------------------------


def _bias_rows(block: SlimDecoderBlock, x: torch.Tensor) -> torch.Tensor:
    """The output before any contribution: [B, N + taps - 1, S*C_out], every row the transposed conv's bias."""
    out = x.new_empty(x.shape[0], x.shape[1] + block.taps - 1, block.stride * block.out_channels)
    return out.copy_(block.row_bias())


def _add_frames(block: SlimDecoderBlock, out, x, skip, item: int, first: int, stop: int, width: int, valid=None):
    """Inference: add the contributions of frames [first, stop) of item ``item`` of x + skip at ``width`` into
    their rows of ``out`` [B, N + taps - 1, S*C_out], in place."""
    mask = None if valid is None else valid[item, first:stop]
    hidden = block.hidden(torch.add(x[item, first:stop], skip[item, first:stop]), width, mask, "matmul")  # [m, w]
    block.overlap_add(hidden, width, out[item, first : stop + block.taps - 1])


def _add_span(block: SlimDecoderBlock, out, x, skip, item: int, first: int, stop: int, width: int, valid=None):
    """``_add_frames`` of frames [first, stop), in cache-sized tiles."""
    for start, end in _tiles(stop, max(block.channels, block.stride * block.out_channels), first):
        _add_frames(block, out, x, skip, item, start, end, width, valid)


def _decoder_item_rows(block: SlimDecoderBlock, out, x, skip, item: int, spans: list, valid=None):
    """Every output row of item ``item`` from its spans (first, stop, width), tile by tile of frames: row
    r = bias + sum over taps t of hidden[r - t] @ T_t of frame r - t's width (overlap-add). Each frame's
    hidden state is computed once, in the tile that holds it; a tile's frames complete the rows up to its
    last frame, which get their ReLU while they are in cache (the last taps - 1 rows at the end)."""
    n_frames, shift = x.shape[1], block.taps - 1
    bias = block.row_bias()  # [S*C_out]
    out[item, :shift].copy_(bias)
    for start, end in _tiles(n_frames, max(block.channels, block.stride * block.out_channels)):
        out[item, start + shift : end + shift].copy_(bias)  # rows this tile's frames reach first
        for first, stop, width in spans:
            low, high = max(first, start), min(stop, end)  # frames of the span in this tile
            if low < high:
                _add_frames(block, out, x, skip, item, low, high, width, valid)
        block.output_activation(out[item, start:end])  # no later frame reaches these rows
    block.output_activation(out[item, n_frames:])


def _decoder_spans(block: SlimDecoderBlock, x: torch.Tensor, skip: torch.Tensor, spans: list,
                   valid: torch.Tensor | None = None) -> torch.Tensor:
    """x + skip [B, N, C] -> [B, (N + taps - 1) * S, C_out] with each span (item, start, stop, width) of
    frames at its own width (frames in no span contribute nothing), inference without autograd: every
    output row is computed completely and once, in cache-sized tiles of rows."""
    batch, n_frames, _ = x.shape
    out = x.new_empty(batch, n_frames + block.taps - 1, block.stride * block.out_channels)
    for item in range(batch):
        _decoder_item_rows(block, out, x, skip, item, [span[1:] for span in spans if span[0] == item], valid)
    return out.view(batch, -1, block.out_channels)


def _decoder_gathered(block: SlimDecoderBlock, x: torch.Tensor, skip: torch.Tensor, plan: LayerPlan) -> torch.Tensor:
    """Inference without autograd: per item and factor, the chosen router frames of x and skip are gathered
    as whole [F, C] blocks (``index_select``), computed at the factor's width, and each tap's contributions
    added back as whole [F, S*C_out] blocks (``index_add_``) at their shift; the last router frame (which
    runs to the layer's end) is a span."""
    batch, n_frames, channels = x.shape
    num_router_frames, per = plan.choice.shape[1], plan.per_router_frame
    split = (num_router_frames - 1) * per  # frames of the regular router frames
    row_width = block.stride * block.out_channels
    out = _bias_rows(block, x)  # [B, N + taps - 1, S*C_out]
    router_frames = max(1, TILE_FLOATS // (max(channels, row_width) * per))  # per gather: tile-sized
    # buffers reused by every gather (fresh memory per gather would cost page faults)
    summed_buffer, skip_buffer = x.new_empty(2, router_frames, per * channels)
    hidden_buffer = x.new_empty(router_frames * per * max(plan.widths))
    contribution_buffer = x.new_empty(router_frames * per, row_width)
    for item, width, chosen in _factor_groups(plan, router_frames):  # chosen: [n] router frame indices
        n = len(chosen)
        summed = torch.index_select(x[item, :split].reshape(-1, per * channels), 0, chosen, out=summed_buffer[:n])
        summed += torch.index_select(skip[item, :split].reshape(-1, per * channels), 0, chosen,
                                     out=skip_buffer[:n])  # [n, F*C]
        mask = None
        if plan.valid is not None:
            mask = plan.valid[item, :split].reshape(-1, per).index_select(0, chosen).view(n * per, 1)
        hidden = block.hidden(summed.view(n * per, channels), width, mask, "matmul",
                              out=hidden_buffer[: n * per * width].view(n * per, width))  # [n*F, w]
        block.overlap_add(hidden, width, out[item], index=chosen, group=per, buffer=contribution_buffer[: n * per])
    for item, tail in enumerate(plan.choice[:, -1].tolist()):
        if tail >= 0:
            _add_span(block, out, x, skip, item, split, n_frames, plan.widths[tail], plan.valid)
    return block.output_activation(out.view(batch, -1, block.out_channels))


def _decoder_gathered_autograd(block: SlimDecoderBlock, x: torch.Tensor, plan: LayerPlan) -> torch.Tensor:
    """x [B, N, C] (skip added) -> [B, (N + taps - 1) * S, C_out]: per factor, the frames of the router
    decisions that chose it are gathered, computed at its width, and each tap's contributions are added
    into the output rows they belong to (``index_add_``: overlap-add is linear)."""
    batch, n_frames, _ = x.shape
    num_router_frames, per = plan.choice.shape[1], plan.per_router_frame
    out_rows = n_frames + block.taps - 1
    out = block.row_bias(x.dtype).repeat(batch, out_rows, 1)  # [B, N + taps - 1, S*C_out]
    flat = out.view(batch * out_rows, -1)
    x_regular, x_tail = _segment_views(x, num_router_frames, per)
    valid_regular, valid_tail = (None, None) if plan.valid is None else _segment_views(plan.valid, num_router_frames, per)
    first_row = (num_router_frames - 1) * per  # the tail's first frame
    for index, width in enumerate(plan.widths):
        items, frames = (plan.choice[:, :-1] == index).nonzero(as_tuple=True)
        tail_items = (plan.choice[:, -1] == index).nonzero(as_tuple=True)[0]
        groups = []
        if len(items):  # [n, F, C] rows; output row of frame f of router frame r: r * F + f
            rows = (items * out_rows + frames * per)[:, None] + torch.arange(per, device=x.device)
            groups.append((x_regular[items, frames], None if valid_regular is None else valid_regular[items, frames], rows))
        if len(tail_items):
            rows = (tail_items * out_rows + first_row)[:, None] + torch.arange(x_tail.shape[1], device=x.device)
            groups.append((x_tail[tail_items], None if valid_tail is None else valid_tail[tail_items], rows))
        for inputs, valid, rows in groups:
            hidden = block.hidden(inputs, width, valid)  # [n, F, w]
            block.overlap_add(hidden, width, flat, index=rows.flatten())
    return block.output_activation(out.reshape(batch, -1, block.out_channels))  # in place: out is this block's own


def decoder_forward(block: SlimDecoderBlock, x: torch.Tensor, skip: torch.Tensor, plan: LayerPlan) -> torch.Tensor:
    """x + skip [B, N_l, C] -> [B, N_{l-1}, C_out] under ``plan``. Frames past an item's end contribute
    nothing, so a padded batch gives each item exactly what it gets alone. With autograd: whole-tensor paths
    (and gathers); without: spans in cache-sized tiles, accumulated in place."""
    skip = skip[:, : x.shape[1]]
    if plan.mode == "masked":
        mask = plan.mask if plan.valid is None else plan.mask * plan.valid
        return block.forward_all_frames(x + skip, block.channels, mask, block.frame_gains(plan.factors))
    if plan.mode == "sliced":
        if torch.is_grad_enabled():
            return block.forward_all_frames(x + skip, plan.width, plan.valid)
        spans = [(item, 0, x.shape[1], plan.width) for item in range(x.shape[0])]
    else:
        if torch.is_grad_enabled():
            return _decoder_gathered_autograd(block, x + skip, plan)
        spans = _spans(plan, x.shape[1], block.channels)
        if spans is None:
            return _decoder_gathered(block, x, skip, plan)
    return _decoder_spans(block, x, skip, spans, plan.valid)


__all__ = [
    "RUN_MIN_ELEMENTS",
    "TILE_FLOATS",
    "Decisions",
    "LayerPlan",
    "decoder_forward",
    "encoder_forward",
    "layer_plans",
    "router_runs",
]
