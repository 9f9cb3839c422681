"""The recurrent bottleneck between encoder and decoder: the paper's grouped GRU (default) or DEMUCS' LSTM (for
converted denoiser checkpoints). The paper never slims it; ``config.slim_bottleneck`` (off by default) lets a
frame run only the first groups of the grouped GRU (``GroupedGRU.forward``'s ``active``).

Each module runs a whole sequence (``forward``: [B, N, C] -> [B, N, C] and the state after it) and a stream's
next rows (``step``), and the per-item runs a padded batch of a bidirectional model needs
(``bottleneck_forward``). The grouped GRU's one-layer causal case runs all groups in one recurrence, with a
hand-written backward for training and a TorchScript-compiled loop for inference.

Imports only torch: this file travels to the Hub next to the model as remote code.
"""

import torch
from torch import nn

from .blocks import sliced_weights
from .products import compiled

# A stream's step runs the fused recurrence from this many new frames on; fewer run one nn.GRU per group,
# whose per-call set-up costs less than the fused path's for the one frame a 16 ms hop brings.
STEP_FUSED_FRAMES = 16


class _GRURecurrence(torch.autograd.Function):
    """The grouped GRU's recurrence with autograd: input_gates [G, N, B, 3g] (W_i x + b_i of every frame),
    hidden [G, B, g] (the state before the first frame), w_hh [G, g, 3g], b_hh [G, 1, 3g], hold [N, G, B, 1]
    bool or None (True: the group keeps its state over the frame) -> the state after every frame [N, G, B, g],
    with torch.nn.GRU's equations (r, z gates, then the candidate n).

    A held group's update gate is set to 1, so h = lerp(n, h_prev, 1) = h_prev exactly, and the backward below
    needs no change: z (1 - z) = 0 and (1 - z) = 0 stop every gradient but the state's, which passes unchanged.

    Written out because autograd through the per-frame loop repeats small operations N times in the backward,
    among them a [G, g, 3g] gradient of w_hh per frame; here the backward's loop only carries the state's
    gradient, and w_hh's and b_hh's gradients are one product and one sum over all frames after it
    (forward + backward of [8, 249, 512]: 0.12 -> 0.09 s on one thread). The forward runs the same
    operations as the loop it replaces; gradients agree to rounding (tests/test_modeling.py)."""

    @staticmethod
    def forward(ctx, input_gates, hidden, w_hh, b_hh, hold=None):
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
            if hold is not None:
                update.masked_fill_(hold[t], 1.0)
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
        return grad_input_gates.transpose(0, 1), grad_hidden, grad_w_hh, grad_b_hh, None


def grouped_gru_steps(gates: torch.Tensor, candidate_inputs: torch.Tensor, hidden: torch.Tensor,
                      w_hh: torch.Tensor) -> torch.Tensor:
    """The grouped GRU's recurrence without autograd, torch's GRU equations in five operations per step, each
    writing into a preallocated buffer (the new hidden state straight into the output); the per-step views
    are taken once, before the loop.

    gates [N, G, B, 3g]: W_i x + b_i + b_h of every frame (both biases of every gate); candidate_inputs
    [N, G, B, g]: W_in x + b_in, the candidate's input part alone; hidden [G, B, g] the state before the first
    frame; w_hh [G, g, 3g]. -> hidden state after each frame [N, G, B, g].

    Per step: s = gates + W_h h (one batched product for all groups, the gates' inputs as its bias), r and z =
    sigmoid(s_rz), the candidate n = tanh(i_n + r * (s_n - i_n)) = tanh(i_n + r * (W_hn h + b_hn)) (one
    lerp), and h = n + z * (h - n) (one lerp).
    """
    frames, width = gates.shape[0], hidden.shape[2]
    y = hidden.new_empty(frames, hidden.shape[0], hidden.shape[1], width)
    sums = hidden.new_empty(hidden.shape[0], hidden.shape[1], 3 * width)  # gates + W_h h
    candidate = hidden.new_empty(hidden.shape[0], hidden.shape[1], width)
    reset_update, summed_n = sums[:, :, : 2 * width], sums[:, :, 2 * width :]
    reset, update = sums[:, :, :width], sums[:, :, width : 2 * width]
    step_gates, step_candidates, outputs = gates.unbind(0), candidate_inputs.unbind(0), y.unbind(0)
    for t in range(frames):
        torch.baddbmm(step_gates[t], hidden, w_hh, out=sums)
        reset_update.sigmoid_()
        torch.lerp(step_candidates[t], summed_n, reset, out=candidate).tanh_()
        hidden = torch.lerp(candidate, hidden, update, out=outputs[t])
    return y


