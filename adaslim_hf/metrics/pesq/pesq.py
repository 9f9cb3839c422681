"""PESQ (ITU-T P.862) as an evaluate metric: wide-band (P.862.2, 16 kHz) and narrow-band (P.862.1, 8 or 16 kHz)
MOS-LQO through the ``pesq`` package (Miao Wang's wrapper of the ITU reference C code)."""

import math

import evaluate
import numpy as np
from pesq import NoUtterancesError
from pesq import pesq as pesq_score

from adaslim_hf.metrics.checks import audio_metric_info, checked_pairs

_CITATION = """\
@inproceedings{rix2001pesq,
  title={Perceptual evaluation of speech quality (PESQ) -- a new method for speech quality assessment of
         telephone networks and codecs},
  author={Rix, Antony W. and Beerends, John G. and Hollier, Michael P. and Hekstra, Andries P.},
  booktitle={IEEE International Conference on Acoustics, Speech, and Signal Processing (ICASSP)},
  pages={749--752},
  year={2001}
}
@misc{itu2007p862_2,
  title={{ITU-T} Recommendation {P.862.2}: Wideband extension to Recommendation {P.862} for the assessment of
         wideband telephone networks and speech codecs},
  author={{ITU-T}},
  year={2007}
}
"""

_DESCRIPTION = """\
PESQ (Perceptual Evaluation of Speech Quality, ITU-T P.862) predicts the mean opinion score a listener would
give a degraded (here: enhanced) speech signal compared with its clean reference. Wide-band mode (P.862.2)
needs 16 kHz audio and maps to a MOS-LQO between about 1.04 and 4.64; narrow-band mode (P.862.1) takes 8 or
16 kHz and maps to about 1.02 to 4.55. Higher is better. Speech-enhancement papers (DEMUCS, VoiceBank-DEMAND
tables) report wide-band PESQ at 16 kHz.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of 1-D float arrays): enhanced (degraded) signals, one per item, in [-1, 1] scale.
    references (`list` of 1-D float arrays): the clean reference of each item, same length as its prediction.
    sample_rate (`int`, defaults to 16000): 16000, or 8000 for narrow-band mode. Nothing is resampled.
    mode (`str`, defaults to `"wb"`): `"wb"` (wide-band, P.862.2) or `"nb"` (narrow-band, P.862.1).
    on_error (`str`, defaults to `"raise"`): what an item with no detectable speech in the reference gives:
        `"raise"` re-raises PESQ's NoUtterancesError, `"nan"` scores that item NaN and leaves it out of the mean.
Returns:
    pesq (`float`): the mean over items (over the items that could be scored, with `on_error="nan"`).
    pesq_per_item (`list` of `float`): one score per item.
Examples:
    >>> import numpy as np
    >>> import evaluate
    >>> pesq = evaluate.load("adaslim_hf/metrics/pesq")  # a local folder: works offline
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(48000) / 16000
    >>> clean = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    >>> noisy = clean + 0.05 * rng.standard_normal(len(t))
    >>> results = pesq.compute(predictions=[noisy], references=[clean], sample_rate=16000, mode="wb")
    >>> sorted(results)
    ['pesq', 'pesq_per_item']
"""

MODES = {"wb": (16000,), "nb": (8000, 16000)}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Pesq(evaluate.Metric):
    def _info(self):
        return audio_metric_info(
            _DESCRIPTION, _CITATION, _KWARGS_DESCRIPTION,
            codebase_urls=["https://github.com/ludlows/PESQ"],
            reference_urls=["https://www.itu.int/rec/T-REC-P.862",
                            "https://www.itu.int/rec/T-REC-P.862.2"])

    def _compute(self, predictions, references, sample_rate=16000, mode="wb", on_error="raise"):
        if mode not in MODES:
            raise ValueError(f"pesq: mode must be one of {sorted(MODES)}, got {mode!r}.")
        if sample_rate not in MODES[mode]:
            raise ValueError(
                f"pesq: {mode!r} mode takes sample_rate in {MODES[mode]} Hz, got {sample_rate}; resample first."
            )
        if on_error not in ("raise", "nan"):
            raise ValueError(f"pesq: on_error must be 'raise' or 'nan', got {on_error!r}.")
        scores = []
        for prediction, reference in checked_pairs(predictions, references, "pesq"):
            try:
                with np.errstate(divide="ignore", invalid="ignore"):  # a silent pair: pesq divides 0 by 0, then says so
                    scores.append(float(pesq_score(sample_rate, reference, prediction, mode)))
            except NoUtterancesError:
                if on_error == "raise":
                    raise
                scores.append(math.nan)
        scored = [s for s in scores if not math.isnan(s)]
        return {"pesq": sum(scored) / len(scored) if scored else math.nan, "pesq_per_item": scores}
