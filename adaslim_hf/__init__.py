"""adaslim_hf: adaptive-slimming DEMUCS speech enhancement as a native Hugging Face transformers model.

Importing the package registers the model with transformers' Auto classes, the feature extractor with
AutoFeatureExtractor and the "speech-enhancement" pipeline task (alias "audio-to-audio").

One exception: when the importer is the ``adaslim`` console script, nothing heavy is imported here, so that
``adaslim --help`` answers without loading torch (about 4 s and 900 MB). The command then calls ``register()``
once it knows which subcommand runs, and the names below resolve on first use (``__getattr__``).
"""

import os
import sys

__version__ = "0.1.0"

__all__ = ["PACKAGED_MODEL", "AdaSlimConfig", "AdaSlimFeatureExtractor", "AdaSlimModel", "AdaSlimOutput",
           "AdaSlimPreTrainedModel", "SpeechEnhancementPipeline", "__version__", "register"]


def register() -> None:
    """Import the model, feature extractor and pipeline, and register them with transformers (once)."""
    if "AdaSlimModel" in globals():
        return
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

    from .configuration_adaslim import AdaSlimConfig
    from .feature_extraction_adaslim import AdaSlimFeatureExtractor
    from .modeling_adaslim import AdaSlimModel, AdaSlimOutput, AdaSlimPreTrainedModel
    from .pipeline_adaslim import PACKAGED_MODEL, SpeechEnhancementPipeline, register_pipeline

    AutoConfig.register(AdaSlimConfig.model_type, AdaSlimConfig, exist_ok=True)
    AutoModel.register(AdaSlimConfig, AdaSlimModel, exist_ok=True)
    AdaSlimConfig.register_for_auto_class()
    AdaSlimModel.register_for_auto_class("AutoModel")
    AutoFeatureExtractor.register(AdaSlimConfig, AdaSlimFeatureExtractor, exist_ok=True)
    AdaSlimFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
    register_pipeline()
    globals().update(AdaSlimConfig=AdaSlimConfig, AdaSlimFeatureExtractor=AdaSlimFeatureExtractor,
                     AdaSlimModel=AdaSlimModel, AdaSlimOutput=AdaSlimOutput,
                     AdaSlimPreTrainedModel=AdaSlimPreTrainedModel, SpeechEnhancementPipeline=SpeechEnhancementPipeline,
                     PACKAGED_MODEL=PACKAGED_MODEL)  # the trained default model's folder, shipped with the package


def _imported_by_the_command() -> bool:
    """Whether the running program is the ``adaslim`` console script (its ``__main__`` imports adaslim_hf.cli)."""
    main = sys.modules.get("__main__")
    return os.path.basename(getattr(main, "__file__", None) or "") == "adaslim"


def __getattr__(name: str):
    """The public names, for a process that deferred ``register()`` (the ``adaslim`` command)."""
    if name in __all__:
        register()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if not _imported_by_the_command():
    register()