def slimmed_gru_steps(gates: torch.Tensor, candidate_inputs: torch.Tensor, hidden: torch.Tensor,
                      w_hh: torch.Tensor, counts: list[int], hold: torch.Tensor | None) -> torch.Tensor:
    """``grouped_gru_steps`` where frame t runs only the first ``counts[t]`` groups (0 to G); the others keep
    their state. For a batch whose items run different groups, ``hold`` [N, G, B, 1] (True: the item keeps the
    group's state over the frame) holds the items that need fewer; None when every item runs ``counts[t]``.

    gates, candidate_inputs, w_hh as in ``grouped_gru_steps``; hidden [G, B, g] is updated in place to the
    state after the last frame. -> the output of each frame [N, G, B, g]: a running group's new state, zeros
    for a group that does not run (or is held). The views of the first k groups' buffers are taken once, before
    the loop (index k - 1), as ``grouped_gru_steps`` takes its own: per step only the frame's inputs are sliced.
    """
    frames, groups, batch, width = gates.shape[0], hidden.shape[0], hidden.shape[1], hidden.shape[2]
    y = hidden.new_zeros(frames, groups, batch, width)
    sums = hidden.new_empty(groups, batch, 3 * width)  # gates + W_h h
    candidate = hidden.new_empty(groups, batch, width)
    firsts = list(range(1, groups + 1))
    sums_k = [sums[:k] for k in firsts]
    reset_update_k = [sums[:k, :, : 2 * width] for k in firsts]
    summed_n_k = [sums[:k, :, 2 * width :] for k in firsts]
    reset_k = [sums[:k, :, :width] for k in firsts]
    update_k = [sums[:k, :, width : 2 * width] for k in firsts]
    hidden_k = [hidden[:k] for k in firsts]
    candidate_k = [candidate[:k] for k in firsts]
    w_hh_k = [w_hh[:k] for k in firsts]
    step_gates, step_candidates, outputs = gates.unbind(0), candidate_inputs.unbind(0), y.unbind(0)
    for t in range(frames):
        count = counts[t]
        if count == 0:
            continue
        k = count - 1
        torch.baddbmm(step_gates[t][:count], hidden_k[k], w_hh_k[k], out=sums_k[k])
        reset_update_k[k].sigmoid_()
        if hold is not None:
            update_k[k].masked_fill_(hold[t, :count], 1.0)
        torch.lerp(step_candidates[t][:count], summed_n_k[k], reset_k[k], out=candidate_k[k]).tanh_()
        torch.lerp(candidate_k[k], hidden_k[k], update_k[k], out=hidden_k[k])
        output = outputs[t][:count]
        output.copy_(hidden_k[k])
        if hold is not None:
            output.masked_fill_(hold[t, :count], 0.0)
    return y


def compiled_slimmed_gru_steps():
    """``slimmed_gru_steps`` compiled by TorchScript (``products.compiled``)."""
    return compiled(slimmed_gru_steps)


def compiled_gru_steps():
    """``grouped_gru_steps`` compiled by TorchScript (``products.compiled``): the same operations without Python
    between them, about 25% less time for the recurrence on CPU (measured: 10 s of audio, 625 steps)."""
    return compiled(grouped_gru_steps)


def active_groups(counts: torch.Tensor, groups: int) -> torch.Tensor:
    """How many of the ``groups`` groups run (the first ones), any shape [...] of counts 0 to G -> ``GroupedGRU``'s
    ``active`` [..., G] (float, 1 = the group runs)."""
    return (torch.arange(groups, device=counts.device) < counts[..., None]).float()


