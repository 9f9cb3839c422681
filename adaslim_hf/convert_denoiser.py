"""Convert facebookresearch/denoiser ``Demucs`` weights into an ``AdaSlimModel``.

denoiser's published checkpoints (dns48, dns64, master64, valentini_nc) are plain ``Demucs`` state dicts.
The converted model has the LSTM bottleneck and, at utilization 1.0, computes exactly what denoiser does
(tests assert <= 1e-5). Its smaller factors and its router are untrained until stage-1/stage-2 fine-tuning.

Key map (denoiser -> adaslim):
    encoder.{i}.0 -> encoder.{i}.conv_in      encoder.{i}.2 -> encoder.{i}.conv_out
    decoder.{i}.0 -> decoder.{i}.conv_in      decoder.{i}.2 -> decoder.{i}.conv_tr
    lstm.lstm.*   -> bottleneck.lstm.*        lstm.linear.* -> bottleneck.linear.*
"""

from pathlib import Path

import torch

from .configuration_adaslim import AdaSlimConfig
from .modeling_adaslim import AdaSlimModel

# Hyper-parameters of denoiser's published models (denoiser/pretrained.py).
DENOISER_PRESETS = {
    "dns48": {"hidden": 48, "causal": True},
    "dns64": {"hidden": 64, "causal": True},
    "master64": {"hidden": 64, "causal": True},
    "valentini_nc": {"hidden": 64, "causal": False, "stride": 2, "resample": 2},
}

_ENCODER_NAMES = {"0": "conv_in", "2": "conv_out"}
_DECODER_NAMES = {"0": "conv_in", "2": "conv_tr"}


def config_from_denoiser(**demucs_kwargs) -> AdaSlimConfig:
    """An AdaSlimConfig with denoiser's ``Demucs`` defaults (hidden=48) overridden by ``demucs_kwargs``
    (same names as ``Demucs.__init__``) and DEMUCS' LSTM bottleneck."""
    known = {"chin", "chout", "hidden", "depth", "kernel_size", "stride", "causal", "resample", "growth",
             "max_hidden", "normalize", "glu", "rescale", "floor", "sample_rate"}
    unknown = sorted(set(demucs_kwargs) - known)
    if unknown:
        raise ValueError(f"unknown Demucs argument(s) {unknown}; expected some of {sorted(known)}.")
    settings = {"hidden": 48, "bottleneck": "lstm"}
    settings.update(demucs_kwargs)
    return AdaSlimConfig(**settings)


def convert_state_dict(state_dict: dict, config: AdaSlimConfig) -> dict:
    """Rename denoiser keys to adaslim keys and check every shape against ``config``.

    Raises ValueError naming the key, the expected and the found shape when the weights do not fit.
    """
    expected = AdaSlimModel(config).state_dict()
    converted = {}
    for key, tensor in state_dict.items():
        parts = key.split(".")
        if parts[0] == "encoder" and len(parts) == 4 and parts[2] in _ENCODER_NAMES:
            parts[2] = _ENCODER_NAMES[parts[2]]
        elif parts[0] == "decoder" and len(parts) == 4 and parts[2] in _DECODER_NAMES:
            parts[2] = _DECODER_NAMES[parts[2]]
        elif parts[0] == "lstm" and parts[1] in ("lstm", "linear"):
            parts[0] = "bottleneck"
        else:
            raise ValueError(f"'{key}' is not a key of a denoiser Demucs state dict.")
        new_key = ".".join(parts)
        if new_key not in expected:
            raise ValueError(
                f"'{key}' has no place in a model of this config (depth={config.depth}, causal={config.causal}): "
                "the weights do not fit the config."
            )
        if tuple(tensor.shape) != tuple(expected[new_key].shape):
            raise ValueError(
                f"'{key}' has shape {list(tensor.shape)}, the config expects {list(expected[new_key].shape)} "
                f"(hidden={config.hidden}, depth={config.depth}): the weights do not fit the config."
            )
        converted[new_key] = tensor
    missing = sorted(k for k in expected if k not in converted and not k.startswith("router."))
    if missing:
        raise ValueError(f"the denoiser state dict lacks {missing[:4]}{'...' if len(missing) > 4 else ''}.")
    return converted


def load_denoiser_state_dict(path: str | Path) -> dict:
    """Read a denoiser checkpoint file with ``torch.load(weights_only=True)`` (tensors only, no code runs).
    Accepts a plain state dict or denoiser's serialized package ``{"class", "args", "kwargs", "state"}``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"denoiser checkpoint not found: {path}")
    try:
        package = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle with code, or not a torch file at all
        raise ValueError(f"{path} is not a tensors-only torch checkpoint: {error}") from error
    if isinstance(package, dict) and "state" in package and isinstance(package["state"], dict):
        package = package["state"]
    if not isinstance(package, dict) or not all(isinstance(v, torch.Tensor) for v in package.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors.")
    return package


def convert_denoiser(state_dict: dict, config: AdaSlimConfig | None = None, **demucs_kwargs) -> AdaSlimModel:
    """An AdaSlimModel holding denoiser ``Demucs`` weights (router freshly initialised), in eval mode."""
    config = config if config is not None else config_from_denoiser(**demucs_kwargs)
    if config.bottleneck != "lstm":
        raise ValueError(f"denoiser checkpoints need bottleneck='lstm', the config has {config.bottleneck!r}.")
    model = AdaSlimModel(config)
    model.load_state_dict(convert_state_dict(state_dict, config), strict=False)
    return model.eval()


__all__ = ["DENOISER_PRESETS", "config_from_denoiser", "convert_denoiser", "convert_state_dict",
           "load_denoiser_state_dict"]
