"""Batched musicnn extraction: load the network once, batch 3 s patches across many clips.

Decoding and the spectrogram run in worker threads, ahead of the network, which gets full
batches of patches (the last one excepted) through one compiled tf.function per output set,
two batches at a time.
BLAS runs single-threaded meanwhile: its idle threads would spin on the cores the network uses.
"""
from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from threadpoolctl import threadpool_limits

from gtzan_tf.errors import BadAudioError, UserError
from gtzan_tf.musicnn.frontend import file_patches, musicnn_spectrogram, patches
from gtzan_tf.musicnn.labels import labels_for
from gtzan_tf.musicnn.params import PARAMS
from gtzan_tf.musicnn.weights import load_musicnn

POOLED_FEATURES = ("max_pool", "mean_pool", "penultimate")
# Network calls in flight: a second one fills the cores while the first is in its less parallel ops.
NETWORK_CALLS = 2


class _Rows:
    """FIFO of array rows: push arrays, pop the first n rows as one array."""

    def __init__(self):
        self._parts: collections.deque[np.ndarray] = collections.deque()
        self.size = 0

    def push(self, rows: np.ndarray) -> None:
        self._parts.append(rows)
        self.size += len(rows)

    def pop(self, n: int) -> np.ndarray:
        taken, self.size = [], self.size - n
        while n:
            part = self._parts[0]
            if len(part) <= n:
                taken.append(self._parts.popleft())
                n -= len(part)
            else:
                taken.append(part[:n])
                self._parts[0], n = part[n:], 0
        return taken[0] if len(taken) == 1 else np.concatenate(taken)


