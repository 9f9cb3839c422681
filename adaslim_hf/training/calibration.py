"""Router calibration: fold a compute cost (and per-factor bonuses) into the router's scores so that its
arg-max decisions meet the target utilization and keep every factor above a share of the frames."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..modeling_adaslim import AdaSlimModel


@torch.no_grad()
def calibrate_router(model: AdaSlimModel, batches: Iterable[dict], target: float | None = None,
                     min_share: float | None = None, iterations: int = 60, rounds: int = 300) -> dict:
    """Make the router's arg-max decisions meet ``target`` (default: ``config.target_utilization``) on average,
    keeping every factor on at least ``min_share`` of the frames (default: ``config.min_factor_share``).

    Training pulls the mean utilization of the *Gumbel-perturbed* choices to the target; at inference the
    router takes the arg max without noise, whose mean can land elsewhere (the paper's joint models overshoot
    by ~0.04). A cost term fixes that: decisions become arg max_j (r_j - lambda u_j + b_j), whose mean
    utilization falls monotonically as lambda grows, so bisection finds the lambda that meets the target on
    ``batches`` (noisy ``input_values`` with optional ``padding_mask``; use training data, not the validation
    set). The bonus b_j is 0 unless factor j would then take less than ``min_share`` of the frames: such a
    factor gets the smallest bonus that lifts it to the share plus a 5% margin (bisection again), lambda is
    found anew, and so on until both hold or ``rounds`` are spent (then "floor_met" is False). The offsets
    are folded into the bias of the router's last conv, so the saved model decides this way by itself.

    Returns {"lambda", "bonus" (b_j per factor), "utilization_before", "utilization_after", "shares_before",
    "shares_after" (fraction of frames per factor), "min_share", "target", "floor_met" (every factor at its
    share)} (utilizations are means over items, as the validation reports them). A target below the smallest factor is left alone (decisions unchanged;
    the result then has a "skipped" reason): meeting it would put every frame at the smallest factor.
    """
    config = model.config
    target = config.target_utilization if target is None else float(target)
    min_share = config.min_factor_share if min_share is None else float(min_share)
    was_training = model.training
    model.eval()
    # every valid frame of every item in one table: scores [F, J], the item each belongs to [F]
    scores, items, item_frames = [], [], []
    for batch in batches:
        out = model(batch["input_values"], padding_mask=batch.get("padding_mask"))
        valid = out.choice >= 0  # [B, N]
        scores.append(out.router_logits.float()[valid])  # [F_batch, J]
        items.append(valid.nonzero()[:, 0] + len(item_frames))
        item_frames.extend(valid.sum(dim=1).tolist())
    model.train(was_training)
    scores, items = torch.cat(scores), torch.cat(items)
    item_frames = torch.tensor(item_frames, dtype=torch.float).clamp(min=1)  # [items]
    factors = torch.tensor(config.utilization_factors)  # [J]
    frames = max(float(scores.shape[0]), 1.0)

    def decide(offsets: torch.Tensor) -> tuple[float, torch.Tensor]:
        """-> (mean utilization over items, [J] share of frames per factor) with scores r + offsets."""
        chosen = (scores + offsets).argmax(dim=-1)  # [F]
        per_item = torch.bincount(items, weights=factors[chosen], minlength=len(item_frames)) / item_frames
        return float(per_item.mean()), torch.bincount(chosen, minlength=len(factors)).float() / frames

    def bisect(too_low, low: float, high: float) -> tuple[float, float]:
        """-> (low, high) closing in on the boundary between values where ``too_low(value)`` holds (below)
        and where it does not (above)."""
        for _ in range(iterations):
            middle = (low + high) / 2
            low, high = (middle, high) if too_low(middle) else (low, middle)
        return low, high

    before, shares_before = decide(torch.zeros(len(factors)))
    result = {"lambda": 0.0, "bonus": [0.0] * len(factors), "utilization_before": before,
              "utilization_after": before, "shares_before": shares_before.tolist(),
              "shares_after": shares_before.tolist(), "min_share": min_share, "target": target,
              "floor_met": bool((shares_before >= min_share).all())}
    if target < factors[0].item():  # "as cheap as possible": meeting it would mean every frame at the smallest
        return {**result, "skipped": f"target {target} lies below the smallest factor {factors[0].item():g}"}
    spread = max(float(scores.abs().max()) if scores.numel() else 0.0, 1.0)
    reach = 4 * spread / factors[0].item()  # lambda = -reach: every frame at 1.0 ... +reach: every frame at u_1
    bonus = torch.zeros(len(factors))
    # lifting one factor at a fixed lambda, then finding lambda again, approaches the share from below only
    # geometrically; aiming a little above it ends the rounds in a few steps
    share_margin = 0.05 * min_share

    def solve_lambda() -> float:
        bounds = bisect(lambda value: decide(bonus - value * factors)[0] > target, -reach, reach)
        return min(bounds, key=lambda value: abs(decide(bonus - value * factors)[0] - target))

    shift = solve_lambda()
    for _ in range(rounds if min_share > 0 else 0):
        shares = decide(bonus - shift * factors)[1]
        short = [j for j in range(len(factors)) if shares[j] < min_share]
        if not short:
            break
        for j in short:  # the smallest extra bonus that gives factor j its share (plus a margin) at this lambda
            def below(extra: float, j=j) -> bool:
                trial = bonus.clone()
                trial[j] += extra
                return decide(trial - shift * factors)[1][j] < min_share + share_margin
            bonus[j] += bisect(below, 0.0, 2 * (spread + abs(shift)) + 2 * float(bonus.abs().max()) + 1.0)[1]
        shift = solve_lambda()
    after, shares_after = decide(bonus - shift * factors)
    model.router.projection.bias.data += (bonus - shift * factors).to(model.router.projection.bias)
    return {**result, "lambda": shift, "bonus": bonus.tolist(), "utilization_after": after,
            "shares_after": shares_after.tolist(), "floor_met": bool((shares_after >= min_share).all())}


