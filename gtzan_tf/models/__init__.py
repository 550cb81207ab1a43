"""Model registry: every architecture by name, built with the Keras 3 functional API."""
from gtzan_tf.models.fusion import FUSIONS, Fusion
from gtzan_tf.models.registry import MODEL_NAMES, ModelSpec, build_model, get_spec, model_inputs, set_backbone_trainable

__all__ = [
    "FUSIONS",
    "MODEL_NAMES",
    "Fusion",
    "ModelSpec",
    "build_model",
    "get_spec",
    "model_inputs",
    "set_backbone_trainable",
]
