"""The router: Conv1d -> ReLU -> diagonal GRU -> pointwise Conv1d, one score per utilization factor and
router frame; training picks a factor per frame by a straight-through Gumbel-softmax, inference by arg max.

``AdaSlimRouter.forward`` scores a whole input; ``AdaSlimRouter.step`` the next hops of a stream (streaming.py),
from the same front end and projection.

Imports only torch and siblings: this file travels to the Hub next to the model as remote code.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from .configuration_adaslim import AdaSlimConfig
from .products import compiled


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


def diagonal_gru_steps(sums: torch.Tensor, candidate_inputs: torch.Tensor, hidden: torch.Tensor,
                       recurrent_weight: torch.Tensor, reverse: bool) -> torch.Tensor:
    """``DiagonalGRU``'s recurrence without autograd, in five operations per step, each writing into a
    preallocated buffer (the new hidden state straight into the output); the per-step views are taken once.

    sums [N, B, 3, H]: W x + b + c of every frame, gates (z, r, n), with both biases; candidate_inputs
    [N, B, 1, H]: W_n x + b_n, the candidate's input part alone; hidden [B, 1, H] the state before the first
    frame (the last with ``reverse``); recurrent_weight [3, H] (u). -> hidden state after each frame [N, B, 1, H].

    Per step: s = sums + u * h (one multiply-add for all three gates), z and r = sigmoid(s_zr), the candidate
    n = tanh(i_n + r * (s_n - i_n)) = tanh(i_n + r * (u_n * h + c_n)) (one lerp), and h = n + z * (h - n).
    """
    frames = sums.shape[0]
    out = hidden.new_empty(frames, hidden.shape[0], 1, hidden.shape[2])
    gates = hidden.new_empty(hidden.shape[0], 3, hidden.shape[2])  # s: z, r, n
    candidate = hidden.new_empty(hidden.shape[0], 1, hidden.shape[2])
    update_reset, update, reset, summed_n = gates[:, :2], gates[:, :1], gates[:, 1:2], gates[:, 2:]
    step_sums, step_candidates, outputs = sums.unbind(0), candidate_inputs.unbind(0), out.unbind(0)
    for step in range(frames):
        t = frames - 1 - step if reverse else step
        torch.addcmul(step_sums[t], recurrent_weight, hidden, out=gates)
        update_reset.sigmoid_()
        torch.lerp(step_candidates[t], summed_n, reset, out=candidate).tanh_()
        hidden = torch.lerp(candidate, hidden, update, out=outputs[t])
    return out


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
        """``forward`` without autograd in five operations per step instead of about fifteen: both biases of
        every gate are added to all frames' projections at once, then ``diagonal_gru_steps`` (compiled by
        TorchScript)."""
        batch, frames, _ = x.shape
        size = self.hidden_size
        projected = self.input_projection(x).view(batch, frames, 3, size)  # [B, N, (z, r, n), H]
        sums = (projected + self.recurrent_bias.view(3, size)).transpose(0, 1).contiguous()  # [N, B, 3, H]
        candidate_inputs = projected[:, :, 2:].transpose(0, 1).contiguous()  # [N, B, 1, H]: W_n x + b_n
        hidden = x.new_zeros(batch, 1, size) if state is None else state[:, None]
        out = compiled(diagonal_gru_steps)(sums, candidate_inputs, hidden, self.recurrent_weight.view(3, size),
                                           self.reverse)  # [N, B, 1, H]
        return out.view(frames, batch, size).transpose(0, 1)  # [B, N, H]


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

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The front end: x [B, chin, n * hop] -> [B, n, router_channels], one feature vector per hop."""
        return F.relu(self.conv(x)).transpose(1, 2)

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """The pointwise projection: hidden [B, n, directions * H] -> logits [B, n, J], one score per factor."""
        return self.projection(hidden.transpose(1, 2)).transpose(1, 2)

    def forward(self, x: torch.Tensor, num_frames: int, valid_frames: list[int] | None = None) -> torch.Tensor:
        """x [B, chin, L] normalised input -> logits [B, N, J] for the first ``num_frames`` router frames.
        ``valid_frames``: router frames inside each item (padded batches); the reverse recurrence of a
        non-causal router then starts at each item's own end."""
        needed = num_frames * self.hop
        x = F.pad(x, (self.delay, max(0, needed - self.delay - x.shape[-1])))[..., :needed]  # [B, chin, N * hop]
        features = self.features(x)  # [B, N, router_channels]
        hidden = self.gru(features)
        if self.gru_reverse is not None:
            if valid_frames is None or min(valid_frames) == num_frames:
                backward = self.gru_reverse(features)
            else:
                backward = torch.zeros_like(hidden)
                for item, n in enumerate(valid_frames):
                    backward[item, :n] = self.gru_reverse(features[item : item + 1, :n])[0]
            hidden = torch.cat([hidden, backward], dim=-1)
        return self.scores(hidden)  # [B, N, J]

    def step(self, hops: torch.Tensor, state: torch.Tensor | None = None):
        """A causal stream's next decisions: hops [B, chin, n * hop] (the normalised input, already delayed by
        ``delay`` samples) and the diagonal GRU's state after the previous ones (None: zeros) -> (logits
        [B, n, J], state [B, H])."""
        hidden = self.gru(self.features(hops), state)  # [B, n, H]
        return self.scores(hidden), hidden[:, -1]


__all__ = ["AdaSlimRouter", "DiagonalGRU", "diagonal_gru_steps", "straight_through_gumbel"]
