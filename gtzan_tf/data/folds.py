"""Stratified K-fold assignment of training clips for cross-validation.

Folds are made of source clips: an augmented version (`<id>.augN`, same source_id) always sits in
its source clip's fold. Every genre is dealt round-robin over the folds in a seeded order, carrying
the dealing position from one genre to the next, so fold sizes differ by at most one clip and every
genre's count by at most one per fold. A genre with fewer clips than folds fills as many folds as
it has clips (one each); the other folds have none of it to validate on, but train on all of it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gtzan_tf.errors import UserError


def assign_folds(genre_of: Mapping[str, str], k: int, seed: int = 0) -> dict[str, int]:
    """source clip id -> fold in [0, k), stratified by genre (see the module docstring)."""
    if k < 2:
        raise UserError(f"--folds needs at least 2 folds, got {k}")
    if len(genre_of) < k:
        raise UserError(f"--folds {k} needs at least {k} training clips; there are {len(genre_of)}")
    rng = np.random.default_rng(seed)
    folds: dict[str, int] = {}
    position = 0
    for genre in sorted(set(genre_of.values())):
        clips = sorted(clip for clip, g in genre_of.items() if g == genre)
        for clip in rng.permutation(clips):
            folds[str(clip)] = position % k
            position += 1
    return folds


@dataclass(frozen=True)
class Fold:
    """One fold of a cross-validation: its number and the source clips it trains and validates on."""

    index: int
    train: tuple[str, ...]
    valid: tuple[str, ...]


def make_folds(folds: Mapping[str, int], k: int) -> list[Fold]:
    """The k folds of an `assign_folds` assignment, clip ids sorted."""
    return [
        Fold(i, tuple(sorted(c for c, f in folds.items() if f != i)), tuple(sorted(c for c, f in folds.items() if f == i)))
        for i in range(k)
    ]
