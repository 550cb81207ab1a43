"""gtzan-tf: music genre classification with TensorFlow / Keras 3."""
import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow leaves its oneDNN kernels off on CPUs without AVX-512 (e.g. AVX2 machines); with them
# the musicnn and ResNet convolutions take about 30% less CPU. Only effective before TF is imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up chatter (CUDA probing on CPU machines) hidden.

    Those lines are printed before TF_CPP_MIN_LOG_LEVEL applies; set GTZAN_TF_SHOW_TF_LOGS=1 to see them.
    """
    if "tensorflow" in sys.modules or os.environ.get("GTZAN_TF_SHOW_TF_LOGS"):
        return
    with native_stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()


@contextlib.contextmanager
def native_stderr_silenced():
    """Hide what C libraries write to file descriptor 2 meanwhile (TensorFlow's start-up lines,
    libmpg123's notes on a corrupt mp3); Python's own sys.stderr is flushed first."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
