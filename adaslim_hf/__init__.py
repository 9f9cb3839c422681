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
