"""An ensemble of trained classifiers as one Keras model: the mean of the members' probabilities."""
from __future__ import annotations

import keras

from gtzan_tf.models.blocks import OUTPUT_NAME


def ensemble_model(members: list[keras.Model], name: str = "ensemble") -> keras.Model:
    """One model with the members' named inputs whose `genre` output is the mean of their outputs.

    The members must read the same inputs (the folds of one cross-validated run do).
    """
    names = [tuple(sorted(m.input)) if isinstance(m.input, dict) else None for m in members]
    if None in names or len(set(names)) != 1:
        raise ValueError("ensemble members must share one set of named inputs")
    first = members[0]
    inputs = {key: keras.Input(tensor.shape[1:], name=key) for key, tensor in first.input.items()}
    # Each member is re-wrapped under its own name: nested models need distinct names.
    renamed = [keras.Model(m.input, m.output, name=f"member_{k}") for k, m in enumerate(members)]
    outputs = [member(inputs) for member in renamed]
    mean = outputs[0] if len(outputs) == 1 else keras.layers.Average(name=OUTPUT_NAME, dtype="float32")(outputs)
    return keras.Model(inputs, mean, name=name)
