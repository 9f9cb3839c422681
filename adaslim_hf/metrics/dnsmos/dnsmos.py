"""DNSMOS (P.808 and P.835 SIG/BAK/OVRL) as an evaluate metric, through the ONNX models that the ``speechmos``
package ships inside its wheel (no download; 16 kHz only)."""

import os

import evaluate
import librosa
import numpy as np
import onnxruntime
from speechmos import dnsmos as speechmos_dnsmos

from adaslim_hf.metrics.checks import audio_metric_info, checked_count, checked_signal

# speechmos declares no dependencies but needs these two at run time; importing them here lets evaluate's
# dependency check name them when they are missing.
RUNTIME_DEPENDENCIES = (librosa, onnxruntime)

_CITATION = """\
@inproceedings{reddy2021dnsmos,
  title={{DNSMOS}: A Non-Intrusive Perceptual Objective Speech Quality Metric to Evaluate Noise Suppressors},
  author={Reddy, Chandan K. A. and Gopal, Vishak and Cutler, Ross},
  booktitle={IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
  pages={6493--6497},
  year={2021}
}
@inproceedings{reddy2022dnsmosp835,
  title={{DNSMOS P.835}: A Non-Intrusive Perceptual Objective Speech Quality Metric to Evaluate Noise
         Suppressors},
  author={Reddy, Chandan K. A. and Gopal, Vishak and Cutler, Ross},
  booktitle={IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
  pages={886--890},
  year={2022}
}
"""

_DESCRIPTION = """\
DNSMOS is Microsoft's non-intrusive (reference-free) deep-learned predictor of listener ratings, trained on the
ratings of the Deep Noise Suppression challenges. Two networks run on 9.01 s windows (hop 1 s) of 16 kHz audio:
the P.808 model predicts the overall MOS of ITU-T P.808 listening tests (p808_mos); the P.835 model predicts the
three ITU-T P.835 ratings: speech signal quality (sig_mos), background-noise intrusiveness (bak_mos) and overall
quality (ovrl_mos). All lie on a 1-5 scale, higher is better. Clips shorter than 9.01 s are repeated up to that
length before scoring, as in Microsoft's reference script. The models come from the `speechmos` wheel, so the
metric runs offline.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of 1-D float arrays): the signals to rate, one per item, with samples in [-1, 1].
    references (optional): not used (DNSMOS needs no reference); accepted so every metric of this package is
        called the same way.
    sample_rate (`int`, defaults to 16000): must be 16000; nothing is resampled.
    personalized (`bool`, defaults to `False`): use the personalized P.835 model (pDNSMOS, which penalises
        interfering talkers) instead of the standard one.
    num_threads (`int`, *optional*): threads of the ONNX sessions (default: onnxruntime's, one per core).
Returns:
    p808_mos, sig_mos, bak_mos, ovrl_mos (`float`): means over items.
    p808_mos_per_item, sig_mos_per_item, bak_mos_per_item, ovrl_mos_per_item (`list` of `float`): per item.
Examples:
    >>> import numpy as np
    >>> import evaluate
    >>> dnsmos = evaluate.load("adaslim_hf/metrics/dnsmos")  # a local folder: works offline
    >>> t = np.arange(48000) / 16000
    >>> voiced = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    >>> results = dnsmos.compute(predictions=[voiced], sample_rate=16000)
    >>> sorted(k for k in results if not k.endswith("_per_item"))
    ['bak_mos', 'ovrl_mos', 'p808_mos', 'sig_mos']
"""

SAMPLE_RATE = 16000
KEYS = ("p808_mos", "sig_mos", "bak_mos", "ovrl_mos")


def _checked_signals(predictions, name):
    """A list of 1-D signals -> float64 arrays; non-empty, finite and within [-1, 1], or a ValueError naming
    the item."""
    checked_count(predictions, name)
    signals = []
    for index, prediction in enumerate(predictions):
        prediction = checked_signal(prediction, name, index)
        peak = float(np.abs(prediction).max())
        if peak > 1:
            raise ValueError(
                f"{name}: item {index} peaks at {peak:.4f}; DNSMOS takes samples in [-1, 1] (scale or clip the "
                "signal first, as writing it to a PCM file would)."
            )
        signals.append(prediction)
    return signals


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Dnsmos(evaluate.Metric):
    def _info(self):
        return audio_metric_info(
            _DESCRIPTION, _CITATION, _KWARGS_DESCRIPTION,
            references=False,
            codebase_urls=["https://github.com/microsoft/DNS-Challenge/tree/master/DNSMOS",
                           "https://github.com/lcn-kul/speechmos"],
            reference_urls=["https://arxiv.org/abs/2010.15258", "https://arxiv.org/abs/2110.01763"])

    def _compute(self, predictions, references=None, sample_rate=SAMPLE_RATE, personalized=False, num_threads=None):
        if sample_rate != SAMPLE_RATE:
            raise ValueError(
                f"dnsmos: the DNSMOS models take {SAMPLE_RATE} Hz audio, got {sample_rate}; resample first."
            )
        if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                        or num_threads < 1):
            raise ValueError(f"dnsmos: num_threads must be a positive integer, got {num_threads!r}.")
        model_type = "dnsmos_personalized" if personalized else "dnsmos"
        if num_threads is not None:
            _load_with_threads(personalized, num_threads)
        per_item = {key: [] for key in KEYS}
        for signal in _checked_signals(predictions, "dnsmos"):
            scores = speechmos_dnsmos.run(signal, sr=SAMPLE_RATE, model_type=model_type)
            for key in KEYS:
                per_item[key].append(float(scores[key]))
        results = {key: sum(values) / len(values) for key, values in per_item.items()}
        results.update({f"{key}_per_item": values for key, values in per_item.items()})
        return results


def _load_with_threads(personalized: bool, num_threads: int) -> None:
    """Make speechmos' cached model (``speechmos.dnsmos.dnsmos``, reused by ``run`` for the same model file) one
    whose two ONNX sessions run on ``num_threads`` threads; speechmos itself opens them with onnxruntime's
    default of one thread per core. The model files and their paths are speechmos' own."""
    folder = os.path.dirname(os.path.abspath(speechmos_dnsmos.__file__))
    primary = os.path.join(folder, "pdnsmos_models" if personalized else "dnsmos_models", "sig_bak_ovr.onnx")
    p808 = os.path.join(folder, "dnsmos_models", "model_v8.onnx")
    cached = speechmos_dnsmos.dnsmos
    if (cached is not None and cached.primary_model_path == primary
            and getattr(cached, "adaslim_num_threads", None) == num_threads):
        return
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    model = speechmos_dnsmos.DNSMOS(primary, p808)
    model.onnx_sess = onnxruntime.InferenceSession(primary, sess_options=options, providers=["CPUExecutionProvider"])
    model.p808_onnx_sess = onnxruntime.InferenceSession(p808, sess_options=options,
                                                        providers=["CPUExecutionProvider"])
    model.adaslim_num_threads = num_threads
    speechmos_dnsmos.dnsmos = model
