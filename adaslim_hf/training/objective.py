"""The training objectives: every forward of :class:`TrainingObjective` computes one term of a stage's loss,
and :func:`backward_terms` takes a step's terms one after the other (one graph alive at a time)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..evaluation import setting_name
from ..losses import enhancement_losses
from ..modeling_adaslim import AdaSlimModel
from .settings import STAGES


def slimmable_loss(model: AdaSlimModel, noisy: torch.Tensor, clean: torch.Tensor,
                   padding_mask: torch.Tensor | None = None, factors: Sequence[float] | None = None
                   ) -> tuple[torch.Tensor, dict[float, torch.Tensor]]:
    """Stage 1: L_slim = sum over ``factors`` (default: all configured) of L_SE(enhanced at u, clean) (+
    polarity_weight * L_Pol at u), each a static-factor forward with sliced weights. noisy, clean [B, T] ->
    (L_slim, {u: that factor's term})."""
    factors = model.config.utilization_factors if factors is None else factors
    shared = model.share_inputs(noisy, padding_mask, clean)  # normalised, up-sampled input and target spectra
    terms = {}
    for factor in factors:
        terms[float(factor)] = model(noisy, padding_mask=padding_mask, utilization=float(factor),
                                     clean_values=clean, shared_inputs=shared).loss
    return torch.stack(list(terms.values())).sum(), terms


class TrainingObjective(nn.Module):
    """Wraps the model so that every forward computes one *term* of a stage's loss.

    A step is one forward and one backward per term (:func:`backward_terms`): stage '1' has one term per
    factor (L_SE at that factor, sliced weights), so only one factor's graph is alive at a time; the
    gradient of L_slim = sum of terms is the sum of the terms' gradients. Stage '2' and 'static' have a
    single term. Under DistributedDataParallel the wrapper is what gets wrapped: every term is one DDP
    forward, and gradients are all-reduced once, after the last term.

    With ``slimmable_weight`` > 0, stage '2' has stage 1's terms too (every factor, sliced weights), each
    scaled by the weight: the router's term keeps every width learning whatever the router picks.

    With ``distillation_weight`` d > 0 (in-place distillation, Yu & Huang 2019), the factor terms run from the
    widest down; the widest learns from the clean target alone, and each narrower factor's L_SE becomes
    (1 - d) L_SE(enhanced_u, clean) + d L_SE(enhanced_u, enhanced_widest), the widest output of the same batch
    detached: the narrow widths, which share their weights with the widest, pull towards what it does instead
    of against it. L_SE is the model's own, every optional term included (``losses.enhancement_losses``):
    against the teacher with DEMUCS' L1 + STFT alone, a recipe that drops the log-magnitude term for L_Cmp left
    the narrow widths nothing that holds their level, and they fell to -37 dB (2026-12-06).

    ``factor_weights`` (one per factor, in ``utilization_factors`` order; default 1 each, the paper's L_slim)
    scales each factor's term, e.g. to lean on the full width while the narrow widths train beside it.

    With ``narrow_per_step`` k > 0 a micro-batch trains the widest factor and k of the narrower ones, drawn
    without replacement (``terms(generator)``), instead of every factor (the sandwich rule's sampling, Yu &
    Huang 2019): a narrow width costs about half a full-width term on CPU (its outer layers, bottleneck and
    loss spectra do not slim), so with 3 narrow factors and k = 1 a micro-batch costs about 0.6 of a full
    stage-1 one. A drawn narrow term is scaled by (narrow factors / k), so that the expected gradient is the
    one of every factor.

    ``forward(noisy [B, T], clean [B, T], padding_mask [B, T] or None, term)`` -> dict with ``loss`` (the
    tensor to back-propagate) and detached scalars to log (``se_loss/static <factor>``, named as the
    reports name a static call, in stage 1; ``se_loss``, ``efficiency_loss``, ``balance_loss``,
    ``mean_utilization`` and ``fraction/<factor>``, the share of frames routed to it, in stage 2).

    Stage 1 computes the width-independent part of the batch (``AdaSlimModel.share_inputs``: normalised,
    up-sampled input and the target's spectra) at its first term and reuses it for the other factors, as long
    as it is called with the same, unmodified tensors.
    """

    def __init__(self, model: AdaSlimModel, stage: str, static_utilization: float | None = None,
                 slimmable_weight: float = 0.0, distillation_weight: float = 0.0,
                 factor_weights: Sequence[float] | None = None, narrow_per_step: int = 0):
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}.")
        if slimmable_weight and stage != "2":
            raise ValueError(f"slimmable_weight applies to stage '2', not stage {stage!r}.")
        if not 0 <= distillation_weight <= 1:
            raise ValueError(f"distillation_weight must lie in [0, 1], got {distillation_weight}.")
        if distillation_weight and stage == "static":
            raise ValueError("distillation_weight needs the factor terms of stage '1' (or '2' with slimmable_weight).")
        factors = [float(u) for u in model.config.utilization_factors]
        weights = [1.0] * len(factors) if factor_weights is None else [float(w) for w in factor_weights]
        if len(weights) != len(factors) or min(weights) < 0 or max(weights) == 0:
            raise ValueError(f"factor_weights must be {len(factors)} weights >= 0, not all 0 (one per factor of "
                             f"{factors}), got {list(factor_weights)}.")
        self.factor_weights = dict(zip(factors, weights))
        if not 0 <= narrow_per_step < len(factors) or (narrow_per_step and stage == "static"):
            raise ValueError(f"narrow_per_step must be 0 (every factor) or 1 to {len(factors) - 1} narrow factors "
                             f"of stage '1' or '2', got {narrow_per_step} in stage {stage!r}.")
        self.narrow_per_step = int(narrow_per_step)
        self.model = model
        self.stage = stage
        self.slimmable_weight = float(slimmable_weight)
        self.distillation_weight = float(distillation_weight)
        self._teacher = None  # (the batch's SharedInputs, the widest factor's output [B, T] detached)
        self._shared_inputs = None  # stage 1: the last batch's SharedInputs
        self.static_utilization = None
        if stage == "static":
            model.config.factor_index(static_utilization)  # ValueError listing the allowed factors
            self.static_utilization = float(static_utilization)

    def terms(self, generator: torch.Generator | None = None) -> list[float | None]:
        """The terms of one step: the factors widest first (stage '1'), the factor ('static'), or in stage '2'
        the factors (with a slimmable weight) and then None (the router). With ``narrow_per_step`` the factor
        terms are the widest and that many narrower ones drawn with ``generator`` (None: every factor, e.g. to
        check a term's name).

        The order matters twice: the widest factor is the narrower ones' teacher under distillation, and under
        DistributedDataParallel only the last term is synchronised, so its one forward must give every
        trainable parameter a gradient. A narrow factor's does (sliced weights, its per-width gains) where the
        widest's does not (its gains are fixed at 1); in stage '2' the router's term is the only one that
        uses the router."""
        factors = [float(u) for u in self.model.config.utilization_factors]
        if self.narrow_per_step and generator is not None:
            *narrow, widest = factors  # the config keeps them strictly increasing
            drawn = torch.randperm(len(narrow), generator=generator)[: self.narrow_per_step].tolist()
            factors = [widest] + [narrow[index] for index in drawn]
        factors = sorted(factors, reverse=True)
        if self.stage == "1":
            return factors
        if self.stage == "static":
            return [self.static_utilization]
        return (factors if self.slimmable_weight else []) + [None]

    def forward(self, noisy: torch.Tensor, clean: torch.Tensor, padding_mask: torch.Tensor | None = None,
                term: float | None = None, gumbel_noise_scale: float = 1.0):
        if term is not None and term not in self.terms():
            raise ValueError(f"stage {self.stage!r} has the terms {self.terms()}, not {term!r}.")
        if self.stage in ("1", "static") or term is not None:
            if term is None:
                raise ValueError(f"stage {self.stage!r} needs a factor as `term`, one of {self.terms()}.")
            shared = None
            if self.stage in ("1", "2"):
                shared = self._shared_inputs
                if shared is None or not shared.matches(noisy, padding_mask, clean):
                    shared = self._shared_inputs = self.model.share_inputs(noisy, padding_mask, clean)
            out = self.model(noisy, padding_mask=padding_mask, utilization=float(term), clean_values=clean,
                             shared_inputs=shared)
            name = setting_name(float(term))  # "static 0.25"
            logs = {f"se_loss/{name}": out.se_loss.detach(), f"polarity_loss/{name}": out.polarity_loss.detach()}
            loss = out.loss
            if self.distillation_weight:
                loss = self._distilled(loss, out.enhanced_values, float(term), shared, noisy, padding_mask, logs)
            loss = loss * self.factor_weights[float(term)] if self.stage in ("1", "2") else loss
            if self.narrow_per_step and float(term) != max(self.model.config.utilization_factors):
                loss = loss * (len(self.factor_weights) - 1) / self.narrow_per_step  # a drawn narrow term
            loss = loss * self.slimmable_weight if self.stage == "2" else loss
            return {"loss": loss, **logs}
        out = self.model(noisy, padding_mask=padding_mask, clean_values=clean, gumbel_noise_scale=gumbel_noise_scale)
        return {"loss": out.loss, **self._router_logs(out)}

    def _distilled(self, loss, enhanced, term: float, shared, noisy, padding_mask, logs: dict):
        """In-place distillation of a factor term: the widest factor's output becomes the teacher of this
        batch; a narrower factor's loss is mixed with its L_SE against that teacher."""
        config = self.model.config
        if term == max(config.utilization_factors):
            self._teacher = (shared, enhanced.detach())
            return loss
        if self._teacher is None or self._teacher[0] is not shared:
            raise RuntimeError("in-place distillation needs the widest factor's term of the same batch first "
                               f"(terms in the order {self.terms()}).")
        distillation = enhancement_losses(config, enhanced, self._teacher[1], noisy, padding_mask)[0]
        logs[f"distillation_loss/{setting_name(term)}"] = distillation.detach()
        return (1 - self.distillation_weight) * loss + self.distillation_weight * distillation

    def _router_logs(self, out) -> dict:
        """The detached scalars a router term logs."""
        factors = self.model.config.utilization_factors
        valid = out.choice >= 0
        counts = torch.stack([((out.choice == j) & valid).sum() for j in range(len(factors))]).float()
        fractions = counts / valid.sum().clamp(min=1)
        logs = {
            "se_loss": out.se_loss.detach(),
            "polarity_loss": out.polarity_loss.detach(),
            "efficiency_loss": out.efficiency_loss.detach(),
            "balance_loss": out.balance_loss.detach(),
            "mean_utilization": out.mean_utilization.detach().mean(),
        }
        if out.share_loss is not None:
            logs["share_loss"] = out.share_loss.detach()
        logs.update({f"fraction/{factor:g}": fractions[j] for j, factor in enumerate(factors)})
        return logs


def backward_terms(objective: nn.Module, terms: Sequence[float | None], noisy: torch.Tensor, clean: torch.Tensor,
                   padding_mask: torch.Tensor | None = None, *, backward: Callable = torch.Tensor.backward,
                   no_sync: Callable | None = None, check_loss: Callable | None = None,
                   gumbel_noise_scale: float = 1.0) -> dict[str, float]:
    """Forward and backward every term of one step, accumulating gradients; -> the logged values, with
    ``loss`` the sum of the terms (L_slim in stage 1).

    ``backward`` is ``accelerator.backward`` in the loop (scaling for accumulation and mixed precision);
    ``no_sync`` a context factory (``lambda: accelerator.no_sync(objective)``) entered for every term but
    the last, so distributed gradients are reduced once per step; ``check_loss(loss, term)`` runs before
    each backward (the NaN guard); ``gumbel_noise_scale`` reaches the router's choice (stage 2, see
    ``gumbel_noise_scale_at``).
    """
    logs: dict[str, float] = {}
    total = 0.0
    for index, term in enumerate(terms):
        last = index == len(terms) - 1
        with no_sync() if no_sync is not None and not last else contextlib.nullcontext():
            outputs = objective(noisy, clean, padding_mask, term, gumbel_noise_scale=gumbel_noise_scale)
            if check_loss is not None:
                check_loss(outputs["loss"], term)
            backward(outputs["loss"])
        total += float(outputs["loss"].detach())
        logs.update({k: float(v) for k, v in outputs.items() if k != "loss"})
    logs["loss"] = total
    return logs


def gumbel_noise_scale_at(step: int, decay_steps: int) -> float:
    """The scale of the router's Gumbel noise at optimizer step ``step`` (0-based): 1 - step / decay_steps,
    down to 0 and staying there; always 1 when ``decay_steps`` is 0."""
    if decay_steps <= 0:
        return 1.0
    return max(0.0, 1.0 - step / decay_steps)


