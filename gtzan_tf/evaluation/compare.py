"""Paired comparison of two classifiers on the same clips: is one ahead beyond noise?

On a few dozen clips, two models' accuracies move by several points from one seed or fold split
to the next, and by one clip = 1/N when the clips are resampled. The comparison therefore pairs the
two models clip by clip: for every clip, the share of runs (seeds, each its own fold split) that
got it right, for the model and for the baseline; their difference, averaged over the clips, is
the accuracy difference, and a bootstrap over the clips (`scipy.stats.bootstrap`, percentile, the
clips drawn with replacement, both models keeping their pairing) gives its confidence interval. The
interval covers the clip-sampling noise directly and the seed noise through the per-clip shares.

With few discordant clips the bootstrap is optimistic (three clips that only the model gets right
put a 95% interval above zero), so a model is called ahead (or behind) only when, besides the
interval, an exact sign test on the discordant clips (`scipy.stats.binomtest`: the clips the model
gets right more often than the baseline against those it gets right less often) agrees at the same
level (three clips out of three: p = 0.25, not enough).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, bootstrap

AHEAD, TIED, BEHIND = "ahead beyond noise", "not distinguishable", "behind"


@dataclass(frozen=True)
class PairedComparison:
    """Model minus baseline accuracy on the same clips, with its bootstrap interval, in [-1, 1]."""

    difference: float
    low: float
    high: float
    clips: int
    wins: int  # clips the model gets right more often than the baseline
    losses: int  # and less often
    p_value: float  # exact two-sided sign test of wins against losses
    confidence: float

    @property
    def verdict(self) -> str:
        """AHEAD (BEHIND) when the whole interval is above (below) 0 and the sign test agrees, else TIED."""
        significant = self.p_value < 1 - self.confidence
        return AHEAD if significant and self.low > 0 else BEHIND if significant and self.high < 0 else TIED

    def __str__(self) -> str:
        return (f"{100 * self.difference:+.1f} [{100 * self.low:+.1f}, {100 * self.high:+.1f}] pts, "
                f"{self.wins}:{self.losses} clips, p = {self.p_value:.2g}: {self.verdict}")


def paired_comparison(model_correct, baseline_correct, confidence: float = 0.95, n_resamples: int = 10_000,
                      seed: int = 0) -> PairedComparison:
    """Compare per-clip correctness arrays of shape (runs, clips) (or (clips,)), the same clips in
    the same order in both; returns the mean accuracy difference and its paired bootstrap interval."""
    model, baseline = np.atleast_2d(model_correct).astype(float), np.atleast_2d(baseline_correct).astype(float)
    if model.shape[1] != baseline.shape[1]:
        raise ValueError(f"the two models were scored on different clips ({model.shape[1]} vs {baseline.shape[1]})")
    per_clip = model.mean(axis=0) - baseline.mean(axis=0)
    if np.all(per_clip == per_clip[0]):  # no spread to resample (e.g. identical predictions)
        low = high = float(per_clip[0])
    else:
        interval = bootstrap((per_clip,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                             method="percentile", rng=np.random.default_rng(seed)).confidence_interval
        low, high = float(interval.low), float(interval.high)
    wins, losses = int(np.sum(per_clip > 0)), int(np.sum(per_clip < 0))
    p_value = binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
    return PairedComparison(float(per_clip.mean()), low, high, len(per_clip), wins, losses, float(p_value), confidence)
