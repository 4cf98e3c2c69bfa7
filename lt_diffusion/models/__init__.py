"""Networks: the ADM-style UNet, the ADM noisy classifier, named configurations."""
from .classifier import ClassifierConfig, EncoderUNetModel
from .presets import ABLATION_DESCRIPTIONS, ABLATION_VARIANTS, MODEL_PRESETS, ablation_configs, get_model_config
from .unet import UNetConfig, UNetModel, compile_model, count_parameters

__all__ = [
    "UNetConfig",
    "UNetModel",
    "ClassifierConfig",
    "EncoderUNetModel",
    "MODEL_PRESETS",
    "ABLATION_VARIANTS",
    "ABLATION_DESCRIPTIONS",
    "ablation_configs",
    "get_model_config",
    "compile_model",
    "count_parameters",
]
