"""The constants of musicnn's input and its embedding: one frozen dataclass (defined with the rest of
the configuration, in gtzan_tf.config), used everywhere."""
from gtzan_tf.config import MUSICNN as PARAMS, MusicnnParams  # noqa: F401 (re-exported)
