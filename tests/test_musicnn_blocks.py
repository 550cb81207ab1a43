"""musicnn's fused front-end blocks against the plain Conv2D -> ReLU -> BatchNorm -> max over mels."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gtzan_tf.musicnn.model import BN_EPSILON, DEAD_FILTER_TOLERANCE, TemporalBlock, TimbralBlock

FILTERS, TIME, MELS = 8, 34, 12
DEAD = [1, 2, 5, 6]


def reference(block, x):
    """What the TF1 graph computes: 'same' in time, 'valid' in mels, then ReLU, BN, max over mels."""
    image = x if x.ndim == 4 else x[..., tf.newaxis]
    frames = block.kernel_size[0]
    padded = tf.pad(image, [[0, 0], [(frames - 1) // 2, frames - 1 - (frames - 1) // 2], [0, 0], [0, 0]])
    z = tf.nn.relu(tf.nn.conv2d(padded, block.kernel, 1, "VALID") + block.bias)
    bn = (z - block.moving_mean) * tf.math.rsqrt(block.moving_variance + BN_EPSILON) * block.gamma + block.beta
    return tf.reduce_max(bn, axis=2)


def make_block(kind, dead_scale=1e-30, seed=0):
    """A block with random weights, negative BN scales on some filters and the DEAD filters' kernels
    multiplied by dead_scale."""
    rng = np.random.default_rng(seed)
    if kind == "timbral":
        block, shape = TimbralBlock(FILTERS, (5, 4)), (2, TIME, MELS, 1)
    else:
        block, shape = TemporalBlock(FILTERS, (16, 1), block=17), (2, TIME, MELS)
    block.build(shape)
    kernel = rng.standard_normal(block.kernel.shape).astype(np.float32)
    kernel[..., DEAD] *= dead_scale
    block.kernel.assign(kernel)
    block.bias.assign(rng.standard_normal(FILTERS).astype(np.float32))
    block.gamma.assign((rng.uniform(0.5, 2, FILTERS) * np.where(np.arange(FILTERS) % 3 == 0, -1, 1)).astype(np.float32))
    block.beta.assign(rng.standard_normal(FILTERS).astype(np.float32))
    block.moving_mean.assign(rng.standard_normal(FILTERS).astype(np.float32))
    block.moving_variance.assign(rng.uniform(0.5, 2, FILTERS).astype(np.float32))
    return block, rng.uniform(-1, 3, shape).astype(np.float32)


def live_filters_convolved(block, x):
    """How many filters `block.convolve` was given for input x."""
    seen = []
    convolve = block.convolve

    def spy(image, kernel):
        seen.append(int(tf.shape(kernel)[-1]))
        return convolve(image, kernel)

    block.convolve = spy
    try:
        block(x)
    finally:
        del block.convolve  # back to the class's method
    return seen[0]


@pytest.mark.parametrize("kind", ["timbral", "temporal"])
def test_block_equals_conv_relu_bn_max(kind):
    block, x = make_block(kind, dead_scale=1.0)
    np.testing.assert_allclose(block(x), reference(block, x), rtol=1e-5, atol=1e-5)
    assert live_filters_convolved(block, x) == FILTERS


@pytest.mark.parametrize("kind", ["timbral", "temporal"])
def test_dead_filters_are_not_convolved_and_stay_within_tolerance(kind):
    block, x = make_block(kind)
    assert live_filters_convolved(block, x) == FILTERS - len(DEAD)
    out, expected = block(x).numpy(), reference(block, x).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # A dead filter's output is its bias-only value, equal to the full computation within the bound.
    assert np.abs(out[..., DEAD] - expected[..., DEAD]).max() <= DEAD_FILTER_TOLERANCE + 1e-6


@pytest.mark.parametrize("kind", ["timbral", "temporal"])
def test_small_filters_are_computed_when_the_input_is_large_enough_to_matter(kind):
    block, x = make_block(kind, dead_scale=1e-10)
    assert live_filters_convolved(block, x) == FILTERS - len(DEAD)
    loud = x * 1e4  # the 1e-10 kernels can now move their outputs by about 1e-4: computed again
    assert live_filters_convolved(block, loud) == FILTERS
    np.testing.assert_allclose(block(loud), reference(block, loud), rtol=1e-5, atol=1e-5 * np.abs(loud).max())


@pytest.mark.parametrize("kind", ["timbral", "temporal"])
def test_all_filters_dead(kind):
    block, x = make_block(kind)
    block.kernel.assign(np.zeros(block.kernel.shape, np.float32))
    out = block(x)
    assert out.shape == (2, TIME, FILTERS) and live_filters_convolved(block, x) == 1  # never none
    np.testing.assert_allclose(out, reference(block, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["timbral", "temporal"])
def test_block_in_a_tf_function_with_unknown_batch(kind):
    block, x = make_block(kind)
    spec = tf.TensorSpec([None, *x.shape[1:]], tf.float32)
    compiled = tf.function(block.__call__, input_signature=[spec])
    np.testing.assert_allclose(compiled(x), block(x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(compiled(x[:1]), block(x[:1]), rtol=1e-6, atol=1e-6)
