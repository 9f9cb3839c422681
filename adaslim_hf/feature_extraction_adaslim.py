"""Feature extractor of the adaptive-slimming DEMUCS: raw mono waveforms in, ``input_values`` + ``padding_mask`` out.

The model reads the waveform itself (it normalises by the input's standard deviation internally), so the
extractor only checks, converts and pads: mono float32 at the model's rate, a mask marking the real samples.
Resampling and multichannel audio are the pipeline's job (``pipeline_adaslim.py``); this class refuses them
with a ValueError instead of guessing.

Imports only numpy, torch (through transformers), transformers and ``waveform.py`` (the PCM conversion and
checks it shares with ``audio_io`` and the pipeline): it travels to the Hub as remote code.
"""

from typing import ClassVar

import numpy as np
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import TensorType, logging

from .waveform import check_dry, check_finite, pcm_to_float32

logger = logging.get_logger(__name__)


class AdaSlimFeatureExtractor(SequenceFeatureExtractor):
    r"""
    Prepares mono waveforms for [`AdaSlimModel`]: float32 `input_values` of shape `(batch, samples)` and an
    integer `padding_mask` of the same shape (1 for real samples, 0 for padding), padded on the right.

    Args:
        feature_size (`int`, defaults to 1): channels per item; only mono (1) is supported.
        sampling_rate (`int`, defaults to 16000): the rate the model was trained at; inputs must already be at it.
        padding_value (`float`, defaults to 0.0): value of padded samples.

    Example:
    ```python
    >>> import numpy as np
    >>> from adaslim_hf import AdaSlimFeatureExtractor
    >>> extractor = AdaSlimFeatureExtractor(sampling_rate=16000)
    >>> batch = extractor([np.zeros(16000), np.zeros(8000)], sampling_rate=16000, return_tensors="pt")
    >>> batch["input_values"].shape, batch["padding_mask"].sum(dim=1).tolist()
    (torch.Size([2, 16000]), [16000, 8000])
    ```
    """

    model_input_names: ClassVar[list[str]] = ["input_values", "padding_mask"]

    def __init__(self, feature_size: int = 1, sampling_rate: int = 16000, padding_value: float = 0.0, **kwargs):
        if feature_size != 1:
            raise ValueError(f"AdaSlimFeatureExtractor handles mono audio (feature_size=1), got feature_size={feature_size}.")
        kwargs.setdefault("return_attention_mask", True)
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)

    def __call__(
        self,
        raw_audio,
        sampling_rate: int | None = None,
        padding: bool | str = True,
        max_length: int | None = None,
        truncation: bool = False,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | TensorType | None = None,
    ) -> BatchFeature:
        """
        Args:
            raw_audio (`np.ndarray`, `torch.Tensor`, `list[float]` or a list of those): one mono waveform of shape
                `(samples,)`, a batch as a list of them (lengths may differ), or a 2-D array `(batch, samples)`.
                Float or integer PCM (int8/uint8/int16/int32, scaled to [-1, 1]).
            sampling_rate (`int`, *optional*): the rate of `raw_audio`; must equal `self.sampling_rate`. Pass it:
                without it a rate mismatch cannot be detected (a warning says so).
            padding (`bool` or `str`, defaults to `True`): `True`/"longest", "max_length" or `False`.
            max_length, truncation, pad_to_multiple_of: as in [`SequenceFeatureExtractor.pad`].
            return_tensors (`str`, *optional*): "pt" or "np"; lists of arrays when None.

        Returns:
            [`BatchFeature`] with `input_values` (float32) and `padding_mask` (int32, 1 = real sample).
        """
        if sampling_rate is None:
            logger.warning(
                f"It is strongly recommended to pass `sampling_rate` to {type(self).__name__}: the model expects "
                f"{self.sampling_rate} Hz and a different rate cannot be detected without it."
            )
        elif int(sampling_rate) != self.sampling_rate:
            raise ValueError(
                f"The audio is sampled at {sampling_rate} Hz but this model expects {self.sampling_rate} Hz. "
                f"Resample it first (the speech-enhancement pipeline resamples for you)."
            )

        items = self._as_items(raw_audio)
        for index, item in enumerate(items):
            what = "raw_audio" if len(items) == 1 else f"raw_audio item {index}"
            if item.ndim != 1:
                raise ValueError(
                    f"{what} must be a mono waveform of shape (samples,), got shape {tuple(item.shape)}; "
                    "enhance multichannel audio channel by channel (the pipeline does)."
                )
            if item.size == 0:
                raise ValueError(f"{what} is empty: a waveform needs at least one sample.")
            check_finite(item, what)

        padded = self.pad(
            BatchFeature({"input_values": items}),
            padding=padding,
            max_length=max_length,
            truncation=truncation,
            pad_to_multiple_of=pad_to_multiple_of,
            return_attention_mask=True,
        )
        features = BatchFeature(
            {"input_values": padded["input_values"], "padding_mask": padded["attention_mask"]},
            tensor_type=return_tensors,
        )
        return features

    @staticmethod
    def _as_items(raw_audio) -> list[np.ndarray]:
        """One waveform or a batch of them -> a list of float32 arrays (shapes unchecked)."""
        if isinstance(raw_audio, (list, tuple)):
            if len(raw_audio) == 0:
                raise ValueError("raw_audio is an empty list: expected a waveform or a list of waveforms.")
            if all(np.isscalar(value) for value in raw_audio):  # a plain list of sample values
                return [pcm_to_float32(np.asarray(raw_audio), "raw_audio")]
            return [pcm_to_float32(item, "raw_audio") for item in raw_audio]
        array = pcm_to_float32(raw_audio, "raw_audio")
        if array.ndim == 2:  # (batch, samples)
            return list(array)
        return [array]


__all__ = ["AdaSlimFeatureExtractor", "check_dry", "check_finite", "pcm_to_float32"]
