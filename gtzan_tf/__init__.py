"""gtzan-tf: music genre classification with TensorFlow / Keras 3."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