class GroupedGRU(nn.Module):
    """Split C channels into G groups, one GRU per group, concatenate: [B, N, C] -> [B, N, C].

    Bidirectional (plus a Linear(2g, g) per group) when the model is not causal.
    The one-layer causal case (the paper's) runs all groups in one recurrence with batched matmuls,
    about twice as fast on CPU as one nn.GRU call per group; the nn.GRU modules hold the parameters.
    That case may also run only some groups per frame (``active``, for ``config.slim_bottleneck``).
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
    def bidirectional(self) -> bool:
        return self.grus[0].bidirectional

    @property
    def fused(self) -> bool:
        return self.linears is None and self.grus[0].num_layers == 1

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None, active: torch.Tensor | None = None):
        """x [B, N, C], state [G, B, g] or None (zeros) -> (y [B, N, C], state). ``state`` is only
        carried for the fused (one-layer causal) case; otherwise it must be None and None is returned.

        ``active`` [B, N, G] (fused case only; None: every group runs every frame): 1 where a group runs the
        frame, 0 where it keeps its state and puts out zeros; each frame runs a prefix of the groups. With
        autograd the output is multiplied by ``active``, so a router's straight-through one-hots behind it get
        a gradient; whether a group holds its state is taken from its value alone."""
        if not self.fused:
            if state is not None or active is not None:
                raise ValueError("a recurrent state or active groups need a one-layer causal GroupedGRU.")
            return self.forward_per_group(x), None
        if active is not None and tuple(active.shape) != (*x.shape[:2], self.groups):
            raise ValueError(f"active groups must have shape [batch, frames, groups] = {[*x.shape[:2], self.groups]}, "
                             f"got {list(active.shape)}.")
        if not torch.is_grad_enabled():
            return self._forward_inference(x, state, active)
        batch, frames, _ = x.shape
        w_ih, w_hh, b_ih, b_hh = self._stacked_weights()
        input_gates = self._input_gates(x, w_ih, b_ih)  # [G, N, B, 3g]
        hidden = x.new_zeros(self.groups, batch, self.group_width) if state is None else state
        if frames == 0:
            return x.new_zeros(batch, 0, self.groups * self.group_width), hidden
        hold = None if active is None else (active.detach() == 0).permute(1, 2, 0)[..., None]  # [N, G, B, 1]
        y = _GRURecurrence.apply(input_gates, hidden, w_hh, b_hh, hold)  # [N, G, B, g]
        out = self._by_frame(y)
        if active is not None:
            out = out * active.to(out.dtype).repeat_interleave(self.group_width, dim=-1)
        return out, y[-1]

    def _stacked_weights(self):
        """The groups' one-layer weights stacked for batched products: w_ih, w_hh [G, g, 3g], b_ih, b_hh
        [G, 1, 3g]."""
        w_ih = torch.stack([gru.weight_ih_l0.t() for gru in self.grus])  # [G, g, 3g]
        w_hh = torch.stack([gru.weight_hh_l0.t() for gru in self.grus])  # [G, g, 3g]
        b_ih = torch.stack([gru.bias_ih_l0 for gru in self.grus])[:, None]  # [G, 1, 3g]
        b_hh = torch.stack([gru.bias_hh_l0 for gru in self.grus])[:, None]
        return w_ih, w_hh, b_ih, b_hh

    def _input_gates(self, x: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor,
                     groups: int | None = None) -> torch.Tensor:
        """W_i x + bias of every frame and group: x [B, N, G * g] -> [G, N, B, 3g] (G: ``groups``, default all)."""
        batch, frames, _ = x.shape
        groups, width = groups or self.groups, self.group_width
        by_group = x.reshape(batch, frames, groups, width).permute(2, 1, 0, 3).reshape(groups, frames * batch, width)
        return torch.baddbmm(bias, by_group, w_ih).reshape(groups, frames, batch, 3 * width)

    def _by_frame(self, y: torch.Tensor) -> torch.Tensor:
        """The states after every frame [N, G, B, g] -> [B, N, C]."""
        frames, groups, batch, width = y.shape
        return y.permute(2, 0, 1, 3).reshape(batch, frames, groups * width)

    def forward_per_group(self, x: torch.Tensor, run_gru=None, groups: int | None = None) -> torch.Tensor:
        """One nn.GRU call per group, then its Linear(2g, g) when bidirectional: [B, N, C] -> [B, N, C], from a
        zero state. ``run_gru(gru, part)`` runs a group's GRU (default ``gru(part)[0]``; the ONNX export passes
        a traceable one). ``groups``: only the first groups run (every frame), the others put out zeros."""
        outputs = []
        for index, (gru, part) in enumerate(zip(self.grus, x.split(self.group_width, dim=-1))):
            if groups is not None and index >= groups:
                outputs.append(torch.zeros_like(part))
                continue
            part = gru(part)[0] if run_gru is None else run_gru(gru, part)
            outputs.append(part if self.linears is None else self.linears[index](part))
        return torch.cat(outputs, dim=-1)

    def step(self, rows: torch.Tensor, state: torch.Tensor | None = None, counts: list[int] | None = None):
        """A causal stream's next rows [n, C] and the state after the previous ones (None: zeros) -> (output
        rows [n, C], state). The state is the groups' states stacked, [G * layers, 1, g] (for one layer the
        fused recurrence's layout): many rows run the fused recurrence, a few one nn.GRU per group.
        ``counts`` (fused case only; None: all): the groups each row runs (``forward``'s ``active``); a group
        that skips a row keeps its state, so it runs the rows it does not skip as one shorter sequence."""
        if counts is not None and len(counts) != len(rows):
            raise ValueError(f"step got {len(rows)} rows but {len(counts)} group counts.")
        counts = None if counts is None else torch.tensor(counts)  # [n]
        if self.fused and len(rows) >= STEP_FUSED_FRAMES:
            active = None if counts is None else active_groups(counts, self.groups)[None]
            out, state = self(rows[None], state, active)
            return out[0], state
        if counts is not None and not self.fused:
            raise ValueError("active groups need a one-layer causal GroupedGRU.")
        layers = self.grus[0].num_layers
        states = state.split(layers) if state is not None else [None] * self.groups
        outputs, new_states = [], []
        for group, (gru, part, part_state) in enumerate(zip(self.grus, rows[None].split(self.group_width, dim=-1),
                                                            states)):
            if counts is None:
                part, part_state = gru(part, part_state)
            else:
                runs = counts > group  # [n] the rows this group runs
                out = part.new_zeros(part.shape)
                if part_state is None:
                    part_state = part.new_zeros(layers, 1, self.group_width)
                if runs.any():
                    out[:, runs], part_state = gru(part[:, runs], part_state)
                part = out
            outputs.append(part)
            new_states.append(part_state)
        return torch.cat(outputs, dim=-1)[0], torch.cat(new_states)

    def _inference_weights(self, _width: int):
        """The fused recurrence's weights (cached at inference like the blocks' sliced weights): input and
        hidden products [G, g, 3g]; both biases of every gate summed [G, 1, 3g], and the candidate's hidden
        bias b_hn [G, 1, g] (to take the candidate's input part back out of the sum)."""
        w_ih, w_hh, b_ih, b_hh = self._stacked_weights()
        return w_ih, w_hh.contiguous(), b_ih + b_hh, b_hh[..., 2 * self.group_width :].contiguous()

    def _forward_inference(self, x: torch.Tensor, state: torch.Tensor | None, active: torch.Tensor | None = None):
        """``forward`` of the fused case without autograd: the input products of all frames at once, with
        both biases of every gate, then ``grouped_gru_steps`` (compiled by TorchScript). With ``active``, only
        the groups some frame runs get input products; every frame running the same k groups runs the
        recurrence of k groups, otherwise ``slimmed_gru_steps`` runs each frame's."""
        batch, frames, _ = x.shape
        hidden = x.new_zeros(self.groups, batch, self.group_width) if state is None else state
        counts = None if active is None else (active != 0).sum(dim=-1)  # [B, N] groups each frame runs
        running = self.groups if counts is None or not counts.numel() else int(counts.max())
        if running == 0:  # nothing runs: the state is kept, the output is zero
            return x.new_zeros(batch, frames, self.groups * self.group_width), hidden.clone()
        w_ih, w_hh, bias, candidate_bias = (w[:running] for w in
                                            sliced_weights(self, self.group_width, self._inference_weights))
        gates = self._input_gates(x[..., : running * self.group_width], w_ih, bias, running)
        gates = gates.transpose(0, 1).contiguous()  # [N, G', B, 3g]: one contiguous block per step
        candidate_inputs = gates[..., 2 * self.group_width :] - candidate_bias  # [N, G', B, g]: W_in x + b_in
        if counts is None or bool((counts == running).all()):  # every frame runs the same groups
            y = compiled_gru_steps()(gates, candidate_inputs, hidden[:running], w_hh)  # [N, G', B, g]
            last = torch.cat([y[-1] if frames else hidden[:running], hidden[running:]]).clone()
        else:
            per_frame = counts.max(dim=0).values  # [N]
            hold = None
            if bool((counts != per_frame).any()):  # items of the batch run different groups
                hold = (active[..., :running] == 0).permute(1, 2, 0)[..., None]  # [N, G', B, 1]
            last = hidden.clone()
            y = compiled_slimmed_gru_steps()(gates, candidate_inputs, last[:running], w_hh, per_frame.tolist(), hold)
        if running < self.groups:
            y = torch.cat([y, y.new_zeros(frames, self.groups - running, batch, self.group_width)], dim=1)
        return self._by_frame(y), last


class DemucsLSTM(nn.Module):
    """DEMUCS' bottleneck: nn.LSTM(C, C, layers) (bidirectional plus Linear(2C, C) when not causal)."""

    def __init__(self, channels: int, layers: int, bidirectional: bool):
        super().__init__()
        self.lstm = nn.LSTM(channels, channels, layers, batch_first=True, bidirectional=bidirectional)
        self.linear = nn.Linear(2 * channels, channels) if bidirectional else None

    @property
    def bidirectional(self) -> bool:
        return self.lstm.bidirectional

    def forward(self, x: torch.Tensor, state=None):
        """x [B, N, C], state (h, c) or None -> (y [B, N, C], state). State is carried only when causal."""
        if state is not None and self.linear is not None:
            raise ValueError("a recurrent state can only be carried by a causal (unidirectional) bottleneck.")
        x, state = self.lstm(x, state)
        return (self.linear(x), None) if self.linear is not None else (x, state)

    def step(self, rows: torch.Tensor, state=None):
        """A causal stream's next rows [n, C] and the state (h, c) after the previous ones (None: zeros) ->
        (output rows [n, C], state)."""
        out, state = self(rows[None], state)
        return out[0], state


def bottleneck_forward(bottleneck: nn.Module, x: torch.Tensor, frames: list[int] | None = None,
                       active: torch.Tensor | None = None) -> torch.Tensor:
    """[B, N_L, C] -> [B, N_L, C]. ``frames``: the valid bottleneck frames of each item of a padded batch; a
    bidirectional bottleneck then runs item by item, so that each item's backward recurrence starts at its
    own end and no padding enters it (a causal one runs the batch at once: padding comes after every item).
    ``active`` [B, N_L, G]: the groups each frame runs (``GroupedGRU.forward``; None: all)."""
    if active is not None:
        return bottleneck(x, None, active)[0]
    if frames is None or not bottleneck.bidirectional:
        return bottleneck(x)[0]
    outputs = torch.zeros_like(x)
    for item, n in enumerate(frames):
        outputs[item : item + 1, :n] = bottleneck(x[item : item + 1, :n])[0]
    return outputs


def build_bottleneck(channels: int, kind: str, groups: int, layers: int, bidirectional: bool) -> nn.Module:
    """``GroupedGRU`` for kind "gru", ``DemucsLSTM`` for "lstm"."""
    if kind == "lstm":
        return DemucsLSTM(channels, layers, bidirectional)
    return GroupedGRU(channels, groups, layers, bidirectional)


__all__ = ["DemucsLSTM", "GroupedGRU", "active_groups", "bottleneck_forward", "build_bottleneck", "compiled_gru_steps",
           "compiled_slimmed_gru_steps", "grouped_gru_steps", "slimmed_gru_steps"]
