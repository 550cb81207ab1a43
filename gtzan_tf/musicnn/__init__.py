"""Native Keras 3 port of the pretrained musicnn taggers (Pons & Serra, musicnn 0.1.0).

    load_musicnn(name)            Keras model: (batch, 187, 96) log-mel patches -> dict of outputs
    MusicnnExtractor(name)        batched extraction from waveforms or files; clip embeddings
    musicnn_spectrogram, patches  the original's input, in numpy (librosa)
    MusicnnPatches, musicnn_waveform_to_patches   the same in-graph (TensorFlow), any length
"""
import os

# TensorFlow leaves its oneDNN kernels off on CPUs without AVX-512 (e.g. AMD, AVX2): with them,
# musicnn takes about 30% less CPU. Effective only if set before TensorFlow is first imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from gtzan_tf.musicnn.extractor import MusicnnExtractor  # noqa: E402
from gtzan_tf.musicnn.frontend import (  # noqa: E402
    MusicnnPatches,
    load_audio,
    musicnn_spectrogram,
    musicnn_waveform_to_patches,
    patches,
)
from gtzan_tf.musicnn.labels import MSD_LABELS, MTT_LABELS, labels_for  # noqa: E402
from gtzan_tf.musicnn.model import MODEL_NAMES, MODEL_OUTPUTS  # noqa: E402
from gtzan_tf.musicnn.params import PARAMS, MusicnnParams  # noqa: E402
from gtzan_tf.musicnn.weights import load_musicnn  # noqa: E402

__all__ = [
    "MODEL_NAMES", "MODEL_OUTPUTS", "MSD_LABELS", "MTT_LABELS", "PARAMS", "MusicnnExtractor", "MusicnnParams",
    "MusicnnPatches", "labels_for", "load_audio", "load_musicnn", "musicnn_spectrogram",
    "musicnn_waveform_to_patches", "patches",
]
