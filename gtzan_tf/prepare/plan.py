"""The shard plan: the deterministic list of shards every worker and machine agrees on."""
from __future__ import annotations

from dataclasses import dataclass

from gtzan_tf.config import Config
from gtzan_tf.data.index import SPLITS, DatasetIndex


@dataclass(frozen=True)
class ShardTask:
    """One unit of work: the clips of one shard of one split."""

    split: str
    number: int
    clips: tuple[tuple[str, str, int, str], ...]  # (clip_id, genre, label, path)

    @property
    def name(self) -> str:
        return f"{self.split}-{self.number:05d}"


def plan_shards(index: DatasetIndex, cfg: Config) -> list[ShardTask]:
    tasks = []
    for split in SPLITS:
        clips = [(c.clip_id, c.genre, index.label(c.genre), str(c.path)) for c in index.split(split)]
        size = cfg.data.clips_per_shard
        for number, start in enumerate(range(0, len(clips), size)):
            tasks.append(ShardTask(split, number, tuple(clips[start : start + size])))
    return tasks
