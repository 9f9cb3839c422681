"""adaslim_hf: adaptive-slimming DEMUCS speech enhancement as a native Hugging Face transformers model.

Importing the package registers the model with transformers' Auto classes.
"""

from transformers import AutoConfig, AutoModel

from .configuration_adaslim import AdaSlimConfig
from .modeling_adaslim import AdaSlimModel, AdaSlimOutput, AdaSlimPreTrainedModel

__version__ = "0.1.0"

AutoConfig.register(AdaSlimConfig.model_type, AdaSlimConfig, exist_ok=True)
AutoModel.register(AdaSlimConfig, AdaSlimModel, exist_ok=True)
AdaSlimConfig.register_for_auto_class()
AdaSlimModel.register_for_auto_class("AutoModel")

__all__ = ["AdaSlimConfig", "AdaSlimModel", "AdaSlimOutput", "AdaSlimPreTrainedModel", "__version__"]

# Feature extractor and the "speech-enhancement" pipeline (alias "audio-to-audio"), registered with transformers.
from transformers import AutoFeatureExtractor

from .feature_extraction_adaslim import AdaSlimFeatureExtractor
from .pipeline_adaslim import SpeechEnhancementPipeline, register_pipeline

AutoFeatureExtractor.register(AdaSlimConfig, AdaSlimFeatureExtractor, exist_ok=True)
AdaSlimFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
register_pipeline()

__all__ += ["AdaSlimFeatureExtractor", "SpeechEnhancementPipeline"]
