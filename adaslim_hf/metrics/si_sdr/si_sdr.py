"""Scale-invariant signal-to-distortion ratio (SI-SDR) as an evaluate metric (numpy, float64)."""

import evaluate
import numpy as np

from adaslim_hf.metrics.checks import audio_metric_info, checked_pairs

_CITATION = """\
@inproceedings{leroux2019sdr,
  title={{SDR} -- Half-baked or Well Done?},
  author={Le Roux, Jonathan and Wisdom, Scott and Erdogan, Hakan and Hershey, John R.},
  booktitle={IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
  pages={626--630},
  year={2019}
}
"""

_DESCRIPTION = """\
SI-SDR measures, in dB, how much of an estimate is the (optimally scaled) reference and how much is distortion:
SI-SDR = 10 log10(||a s||^2 / ||a s - e||^2) with a = <e, s> / ||s||^2, e the estimate and s the reference,
both made zero-mean first by default. Rescaling the estimate does not change it; higher is better. A perfect
estimate is bounded only by the small constant (1e-8) that keeps silent or identical inputs finite.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of 1-D float arrays): estimates (enhanced signals), one per item.
    references (`list` of 1-D float arrays): the clean reference of each item, same length as its prediction.
    sample_rate (`int`, defaults to 16000): accepted for a uniform interface; SI-SDR does not depend on it.
    zero_mean (`bool`, defaults to `True`): remove each signal's mean first.
Returns:
    si_sdr (`float`): the mean over items, in dB.
    si_sdr_per_item (`list` of `float`): one value per item, in dB.
Examples:
    >>> import numpy as np
    >>> import evaluate
    >>> si_sdr = evaluate.load("adaslim_hf/metrics/si_sdr")  # a local folder: works offline
    >>> rng = np.random.default_rng(0)
    >>> clean = rng.standard_normal(16000)
    >>> noise = rng.standard_normal(16000)
    >>> noise -= noise @ clean / (clean @ clean) * clean  # orthogonal to the reference
    >>> noisy = clean + 0.1 * noise * np.linalg.norm(clean) / np.linalg.norm(noise)  # 20 dB below it
    >>> results = si_sdr.compute(predictions=[noisy], references=[clean], zero_mean=False)
    >>> round(results["si_sdr"], 3)
    20.0
"""

EPS = 1e-8


def scale_invariant_sdr(estimate, reference, zero_mean=True):
    """SI-SDR in dB of one 1-D estimate against its 1-D reference."""
    if zero_mean:
        estimate = estimate - estimate.mean()
        reference = reference - reference.mean()
    scale = (estimate @ reference) / (reference @ reference + EPS)
    projection = scale * reference
    distortion = estimate - projection
    return float(10 * np.log10((projection @ projection + EPS) / (distortion @ distortion + EPS)))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SiSdr(evaluate.Metric):
    def _info(self):
        return audio_metric_info(
            _DESCRIPTION, _CITATION, _KWARGS_DESCRIPTION,
            reference_urls=["https://arxiv.org/abs/1811.02508"])

    def _compute(self, predictions, references, sample_rate=16000, zero_mean=True):
        scores = [
            scale_invariant_sdr(prediction, reference, zero_mean=bool(zero_mean))
            for prediction, reference in checked_pairs(predictions, references, "si_sdr")
        ]
        return {"si_sdr": sum(scores) / len(scores), "si_sdr_per_item": scores}
