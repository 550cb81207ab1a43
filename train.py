"""Train a genre classifier: `python train.py --model resnet34_msd --data DIR --out RUN_DIR`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gtzan_tf import import_tensorflow_quietly
from gtzan_tf.errors import cli

# train.py flag -> TrainConfig field
FLAGS = {
    "model": "model", "epochs": "epochs", "batch_size": "batch_size", "lr": "learning_rate",
    "schedule": "schedule", "optimizer": "optimizer", "weight_decay": "weight_decay", "l1": "l1", "l2": "l2",
    "dropout": "dropout", "label_smoothing": "label_smoothing", "seed": "seed", "seeds": "seeds",
    "folds": "folds", "refit": "refit", "monitor": "monitor", "init": "init", "fusion": "fusion",
    "freeze_backbone_epochs": "freeze_backbone_epochs", "finetune_lr_factor": "finetune_lr_factor",
    "mixup": "mixup_alpha", "branch_dropout": "branch_dropout", "embedding_epochs": "embedding_epochs",
    "patience": "early_stopping_patience",
    "mixed_precision": "mixed_precision", "jit": "jit", "strategy": "strategy",
    "worker_timeout": "worker_timeout_seconds",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--list-models", action="store_true", help="print the model names and exit")
    p.add_argument("--model", help="a name from --list-models (default resnet34_msd)")
    p.add_argument("--data", type=Path, help="dataset folder in the GTZAN layout")
    p.add_argument("--out", type=Path, help="run folder to write")
    p.add_argument("--features", type=Path, help="prepared features folder (default OUT/../features-<hash of config and data>)")
    p.add_argument("--workers", type=int, default=1, help="processes for preparing missing features")
    p.add_argument("--skip-bad", action="store_true", help="prepare without unusable audio files (each named in a warning)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--schedule", help="constant | cosine | step")
    p.add_argument("--optimizer", help="adam | adamw | sgd (Nesterov momentum) | rmsprop")
    p.add_argument("--weight-decay", type=float, help="AdamW decoupled weight decay")
    p.add_argument("--l1", type=float, help="L1 kernel regularisation")
    p.add_argument("--l2", type=float, help="L2 kernel regularisation")
    p.add_argument("--dropout", type=float)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--seeds", type=int, help="train N seeded runs and report mean and std")
    p.add_argument("--folds", type=int, help="stratified K-fold cross-validation: K models and their ensemble")
    p.add_argument("--refit", action="store_true", default=None,
                   help="with --folds: then train one model on all training clips for the folds' median best epoch")
    p.add_argument("--monitor", help="checkpoint and early-stopping signal: val_clip_loss | val_clip_accuracy "
                   "(ties broken by the loss)")
    p.add_argument("--init", help="scratch | KerasHub preset name | local preset folder | file.weights.h5")
    p.add_argument("--fusion", help="two-branch fusion: reference (8+8 logits) | wide (pooled features) | "
                                    "gated (embedding + a zero-initialised gate x audio)")
    p.add_argument("--freeze-backbone-epochs", type=int, help="train the new head only for N epochs first")
    p.add_argument("--finetune-lr-factor", type=float, help="learning rate x this once the backbone is unfrozen")
    p.add_argument("--mixup", type=float, help="mixup alpha (0: off)")
    p.add_argument("--branch-dropout", type=float, help="two-branch models: drop the spectrogram branch per sample")
    p.add_argument("--embedding-epochs", type=int,
                   help="--fusion gated: train the embedding branch alone for up to N epochs first")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    p.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                   help="float16 compute (default: on with a GPU)")
    p.add_argument("--jit", action=argparse.BooleanOptionalAction, default=None, help="XLA compilation")
    p.add_argument("--strategy", help="auto | mirrored | multiworker (reads TF_CONFIG)")
    p.add_argument("--worker-timeout", type=float, metavar="SECONDS",
                   help="multiworker: give up when not every worker of TF_CONFIG has started by then "
                        "(train.worker_timeout_seconds)")
    p.add_argument("--config", type=Path, help="a config.json to start from")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override any config value")
    p.add_argument("--quiet", action="store_true", help="no per-step progress bar")
    return p


@cli
def main(argv=None):
    """train.py's command line (`argv` None: sys.argv). There, a multi-worker process runs as the
    child of a parent that SIGINT and SIGTERM always stop (gtzan_tf.training.supervisor)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_models:
        import_tensorflow_quietly()
        from gtzan_tf.models.registry import MODEL_NAMES

        print("\n".join(MODEL_NAMES))
        return
    if args.data is None or args.out is None:
        parser.error("--data and --out are required")
    from gtzan_tf.config import Config

    cfg = Config.load(args.config) if args.config else Config()
    cfg = cfg.with_overrides(args.set)
    chosen = {field: getattr(args, flag) for flag, field in FLAGS.items() if getattr(args, flag) is not None}
    cfg = cfg.replace(train=chosen)
    if cfg.train.strategy == "multiworker" and argv is None:
        from gtzan_tf.training.supervisor import supervise

        supervise(__file__)  # the parent exits here with the child's code; the child goes on
    import_tensorflow_quietly()
    if cfg.train.strategy == "multiworker":  # model.fit does not run under MultiWorkerMirroredStrategy
        from gtzan_tf.training.multiworker import train_multiworker as train
    else:
        from gtzan_tf.training.experiment import train

    from gtzan_tf.export import export_trained

    summary = train(cfg, args.data, args.out, features_dir=args.features, workers=args.workers,
                    verbose=2 if args.quiet else 1, skip_bad=args.skip_bad, finish=export_trained)
    keys = [k for k in summary if k.endswith("clip_accuracy") or k.endswith("_mean") or k.endswith("_std")]
    print(" ".join(f"{k}={summary[k]:.4f}" for k in keys), file=sys.stderr)
    print(f"run folder: {args.out}")


if __name__ == "__main__":
    main()
