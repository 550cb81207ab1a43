"""Stratified K-fold cross-validation of fine-tuning recipes on a small real set, one seed:

    python benchmarks/dev_cv.py DEV_DIR OUT_DIR K MODEL[,MODEL...]      (MODEL: a RUNS key or logreg)

DEV_DIR is a GTZAN-layout folder with split/all.txt (e.g. /tmp/gtzan-dev, ../shared/realdata).
Every fold is a data folder OUT_DIR/foldK (wav/ linked; train, valid: one clip of every genre with
3+ training clips, test: the fold) trained by the project's trainer with the recipes in RUNS; the
baseline "logreg" is a standardised logistic regression on the MSD embeddings of the fold's
train+valid clips (run it after a logmel model: it reads that model's features). Results go to
OUT_DIR/results.json and a markdown row per model: test clip accuracy, mean ± std over the folds.
A stand-in for benchmarks/accuracy.py (issue 12) until that lands: it runs models whose feature
kinds differ (logmel, musicnn), which needs a features folder per kind.
"""
import json, os, sys, time, random  # noqa: E401
from pathlib import Path
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
from gtzan_tf import import_tensorflow_quietly
import_tensorflow_quietly()
import gtzan_tf
from gtzan_tf.config import Config
from gtzan_tf.training.trainer import train
from gtzan_tf.data.pipeline import load_feature_set, eval_clip_dataset

DEV = Path(sys.argv[1]); OUT = Path(sys.argv[2]); K = int(sys.argv[3]); models = sys.argv[4].split(",")
print(gtzan_tf.__file__, flush=True)
clips = DEV.joinpath("split/all.txt").read_text().split()
by_genre = {}
for c in clips: by_genre.setdefault(c.split("/")[0], []).append(c)
rng = random.Random(0); fold_of = {}
offset = 0
for g in sorted(by_genre):
    items = sorted(by_genre[g]); rng.shuffle(items)
    for i, c in enumerate(items): fold_of[c] = (i + offset) % K
    offset += len(items)
BASE = Config().replace(augment={"copies": 0}, data={"validation_per_genre": 1, "embeddings": ("MSD_musicnn",)},
                        train={"early_stopping_patience": 100, "eval_batch_size": 16})
RUNS = {
  "mlp_msd": dict(kind="logmel", train={"model": "mlp_msd", "epochs": 60, "learning_rate": 1e-3}),
  "resnet34_msd": dict(kind="logmel", train={"model": "resnet34_msd", "fusion": "reference", "epochs": 6, "learning_rate": 1e-3, "batch_size": 16}),
  "musicnn_msd": dict(kind="musicnn", train={"model": "musicnn_msd", "epochs": 8, "freeze_backbone_epochs": 6, "finetune_lr_factor": 0.1, "learning_rate": 1e-3, "batch_size": 16}),
  "musicnn_msd_fusion": dict(kind="musicnn", train={"model": "musicnn_msd_fusion", "epochs": 8, "freeze_backbone_epochs": 6, "finetune_lr_factor": 0.1, "learning_rate": 1e-3, "batch_size": 16, "branch_dropout": 0.5}),
}
SMOKE = os.environ.get("SMOKE")
results = json.loads((OUT / "results.json").read_text()) if (OUT / "results.json").is_file() else {}
for k in range(K):
    d = OUT / f"fold{k}"; (d / "split").mkdir(parents=True, exist_ok=True)
    if not (d / "wav").exists(): (d / "wav").symlink_to(DEV / "wav")
    train_clips = [c for c in clips if fold_of[c] != k]
    valid = []
    for g in sorted(by_genre):  # one validation clip of every genre with 3+ training clips
        items = sorted(c for c in train_clips if c.startswith(g + "/"))
        if len(items) >= 3: valid.append(random.Random(k).choice(items))
    (d / "split/train.txt").write_text("\n".join(c for c in train_clips if c not in valid) + "\n")
    (d / "split/valid.txt").write_text("\n".join(valid) + "\n")
    (d / "split/test.txt").write_text("\n".join(c for c in clips if fold_of[c] == k) + "\n")
for name in models:
    if name == "logreg":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        accs = []
        for k in range(K):
            fs = load_feature_set(OUT / f"features-logmel-fold{k}")
            def emb(split):
                rows = list(eval_clip_dataset(fs, split, ("msd_embedding",)).as_numpy_iterator())
                return np.stack([f["msd_embedding"][0] for f, _, _ in rows]), np.array([l for _, l, _ in rows])
            xs, ys = zip(*(emb(s) for s in ("train", "valid"))); x, y = np.concatenate(xs), np.concatenate(ys)
            tx, ty = emb("test")
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=0)).fit(x, y)
            accs.append(float(np.mean(clf.predict(tx) == ty)))
        results[name] = {"folds": accs, "seconds": 0}
    else:
        spec = RUNS[name]; accs = []; start = time.time()
        for k in range(K):
            cfg = BASE.replace(features={"kind": spec["kind"]}, train=spec["train"])
            if SMOKE: cfg = cfg.replace(train={"epochs": 2, "freeze_backbone_epochs": min(1, cfg.train.freeze_backbone_epochs)})
            s = train(cfg, OUT / f"fold{k}", OUT / "runs" / f"{name}-fold{k}", features_dir=OUT / f"features-{spec['kind']}-fold{k}", verbose=0)
            accs.append(s["test_clip_accuracy"]); print(name, k, s["test_clip_accuracy"], f"{time.time()-start:.0f}s", flush=True)
        results[name] = {"folds": accs, "seconds": time.time() - start}
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    r = results[name]; print(f"| {name} | {100*np.mean(r['folds']):.1f} ± {100*np.std(r['folds'], ddof=1):.1f} | {r['folds']} | {r['seconds']:.0f} s |", flush=True)
