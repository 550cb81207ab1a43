"""Clip embeddings from the musicnn extractors, loaded once per process."""
from __future__ import annotations

import numpy as np

from gtzan_tf.config import EMBEDDING_INPUTS
from gtzan_tf.musicnn.params import PARAMS as MUSICNN

_EXTRACTORS: dict = {}


def load_embedders(models: tuple[str, ...]) -> dict:
    """musicnn extractors by model input name, loaded once per process."""
    for model in models:
        if model not in _EXTRACTORS:
            from gtzan_tf.musicnn.extractor import MusicnnExtractor

            _EXTRACTORS[model] = MusicnnExtractor(model)
    return {EMBEDDING_INPUTS[m]: _EXTRACTORS[m] for m in models}


def embed_clips(embedders: dict, waves: list[np.ndarray], rate: int) -> dict[str, np.ndarray]:
    """Per-clip musicnn embeddings (n_clips, 753) of waveforms at `rate`, by input name."""
    import librosa

    if embedders and rate != MUSICNN.sample_rate:
        waves = [librosa.resample(w, orig_sr=rate, target_sr=MUSICNN.sample_rate) for w in waves]
    return {name: extractor.clip_embeddings(waves) for name, extractor in embedders.items()}
