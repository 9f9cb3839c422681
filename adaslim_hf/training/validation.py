"""Validation during training: PESQ / STOI / SI-SDR, loss, mean utilization and MACs per validated setting,
batched with a padding mask and split across processes. Settings are named as in every report
(``adaslim_hf.evaluation.setting_name``: "static 0.25", "dynamic", "noisy") and items are scored by the
evaluation's ``score_items``; only the forward pass is training's own (batched, padded)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch

from ..configuration_adaslim import AdaSlimConfig, parse_utilization
from ..evaluation import NOISY, is_inverted, score_items, setting_name, speech_gain
from ..modeling_adaslim import AdaSlimModel


def parse_utilizations(values: Iterable | None, stage: str, config: AdaSlimConfig,
                       static_utilization: float | None = None) -> list[float | None]:
    """Validation settings: None means the router decides ('auto'), a float a static factor (checked)."""
    if values is None:
        if stage == "1":
            return list(config.utilization_factors)
        return [None] if stage == "2" else [float(static_utilization)]
    parsed = []
    for value in values:
        factor = parse_utilization(value, what="validation_utilizations entries",
                                   expected=f"factors {config.utilization_factors}")
        if factor is not None:
            config.factor_index(factor)
        parsed.append(factor)
    return parsed


def _waveform(value) -> torch.Tensor:
    """A 1-D float32 tensor from a tensor, an array, a datasets Audio value or a {'array': ...} dict."""
    if isinstance(value, torch.Tensor):
        return value.detach().float().reshape(-1)
    if isinstance(value, dict) or hasattr(value, "__getitem__") and not hasattr(value, "shape"):
        try:
            value = value["array"]
        except (KeyError, TypeError, IndexError):
            pass
    return torch.as_tensor(value, dtype=torch.float32).reshape(-1)


QUALITY_METRICS = ("pesq", "stoi", "si_sdr")


def quality_metrics(enhanced: Sequence[torch.Tensor], clean: Sequence[torch.Tensor],
                    sample_rate: int) -> list[dict[str, float]]:
    """PESQ (wide-band), STOI and SI-SDR of each item, through the evaluation's ``score_items`` (the evaluate
    modules of ``adaslim_hf.metrics``). An item where a metric cannot be computed (PESQ finds no utterance)
    scores NaN there; PESQ is left out at rates other than 16 kHz."""
    names = QUALITY_METRICS if sample_rate == 16000 else tuple(m for m in QUALITY_METRICS if m != "pesq")
    return score_items([e.numpy() for e in enhanced], [c.numpy() for c in clean], sample_rate, names)


# what a row reports of the model call itself (speech_gain: the output's level of the clean speech, which the
# level-blind metrics miss: a width that fell silent scored 1.40 PESQ-WB, 2026-12-06)
MODEL_KEYS = ("loss", "speech_gain", "mean_utilization", "macs_per_sample")


@torch.no_grad()
def evaluate(model: AdaSlimModel, dataset, utilizations: Sequence[float | None], *, batch_size: int = 4,
             max_items: int | None = None, include_noisy: bool = False, accelerator=None,
             metric_fn: Callable = quality_metrics, desc: str = "validation") -> dict[str, dict[str, float]]:
    """Enhance every item of ``dataset`` (whole utterances; items hold ``noisy`` and ``clean`` waveforms)
    once per setting and average the metrics over items. ``metric_fn(enhanced list, clean list, rate)`` gives
    each item's scores (default: PESQ, STOI, SI-SDR through ``adaslim_hf.metrics``).

    Items are batched with a padding mask (each item gets exactly what it gets alone) and, with an
    ``accelerator`` of several processes, split across processes and gathered. Returns
    ``{setting_name(u): {"pesq", "stoi", "si_sdr", "loss", "mean_utilization", "macs_per_sample", "items",
    "items_inverted", "<metric>_items_scored"}}``, keyed "static 0.25", ..., "dynamic" (plus ``"noisy"``: the
    metrics of the unprocessed input, with ``include_noisy``): the rows of ``scripts/evaluate.py``'s report
    under the same names and keys (``items_inverted``: the items whose output correlates negatively with the
    clean speech; ``<metric>_items_scored``: the items a metric could be computed on, the mean is over those).
    """
    was_training = model.training
    model.eval()
    rank = accelerator.process_index if accelerator is not None else 0
    world = accelerator.num_processes if accelerator is not None else 1
    from ..data.collate import spread_indices

    indices = spread_indices(len(dataset), max_items)[rank::world]  # an even spread of the split
    sample_rate = model.config.sample_rate
    device = next(model.parameters()).device
    records: list[dict] = []
    from tqdm.auto import tqdm

    starts = range(0, len(indices), batch_size)
    show = accelerator is None or accelerator.is_local_main_process
    for start in tqdm(starts, desc=desc, leave=False, disable=not show or len(starts) < 2, dynamic_ncols=True):
        items = [dataset[i] for i in indices[start : start + batch_size]]
        noisy = [_waveform(item["noisy"]) for item in items]
        clean = [_waveform(item["clean"]) for item in items]
        lengths = [len(n) for n in noisy]
        longest = max(lengths)
        noisy_batch = torch.zeros(len(items), longest)
        clean_batch = torch.zeros(len(items), longest)
        mask = torch.zeros(len(items), longest, dtype=torch.long)
        for row, (n, c) in enumerate(zip(noisy, clean)):
            noisy_batch[row, : len(n)], clean_batch[row, : len(c)], mask[row, : len(n)] = n, c, 1
        noisy_batch, clean_batch, mask = noisy_batch.to(device), clean_batch.to(device), mask.to(device)
        if include_noisy:
            for scores in metric_fn(noisy, clean, sample_rate):
                records.append({"setting": NOISY, **scores})
        for utilization in utilizations:
            out = model(noisy_batch, padding_mask=mask, utilization=utilization, clean_values=clean_batch)
            enhanced = [out.enhanced_values[row, :n].float().cpu() for row, n in enumerate(lengths)]
            for row, scores in enumerate(metric_fn(enhanced, clean, sample_rate)):
                records.append({
                    "setting": setting_name(utilization),
                    **scores,
                    "loss": float(out.se_loss),
                    "inverted": is_inverted(enhanced[row], clean[row]),  # 1.0 for an anti-correlated output
                    "speech_gain": speech_gain(enhanced[row], clean[row]),
                    "mean_utilization": float(out.mean_utilization[row]),
                    "macs_per_sample": float(out.macs[row]) / lengths[row],
                })
    if world > 1:
        from accelerate.utils import gather_object

        records = gather_object(records)
    results: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["setting"] for r in records):
        group = [r for r in records if r["setting"] == name]
        row = results[name] = {}
        for key in (k for k in group[0] if k not in ("setting", "inverted")):
            finite = [r[key] for r in group if r[key] is not None and math.isfinite(r[key])]
            # a metric that cannot be computed on an item (PESQ finds no speech) is left out, and counted
            row[key] = sum(finite) / len(finite) if finite else math.nan
            if key not in MODEL_KEYS:  # a metric of metric_fn
                row[f"{key}_items_scored"] = len(finite)
        row["items"] = len(group)
        row["items_inverted"] = int(sum(r.get("inverted", 0.0) for r in group))
    model.train(was_training)
    return results


def score(results: dict[str, dict[str, float]], metric: str) -> float:
    """Mean of ``metric`` over the validated settings (the noisy baseline excluded); higher is better
    (the loss is negated)."""
    values = [r[metric] for name, r in results.items() if name != NOISY and metric in r]
    if not values:
        return -math.inf
    mean = sum(values) / len(values)
    return -mean if metric == "loss" else mean

