"""STOI and extended STOI (ESTOI) as an evaluate metric, through the ``pystoi`` package."""

import evaluate
from pystoi import stoi as stoi_score

from adaslim_hf.metrics.checks import audio_metric_info, checked_pairs

_CITATION = """\
@article{taal2011stoi,
  title={An Algorithm for Intelligibility Prediction of Time-Frequency Weighted Noisy Speech},
  author={Taal, Cees H. and Hendriks, Richard C. and Heusdens, Richard and Jensen, Jesper},
  journal={IEEE Transactions on Audio, Speech, and Language Processing},
  volume={19}, number={7}, pages={2125--2136},
  year={2011}
}
@article{jensen2016estoi,
  title={An Algorithm for Predicting the Intelligibility of Speech Masked by Modulated Noise Maskers},
  author={Jensen, Jesper and Taal, Cees H.},
  journal={IEEE/ACM Transactions on Audio, Speech, and Language Processing},
  volume={24}, number={11}, pages={2009--2022},
  year={2016}
}
"""

_DESCRIPTION = """\
STOI (Short-Time Objective Intelligibility) predicts how intelligible a processed speech signal is, from the
correlation of short-time (384 ms) one-third-octave band envelopes of the processed and the clean signal, after
resampling both to 10 kHz and dropping silent frames. It lies in [0, 1] in practice (higher is better) and is
monotonic in listeners' word-recognition rates. ESTOI (extended STOI) correlates spectro-temporal blocks over
all bands jointly, which also ranks modulated (fluctuating) maskers well. Any sample rate is accepted: pystoi
resamples to 10 kHz itself.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of 1-D float arrays): enhanced (processed) signals, one per item.
    references (`list` of 1-D float arrays): the clean reference of each item, same length as its prediction.
    sample_rate (`int`, defaults to 16000): the sample rate of both.
    extended (`bool`, defaults to `False`): compute ESTOI instead of STOI.
Returns:
    stoi (`float`) and stoi_per_item (`list` of `float`), or with `extended=True`:
    estoi (`float`) and estoi_per_item (`list` of `float`).
    Signals shorter than 30 frames of speech (about 0.4 s after silence removal) score 1e-5, as in pystoi,
    which warns about it.
Examples:
    >>> import numpy as np
    >>> import evaluate
    >>> stoi = evaluate.load("adaslim_hf/metrics/stoi")  # a local folder: works offline
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(48000) / 16000
    >>> clean = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    >>> noisy = clean + 0.05 * rng.standard_normal(len(t))
    >>> sorted(stoi.compute(predictions=[noisy], references=[clean], sample_rate=16000, extended=True))
    ['estoi', 'estoi_per_item']
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Stoi(evaluate.Metric):
    def _info(self):
        return audio_metric_info(
            _DESCRIPTION, _CITATION, _KWARGS_DESCRIPTION,
            codebase_urls=["https://github.com/mpariente/pystoi"],
            reference_urls=["https://doi.org/10.1109/TASL.2011.2114881",
                            "https://doi.org/10.1109/TASLP.2016.2585878"])

    def _compute(self, predictions, references, sample_rate=16000, extended=False):
        if not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"stoi: sample_rate must be a positive integer, got {sample_rate!r}.")
        key = "estoi" if extended else "stoi"
        scores = [
            float(stoi_score(reference, prediction, sample_rate, extended=bool(extended)))
            for prediction, reference in checked_pairs(predictions, references, key)
        ]
        return {key: sum(scores) / len(scores), f"{key}_per_item": scores}
