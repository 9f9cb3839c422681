"""The input checks and the ``MetricInfo`` of the metric modules (``pesq``, ``stoi``, ``si_sdr``, ``dnsmos``),
written once.

The modules import this file as ``adaslim_hf.metrics.checks`` (``evaluate.load`` copies a module's script into
its cache, so a relative import would have to sit in every metric folder). Every error is a ``ValueError``
that starts with the metric's name and names the item.
"""

import numpy as np


def audio_metric_info(description: str, citation: str, inputs_description: str, *, references: bool = True,
                      codebase_urls=(), reference_urls=()):
    """The ``evaluate.MetricInfo`` of an audio metric: its texts, float32 waveforms as ``predictions`` (and
    ``references`` for an intrusive metric), and its links."""
    import datasets
    import evaluate

    waveform = datasets.Sequence(datasets.Value("float32"))
    columns = {"predictions": waveform, **({"references": waveform} if references else {})}
    return evaluate.MetricInfo(description=description, citation=citation,
                               inputs_description=inputs_description, features=datasets.Features(columns),
                               codebase_urls=list(codebase_urls), reference_urls=list(reference_urls))


def checked_count(predictions, name: str, references=None) -> None:
    """At least one item, and as many references as predictions (when references are given)."""
    if references is not None and len(predictions) != len(references):
        raise ValueError(f"{name}: {len(predictions)} predictions but {len(references)} references.")
    if len(predictions) == 0:
        raise ValueError(f"{name}: no items to score.")


def checked_signal(signal, name: str, index: int) -> np.ndarray:
    """One signal as a float64 array: non-empty and finite, or a ValueError naming item ``index``."""
    signal = np.asarray(signal, dtype=np.float64)
    if signal.size == 0:
        raise ValueError(f"{name}: item {index} is empty.")
    if not np.isfinite(signal).all():
        raise ValueError(f"{name}: item {index} holds NaN or infinite samples.")
    return signal


def checked_pairs(predictions, references, name: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Lists of 1-D signals -> (prediction, reference) float64 pairs; the same count, equal lengths, non-empty
    and finite, or a ValueError naming the item."""
    checked_count(predictions, name, references)
    pairs = []
    for index, (prediction, reference) in enumerate(zip(predictions, references)):
        prediction = np.asarray(prediction, dtype=np.float64)
        reference = np.asarray(reference, dtype=np.float64)
        if prediction.shape != reference.shape:
            raise ValueError(
                f"{name}: item {index} has a prediction of {prediction.shape[0]} samples and a reference of "
                f"{reference.shape[0]} samples; they must have the same length."
            )
        pairs.append((checked_signal(prediction, name, index), checked_signal(reference, name, index)))
    return pairs
