"""Precompute features: audio -> (augmented) segments + musicnn embeddings -> sharded TFRecords.

    python -m gtzan_tf.prepare --data DIR --out FEATURES_DIR [--workers N] [--skip-bad] [--set section.key=value]
                               [--runner local|ray [--ray-address ADDRESS] [--ray-init K=V] [--ray-actor K=V]]

Every shard is written to a temporary file and renamed when complete, then a small JSON sidecar
records its checksum and statistics; a shard without a valid sidecar is redone. So an interrupted
run can be re-run, a finished one does no work, and `manifest.json` (written last, when every
shard is done) lists only complete shards. `--runner local` builds the shards in processes of this
machine, `--runner ray` in Ray actors, on this machine or across a Ray cluster (same bytes either way).

Modules: plan (the shard plan), worker (one shard), run (the driver), ray_runner (the Ray runner),
__main__ (the command line); the manifest's schema lives in gtzan_tf.data.manifest.
"""
from gtzan_tf.data.manifest import MANIFEST
from gtzan_tf.prepare.run import default_features_dir, ensure_prepared, prepare

__all__ = ["MANIFEST", "default_features_dir", "ensure_prepared", "prepare"]