def clip_layout(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-patch outputs (P, ...) -> the CLI layout: time-resolved ones (P, T, ...) become (P * T, ...)."""
    return {k: v.reshape(-1, *v.shape[2:]) if v.ndim > 2 else v for k, v in outputs.items()}


class MusicnnExtractor:
    """Pretrained musicnn/vgg network applied to many clips at once, on CPU or GPU.

    `batch_size` patches (3 s each) go through the network per call, taken across clips;
    `workers` threads decode audio and compute spectrograms meanwhile.
    """

    def __init__(self, model_name: str = "MSD_musicnn", batch_size: int = 32, workers: int = 2):
        if batch_size < 1 or workers < 1:
            raise UserError("batch_size and workers must be at least 1")
        self.model_name, self.batch_size, self.workers = model_name, batch_size, workers
        self.model = load_musicnn(model_name)
        self.output_names = tuple(self.model.output)
        self.labels = labels_for(model_name)
        self._networks: dict[tuple[str, ...], Callable] = {}

    # ----------------------------------------------------------------- public API
    def extract(self, waveforms_16k: Iterable[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Every named output per clip, patches concatenated (taggram (P, 50), timbral (P * 187, 408), ...)."""
        return [clip_layout(out) for out in self._per_clip(self._waveform_patches(waveforms_16k), self.output_names)]

    def extract_files(self, paths: Iterable[str | Path]) -> list[dict[str, np.ndarray]]:
        """`extract` from audio files; raises BadAudioError at the first unusable file."""
        results = []
        for _, out in self.iter_extract_files(paths):
            if isinstance(out, Exception):
                raise out
            results.append(out)
        return results

    def iter_extract_files(self, paths: Iterable[str | Path]) -> Iterator[tuple[Path, dict | BadAudioError]]:
        """(path, outputs as in `extract`) per file, in order; a file that cannot be used gives
        (path, BadAudioError) and the others go on."""
        paths = [Path(p) for p in paths]
        clips = self._prefetch(file_patches, paths, BadAudioError)
        for path, out in zip(paths, self._per_clip(clips, self.output_names)):
            yield path, out if isinstance(out, Exception) else clip_layout(out)

    def clip_embeddings(self, waveforms_16k: Iterable[np.ndarray]) -> np.ndarray:
        """(n_clips, 753): `max_pool` averaged over each clip's patches (the reference embedding)."""
        self._require("max_pool")
        clips = self._per_clip(self._waveform_patches(waveforms_16k), ("max_pool",))
        return np.stack([out["max_pool"].mean(axis=0) for out in clips]).astype(np.float32)

    def pooled_embeddings(self, waveforms_16k: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
        """Mean and std over patches of max_pool, mean_pool and penultimate: keys `<feature>_mean`,
        `<feature>_std`, each (n_clips, size)."""
        self._require(*POOLED_FEATURES)
        pooled = collections.defaultdict(list)
        for out in self._per_clip(self._waveform_patches(waveforms_16k), POOLED_FEATURES):
            for name in POOLED_FEATURES:
                pooled[f"{name}_mean"].append(out[name].mean(axis=0))
                pooled[f"{name}_std"].append(out[name].std(axis=0))
        return {k: np.stack(v).astype(np.float32) for k, v in pooled.items()}

    def predict_patches(self, patches: np.ndarray, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """The network alone on precomputed patches (n >= 1, 187, 96), batched as in `extract`:
        {name: (n, ...)}."""
        if len(patches) == 0:
            raise UserError("no patches to predict")
        return next(self._per_clip([patches], tuple(names or self.output_names)))

    def top_tags(self, taggram: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k tags of highest mean likelihood over a clip's patches, with that likelihood."""
        mean = taggram.mean(axis=0)
        return [(self.labels[i], float(mean[i])) for i in np.argsort(-mean)[:k]]

    # ----------------------------------------------------------------- machinery
    def _require(self, *names: str) -> None:
        missing = [n for n in names if n not in self.output_names]
        if missing:
            raise UserError(f"{self.model_name} has no output {', '.join(missing)}; use a *_musicnn model")

    def _network(self, names: tuple[str, ...]) -> Callable:
        """Compiled function: a batch of patches -> the outputs `names` only."""
        if names not in self._networks:
            network = keras.Model(self.model.input, {k: self.model.output[k] for k in names})
            spec = tf.TensorSpec((None, *PARAMS.patch_shape), tf.float32)
            self._networks[names] = tf.function(lambda x: network(x, training=False), input_signature=[spec])
        return self._networks[names]

    def _waveform_patches(self, waveforms: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        return self._prefetch(lambda y: patches(musicnn_spectrogram(y)), waveforms)

    def _prefetch(self, fn: Callable, items: Iterable, passed_on: type[Exception] | None = None) -> Iterator:
        """fn(item) for each item in order, computed ahead in worker threads. Exceptions of type
        `passed_on` are yielded in place of a result; others are raised."""
        items = iter(items)
        with ThreadPoolExecutor(self.workers) as pool:
            lookahead = max(2 * self.workers, self.batch_size // 2)
            ahead = collections.deque(pool.submit(fn, item) for item in itertools.islice(items, lookahead))
            while ahead:
                future = ahead.popleft()
                for item in itertools.islice(items, 1):
                    ahead.append(pool.submit(fn, item))
                error = future.exception()
                if error is None:
                    yield future.result()
                elif passed_on is not None and isinstance(error, passed_on):
                    yield error
                else:
                    raise error

    def _per_clip(self, clips: Iterable[np.ndarray | Exception], names: tuple[str, ...]) -> Iterator:
        """Per clip, its patches (P, 187, 96) or an exception -> {name: (P, ...)} or that exception,
        in order. The network runs on full batches taken across clips, two calls at a time."""
        network = self._network(names)
        inputs, outputs = _Rows(), {name: _Rows() for name in names}
        pending: collections.deque[int | Exception] = collections.deque()  # per clip: patch count or error
        running: collections.deque[Future] = collections.deque()  # network calls, in batch order

        def run(batch: np.ndarray) -> dict[str, np.ndarray]:
            return {name: value.numpy() for name, value in network(batch).items()}

        def finished(in_flight: int) -> Iterator:
            """Wait until at most `in_flight` calls run, then hand back the clips that are done."""
            while running and (len(running) > in_flight or running[0].done()):
                for name, value in running.popleft().result().items():
                    outputs[name].push(value)
            while pending and (isinstance(pending[0], Exception) or pending[0] <= outputs[names[0]].size):
                clip = pending.popleft()
                yield clip if isinstance(clip, Exception) else {k: rows.pop(clip) for k, rows in outputs.items()}

        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(NETWORK_CALLS) as pool:
            for clip in clips:
                if isinstance(clip, Exception):
                    pending.append(clip)
                else:
                    pending.append(len(clip))
                    inputs.push(clip)
                while inputs.size >= self.batch_size:
                    running.append(pool.submit(run, inputs.pop(self.batch_size)))
                    yield from finished(NETWORK_CALLS - 1)
                yield from finished(NETWORK_CALLS)
            while inputs.size:
                running.append(pool.submit(run, inputs.pop(min(inputs.size, self.batch_size))))
            yield from finished(0)
