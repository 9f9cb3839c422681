"""Speech-enhancement metrics as ``evaluate`` modules, one folder each, laid out like evaluate's own metrics
(``<name>/<name>.py`` plus a ``README.md`` card), and loaded from these local folders so they work offline.

- ``pesq``: PESQ MOS-LQO, wide-band (P.862.2, 16 kHz) or narrow-band (P.862.1, 8 or 16 kHz).
- ``stoi``: STOI, or ESTOI with ``extended=True``.
- ``si_sdr``: scale-invariant SDR in dB.
- ``dnsmos``: DNSMOS P.808 MOS and P.835 SIG/BAK/OVRL (reference-free, 16 kHz), through speechmos' ONNX models.

Each module's ``compute(predictions=..., references=..., sample_rate=...)`` returns the mean over items and a
per-item list. Their input checks (item count, equal lengths, empty, non-finite) are written once, in
``checks.py``, which the modules import as ``adaslim_hf.metrics.checks`` (so a module loads where this package
is importable). ``compute_all`` runs a chosen set of them on lists of 1-D numpy arrays, for training validation
and the evaluation script::

    from adaslim_hf.metrics import compute_all, load_metric

    stoi = load_metric("stoi")  # an evaluate.EvaluationModule
    scores = compute_all(enhanced, clean, sample_rate=16000)  # {"pesq": ..., "stoi": ..., ...}
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np
import torch

METRICS_DIR = os.path.dirname(os.path.abspath(__file__))
METRIC_NAMES = ("pesq", "stoi", "si_sdr", "dnsmos")  # the module folders

# compute_all's scores: score name -> (module, compute kwargs, {module result key: compute_all key})
SCORES = {
    "pesq": ("pesq", {"mode": "wb", "on_error": "nan"}, {"pesq": "pesq"}),
    "pesq_nb": ("pesq", {"mode": "nb", "on_error": "nan"}, {"pesq": "pesq_nb"}),
    "stoi": ("stoi", {"extended": False}, {"stoi": "stoi"}),
    "estoi": ("stoi", {"extended": True}, {"estoi": "estoi"}),
    "si_sdr": ("si_sdr", {}, {"si_sdr": "si_sdr"}),
    "dnsmos": (
        "dnsmos",
        {},
        {"p808_mos": "dnsmos_p808", "sig_mos": "dnsmos_sig", "bak_mos": "dnsmos_bak", "ovrl_mos": "dnsmos_ovrl"},
    ),
}
ALL_SCORES = tuple(SCORES)
WIDEBAND_RATE = 16000
ONLY_AT_16K = ("pesq", "dnsmos")  # wide-band PESQ and the DNSMOS models are defined at 16 kHz only
REFERENCE_FREE = ("dnsmos",)


def metric_path(name: str) -> str:
    """The local folder of metric ``name`` (one of METRIC_NAMES), as ``evaluate.load`` takes it."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; this package has {list(METRIC_NAMES)}.")
    return os.path.join(METRICS_DIR, name)


def load_metric(name: str, **kwargs):
    """``evaluate.load`` of this package's metric ``name`` from its local folder (no Hub access, so it works
    with ``HF_HUB_OFFLINE=1``). ``kwargs`` go to ``evaluate.load`` (e.g. ``keep_in_memory=True``)."""
    import evaluate  # imported here: evaluate (and datasets) take seconds to import

    return evaluate.load(metric_path(name), **kwargs)


@functools.cache
def _module(name: str):
    """One in-memory instance per metric, reused by compute_all (loading re-hashes and copies the script)."""
    return load_metric(name, keep_in_memory=True)


def _as_items(signals, role: str) -> list[np.ndarray]:
    """A 1-D array (one item) or a sequence of 1-D arrays -> a list of float32 arrays."""
    if isinstance(signals, (list, tuple)):
        items = [np.asarray(signal, dtype=np.float32) for signal in signals]
    else:
        array = np.asarray(signals, dtype=np.float32)
        if array.ndim != 1:
            raise ValueError(
                f"{role} must be a 1-D array (one item) or a list of 1-D arrays, got an array of shape "
                f"{list(array.shape)}."
            )
        items = [array]
    if not items:
        raise ValueError(f"{role} holds no items.")
    for index, item in enumerate(items):
        if item.ndim != 1:
            raise ValueError(f"{role}[{index}] must be 1-D (samples), got shape {list(item.shape)}.")
    return items


def compute_all(
    enhanced,
    clean,
    sample_rate: int = WIDEBAND_RATE,
    metrics: Sequence[str] = ALL_SCORES,
    per_item: bool = False,
) -> dict[str, float | list[float]]:
    """Every requested score of ``enhanced`` against ``clean``, averaged over items.

    Args:
        enhanced, clean: lists of 1-D numpy arrays (item i of each pairs up; equal lengths), or one 1-D array
            each for a single item.
        sample_rate: their sample rate. ``"pesq"`` (wide-band) and ``"dnsmos"`` need 16000; nothing is resampled.
        metrics: which scores, from ALL_SCORES = ("pesq", "pesq_nb", "stoi", "estoi", "si_sdr", "dnsmos").
        per_item: also return ``"<key>_per_item"`` lists.

    Returns:
        floats under ``pesq``, ``pesq_nb``, ``stoi``, ``estoi``, ``si_sdr`` (dB), ``dnsmos_p808``,
        ``dnsmos_sig``, ``dnsmos_bak`` and ``dnsmos_ovrl`` (those requested). An item in which PESQ finds no
        utterance scores NaN there and is left out of the PESQ mean (NaN when no item could be scored).
    """
    unknown = [name for name in metrics if name not in SCORES]
    if unknown:
        raise ValueError(f"unknown score(s) {unknown}; choose from {list(ALL_SCORES)}.")
    needs_16k = [name for name in metrics if name in ONLY_AT_16K]
    if sample_rate != WIDEBAND_RATE and needs_16k:
        raise ValueError(
            f"{needs_16k} need {WIDEBAND_RATE} Hz audio, got sample_rate={sample_rate}; resample first, or ask for "
            f"metrics={[name for name in metrics if name not in ONLY_AT_16K]}."
        )
    predictions, references = _as_items(enhanced, "enhanced"), _as_items(clean, "clean")
    if len(predictions) != len(references):
        raise ValueError(f"enhanced has {len(predictions)} items but clean has {len(references)}.")
    results: dict[str, float | list[float]] = {}
    for name in dict.fromkeys(metrics):
        module, kwargs, keys = SCORES[name]
        inputs = {"predictions": predictions}
        if name not in REFERENCE_FREE:
            inputs["references"] = references
        if name == "dnsmos":  # its ONNX sessions get the thread budget torch was given (evaluate.py --threads)
            kwargs = {**kwargs, "num_threads": torch.get_num_threads()}
        scores = _module(module).compute(**inputs, sample_rate=sample_rate, **kwargs)
        for key, renamed in keys.items():
            results[renamed] = float(scores[key])
            if per_item:
                results[f"{renamed}_per_item"] = [float(value) for value in scores[f"{key}_per_item"]]
    return results


__all__ = ["ALL_SCORES", "METRIC_NAMES", "compute_all", "load_metric", "metric_path"]
