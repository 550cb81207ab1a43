"""Native Keras 3 port of the pretrained musicnn taggers (Pons & Serra, musicnn 0.1.0).

    load_musicnn(name)            Keras model: (batch, 187, 96) log-mel patches -> dict of outputs
    MusicnnExtractor(name)        batched extraction from waveforms or files; clip embeddings
    musicnn_spectrogram, patches  the original's input, in numpy (librosa)
    MusicnnPatches                the same in-graph (TensorFlow), any length
    MusicnnEmbedding              waveform -> clip embedding, in-graph (the frontend's musicnn branch)

Names are imported on first use, so `gtzan_tf.musicnn.params` can be read without TensorFlow.
"""
import importlib

_EXPORTS = {
    "MusicnnEmbedding": "embedding",
    "MusicnnExtractor": "extractor",
    "MusicnnPatches": "frontend",
    "load_audio": "frontend",
    "musicnn_spectrogram": "frontend",
    "patches": "frontend",
    "MSD_LABELS": "labels",
    "MTT_LABELS": "labels",
    "labels_for": "labels",
    "MODEL_NAMES": "model",
    "MODEL_OUTPUTS": "model",
    "PARAMS": "params",
    "MusicnnParams": "params",
    "load_musicnn": "weights",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
