"""musicnn's clip embedding as a Keras layer: waveform -> 16 kHz -> 3 s mel patches -> max_pool
features -> mean over patches (the reference recipe's 753-vector)."""
from __future__ import annotations

import keras
import tensorflow as tf

from gtzan_tf.features.layers import Resample
from gtzan_tf.musicnn.frontend import MusicnnPatches
from gtzan_tf.musicnn.params import PARAMS
from gtzan_tf.musicnn.weights import load_musicnn


class MusicnnEmbedding(keras.layers.Layer):
    """One waveform (samples,) at `sample_rate` -> (753,) clip embedding of `model_name`.

    musicnn was trained on 16 kHz audio: other rates are resampled in the graph first (FFT
    resampling, as librosa's res_type="fft"), so prepare and serving compute the same thing.
    """

    def __init__(self, model_name: str, sample_rate: int = PARAMS.sample_rate, **kwargs):
        super().__init__(**kwargs)
        self.model_name, self.sample_rate = model_name, sample_rate
        self.resample = Resample(sample_rate, PARAMS.sample_rate, name="resample_16k")
        self.patches = MusicnnPatches(name="patches")
        musicnn = load_musicnn(model_name)
        # Only the output the embedding needs: the taggram head is not run.
        self.network = keras.Model(musicnn.input, musicnn.output["max_pool"], name=f"{musicnn.name}_max_pool")

    def call(self, waveform):
        patches = self.patches(self.resample(waveform[tf.newaxis]))[0]
        return tf.reduce_mean(_in_two_halves(self.network, patches), axis=0)


def _in_two_halves(network: keras.Model, patches):
    """network(patches) as two independent calls that TensorFlow runs concurrently (MTT musicnn on
    2 CPU cores: about 20% faster than one call). The halves are patches[:ceil(n/2)] and
    patches[floor(n/2):], so neither is empty (a single patch goes through both), and the row they
    share for an odd n is dropped from the second. No tf.cond: a cond would trace the network three
    times, which cost prepare 2-3 s per process and per musicnn model."""
    n = tf.shape(patches)[0]
    first, second = (n + 1) // 2, n // 2
    tail = network(patches[second:], training=False)
    return tf.concat([network(patches[:first], training=False), tail[first - second:]], 0)
