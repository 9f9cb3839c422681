"""Waveform values as callers hand them in: integer PCM to float32, the finiteness check, the dry mix
(``check_dry`` and ``mix_dry``).

Imports only numpy: the feature extractor, ``audio_io``, the pipeline and the streamer all build on it, and it
travels to the Hub with them.
"""

import numpy as np

# Full-scale value of each integer PCM type: int16 -32768..32767 maps to [-1, 1).
_PCM_SCALE = {np.dtype(np.int8): 2.0**7, np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}


def pcm_to_float32(samples, what: str = "audio") -> np.ndarray:
    """Any real numeric array -> float32 in the usual [-1, 1] full scale.

    Floats are cast (float64/float16 -> float32, values unchanged). Integer PCM is scaled by its full scale:
    int8 / 2**7, int16 / 2**15, int32 / 2**31, uint8 (offset binary, WAV's 8-bit format) (x - 128) / 128.
    Other dtypes (int64, unsigned wider than 8 bits, bool, complex, object) raise a ValueError: their scale
    is not defined by any audio format, so a silent guess would be wrong.
    """
    if hasattr(samples, "detach") and hasattr(samples, "cpu"):  # a torch tensor (any device, any dtype)
        samples = samples.detach().cpu()
        if str(samples.dtype) == "torch.bfloat16":
            samples = samples.float()
        samples = samples.numpy()
    array = np.asarray(samples)
    if array.dtype.kind == "f":
        return array.astype(np.float32, copy=False)
    if array.dtype in _PCM_SCALE:
        return (array.astype(np.float32) / np.float32(_PCM_SCALE[array.dtype])).astype(np.float32, copy=False)
    if array.dtype == np.uint8:
        return (array.astype(np.float32) - 128.0) / 128.0
    raise ValueError(
        f"{what} must be a real-valued waveform: float, or integer PCM (int8, uint8, int16, int32); "
        f"got dtype {array.dtype}."
    )


def check_finite(samples: np.ndarray, what: str = "audio") -> None:
    """ValueError naming where the first NaN/Inf sample is, if there is one."""
    bad = ~np.isfinite(samples)
    if bad.any():
        position = np.unravel_index(int(np.argmax(bad)), samples.shape)
        raise ValueError(
            f"{what} contains {int(bad.sum())} NaN or Inf sample(s) (first at index {tuple(int(i) for i in position)}); "
            "a waveform must be finite."
        )


def check_dry(dry) -> float:
    """``dry`` as a float, or a ValueError unless it is a number in [0, 1] (the share of the input mixed back).
    One check for the pipeline, the streamer and the evaluation."""
    number = isinstance(dry, (int, float, np.integer, np.floating)) and not isinstance(dry, bool)
    if not (number and 0.0 <= float(dry) <= 1.0):  # NaN fails the comparison too
        raise ValueError(f"dry must be a number in [0, 1] (the share of the input mixed back), got {dry!r}.")
    return float(dry)


def mix_dry(enhanced, original, dry: float):
    """The strength knob: ``dry * original + (1 - dry) * enhanced`` (float32 numpy arrays or torch tensors of
    one shape; the scalars are applied in float32), or ``enhanced`` itself when ``dry`` is 0. ``dry`` comes
    checked (``check_dry``). The pipeline, the streamer and the evaluation all mix through it."""
    if not dry:
        return enhanced
    return dry * original + (1.0 - dry) * enhanced


__all__ = ["check_dry", "check_finite", "mix_dry", "pcm_to_float32"]
