"""The one feature graph from a clip's waveform to the classifier's named inputs.

    ClipFrontend(cfg)    waveform (samples,) at cfg.audio.sample_rate ->
                         {"segments": (n, frames, bins), "<embedding input>": (753,), ...}
    classifier_inputs    frontend output + the training set's statistics -> one row per segment

prepare runs ClipFrontend to write the shards, the tf.data pipeline turns the stored outputs into
model inputs with `classifier_inputs`, and the serving SavedModel is ClipFrontend ->
classifier_inputs -> classifier: training and serving features come from the same code.
"""
from __future__ import annotations

import functools

import keras
import tensorflow as tf

from gtzan_tf.config import EMBEDDING_INPUTS, RAW_KINDS, SEGMENTS, Config
from gtzan_tf.features.layers import (Chroma, MelSpectrogram, Mfcc, PowerToDb, RepeatPad, Resample, Segments,
                                      Standardize)
from gtzan_tf.musicnn.embedding import MusicnnEmbedding
from gtzan_tf.musicnn.frontend import MusicnnPatches
from gtzan_tf.musicnn.params import PARAMS


def feature_layers(cfg: Config) -> list[keras.layers.Layer]:
    """Waveforms (batch, samples) -> features (batch, frames, bins) of the kind `cfg.features.kind`
    (musicnn: patches (batch, P, 187, 96), made as MusicnnEmbedding makes them)."""
    f, rate = cfg.features, cfg.audio.sample_rate
    if f.kind == "musicnn":
        return [Resample(rate, PARAMS.sample_rate, name="resample_16k"), MusicnnPatches(name="musicnn_patches")]
    if f.kind == "chroma":
        return [Chroma(rate, f.n_fft, f.hop_length, f.n_chroma, name="chroma")]
    layers = [MelSpectrogram(rate, f.n_fft, f.hop_length, f.n_mels, name="mel"), PowerToDb(top_db=f.top_db, name="db")]
    if f.kind == "mfcc":
        layers.append(Mfcc(f.n_mfcc, name="mfcc"))
    return layers


class ClipFrontend(keras.layers.Layer):
    """One clip: repeat-pad -> features -> fixed-length segments, and the musicnn clip embeddings
    of `cfg.data.embeddings` (each from its own 16 kHz mel patches of the padded waveform)."""

    def __init__(self, cfg: Config, embeddings: tuple[str, ...] | None = None, **kwargs):
        super().__init__(name="frontend", **kwargs)
        f = cfg.features
        self.pad = RepeatPad(f.segment_samples, name="repeat_pad")
        self.features = feature_layers(cfg)
        self.segments = Segments(f.segment_frames, f.max_segments, name="segments")
        self.patched, self.max_segments = f.kind == "musicnn", f.max_segments
        models = cfg.data.embeddings if embeddings is None else embeddings
        self.embedders = {
            EMBEDDING_INPUTS[model]: MusicnnEmbedding(model, cfg.audio.sample_rate, name=EMBEDDING_INPUTS[model])
            for model in models
        }

    def build(self, input_shape):
        """Nothing of its own: each sub-layer builds on its first call (without this, Keras warns
        that the musicnn patch layers are unbuilt when the serving model is traced)."""

    def call(self, waveform):
        padded = self.pad(waveform[tf.newaxis])
        frames = padded
        for layer in self.features:
            frames = layer(frames)
        segments = (frames[:, : self.max_segments] if self.patched else self.segments(frames))[0]
        clip = {SEGMENTS: segments}
        for name, embedder in self.embedders.items():
            clip[name] = embedder(padded[0])
        return clip


@functools.lru_cache(maxsize=2)
def frontend_function(cfg: Config, embeddings: tuple[str, ...] | None = None):
    """ClipFrontend(cfg) as one traced function of a waveform of any length (no retracing), built
    once per process and config."""
    frontend = ClipFrontend(cfg, embeddings)
    return tf.function(frontend.call, input_signature=[tf.TensorSpec([None], tf.float32, name="waveform")])


def classifier_inputs(clip: dict, segment_input: str, names: tuple[str, ...], standardize: Standardize) -> dict:
    """The classifier's inputs for one clip, one row per segment: the segments under `segment_input`
    (the feature kind), standardised unless the kind is raw (musicnn), every clip embedding
    repeated on each segment."""
    segments = clip[SEGMENTS]
    if segment_input not in RAW_KINDS:
        segments = standardize(segments)
    n = tf.shape(segments)[0]
    return {
        name: segments if name == segment_input else tf.tile(clip[name][tf.newaxis], [n, 1])
        for name in names
    }
