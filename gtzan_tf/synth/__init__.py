"""Synthetic music in the GTZAN layout: the demo and test dataset the project makes itself."""
from gtzan_tf.synth.dataset import clip_seed, generate_dataset
from gtzan_tf.synth.render import synthesize_clip

__all__ = ["clip_seed", "generate_dataset", "synthesize_clip"]
