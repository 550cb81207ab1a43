"""The original study's results table, reproduced with this project's own training, beside its numbers.

    python benchmarks/reproduce.py --data DIR --out OUT [--rows ...] [--conditions ...] [--seeds 3] [--epochs N]

Every cell is the original recipe (`../shared/notes/seed-recipe.md`) as this project's config:
"plain" is the whole clip cropped to the shortest training clip (N frames: features.segment_frames
= N, features.max_segments = 1) with no augmented copy (augment.copies = 0); "+ augmentation" adds
the offline copy (augment.copies = 1); "+ segmentation" cuts 4 s segments (125 frames), a clip
being the mean of its segments' probabilities; "+ both" both. Adam 1e-4, batch 32, the checkpoint
with the best validation clip accuracy, no early stopping or learning-rate reduction.

Each cell is an ordinary train.py run folder, OUT/<condition>/<row> (its seeds in seed-K/), and
the rows of a condition share one features folder beside them. A rerun skips the finished cells
(finished.json) and resumes an interrupted one. The table is printed as markdown and written to
OUT/results.md, OUT/results.csv and OUT/results.png.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from gtzan_tf.config import EMBEDDING_INPUTS, Config  # noqa: E402
from gtzan_tf.data.audio import shortest_clip_frames  # noqa: E402
from gtzan_tf.data.index import GTZAN_8_GENRES, load_index  # noqa: E402
from gtzan_tf.errors import UserError, cli  # noqa: E402
from gtzan_tf.files import atomic_path, write_text  # noqa: E402

# condition -> (its column title, segmented, augmented copies)
CONDITIONS = {
    "plain": ("plain", False, 0),
    "augmentation": ("+ augmentation", False, 1),
    "segmentation": ("+ segmentation", True, 0),
    "both": ("+ both", True, 1),
}
# The ORIGINAL's published test accuracies (%, 8 genres, 150 test clips, mean of 3 runs, 100 epochs;
# ../shared/notes/seed-recipe.md), not ours: row -> (its title there, condition -> accuracy).
ORIGINAL = {
    "cnn1d": ("1D CNN baseline", {"plain": 43.78, "augmentation": 60.67}),
    "cnn1d_q1": ("1D CNN Q1", {"plain": 54.44, "augmentation": 61.33}),
    "mlp_mtt": ("MTT embedding + MLP", {"plain": 62.0, "augmentation": 73.78}),
    "mlp_msd": ("MSD embedding + MLP", {"plain": 80.44, "augmentation": 86.67}),
    "cnn2d": ("2D CNN", {"plain": 69.11, "augmentation": 73.78, "segmentation": 70.89, "both": 73.33}),
    "cnn2d_msd": ("2D CNN + MSD", {"plain": 69.11, "augmentation": 79.33, "segmentation": 81.0, "both": 84.0}),
    "resnet34_msd": ("ResNet34 + MSD", {"plain": 82.0, "augmentation": 83.56, "segmentation": 84.89, "both": 86.0}),
    "vgg13": ("VGG13", {"both": 76.22}),
    "vgg16": ("VGG16", {"both": 78.22}),
    "vgg19": ("VGG19", {"both": 75.56}),
    "resnet18": ("ResNet18", {"both": 77.78}),
    "resnet34": ("ResNet34", {"both": 80.44}),
    "resnet50": ("ResNet50", {"both": 78.44}),
    "resnet101": ("ResNet101", {"both": 78.0}),
}
BACKBONE_ROWS = ("vgg13", "vgg16", "vgg19", "resnet18", "resnet34", "resnet50", "resnet101")  # "+ both" only
ORIGINAL_EPOCHS = 100
# Config keys every cell sets itself (the recipe and the command's flags); --set may not change them.
RECIPE_KEYS = ("features.segment_frames", "features.max_segments", "augment.copies", "train.model", "train.epochs",
               "train.seeds", "train.init", "train.monitor", "train.early_stopping_patience",
               "train.reduce_lr_patience", "train.folds")


@dataclass(frozen=True)
class Cell:
    row: str
    condition: str
    cfg: Config
    run_dir: Path
    from_scratch: bool  # the original started this cell's backbone from ImageNet weights; this one did not

    @property
    def label(self) -> str:
        return f"{self.row} {CONDITIONS[self.condition][0]}"

    @property
    def original(self) -> float | None:
        return ORIGINAL[self.row][1].get(self.condition)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="dataset folder in the GTZAN layout (8 genres)")
    p.add_argument("--out", type=Path, required=True, help="folder of the cells' run folders and the table")
    p.add_argument("--rows", nargs="+", default=list(ORIGINAL), metavar="ROW",
                   help=f"rows of the table (default all): {', '.join(ORIGINAL)}")
    p.add_argument("--conditions", nargs="+", default=list(CONDITIONS), metavar="CONDITION",
                   help=f"columns (default all): {', '.join(CONDITIONS)}")
    p.add_argument("--seeds", type=int, default=3, help="seeded runs per cell (default 3, as the original)")
    p.add_argument("--epochs", type=int, default=ORIGINAL_EPOCHS, help="epochs per run (default the original's 100)")
    p.add_argument("--init", choices=("scratch", "imagenet"), default="scratch",
                   help="start of the VGG/ResNet backbones: the original's ImageNet weights when at hand "
                        "(KerasHub presets), else scratch (default; the table marks those cells)")
    p.add_argument("--crop-frames", type=int, metavar="N",
                   help="frames every clip is cropped to in plain and + augmentation (default: the shortest training clip's)")
    p.add_argument("--workers", type=int, default=1, help="processes for preparing features")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value in every cell (e.g. train.batch_size=8)")
    return p


def check_choices(rows: list[str], conditions: list[str]) -> None:
    for row in rows:
        if row not in ORIGINAL:
            raise UserError(f"unknown row {row!r}: the rows of the original table are {', '.join(ORIGINAL)}")
    for condition in conditions:
        if condition not in CONDITIONS:
            raise UserError(f"unknown condition {condition!r}: choose from {', '.join(CONDITIONS)}")


def base_config(assignments: list[str]) -> Config:
    for item in assignments:
        key = item.split("=", 1)[0].strip()
        if key in RECIPE_KEYS:
            raise UserError(f"--set {key} is part of every cell's recipe (or of a flag of this command); "
                            "it cannot be changed here")
    return Config().with_overrides(assignments)


def check_genres(index, data: Path) -> None:
    """The original classified its 8 genres; a dataset whose training side lacks one of them, or has
    others, gives cells that cannot be set beside the original's."""
    trained = sorted({clip.genre for clip in index.clips if clip.split != "test"})
    missing = [g for g in GTZAN_8_GENRES if g not in trained]
    extra = [g for g in trained if g not in GTZAN_8_GENRES]
    if missing or extra:
        problem = f"has no training clips of {', '.join(missing)}" if missing else f"has genres {', '.join(extra)}"
        raise UserError(f"{data} {problem}: every row is compared with the original's 8-genre table "
                        f"({', '.join(GTZAN_8_GENRES)})")


def plan_cells(args, base: Config, crop_frames: int) -> list[Cell]:
    """The cells of the chosen rows and conditions (the backbone rows only under "+ both"), each
    with its config; one line for a row whose inputs the features do not hold."""
    from gtzan_tf.models.registry import get_spec
    from gtzan_tf.training.trainer import validate

    cells = []
    for row in (row for row in ORIGINAL if row in args.rows):  # in the original's order
        spec = get_spec(row)
        needed = [model for model, name in EMBEDDING_INPUTS.items() if name in spec.inputs]
        lacking = [model for model in needed if model not in base.data.embeddings]
        if lacking:
            raise UserError(f"row {row} reads the {', '.join(lacking)} embedding: keep it in data.embeddings")
        imagenet = spec.has_backbone and spec.backbone != "musicnn"  # the original's ImageNet-initialised cells
        for condition in (condition for condition in CONDITIONS if condition in args.conditions):
            if row in BACKBONE_ROWS and condition != "both":
                continue
            _, segmented, copies = CONDITIONS[condition]
            features = {} if segmented else {"segment_frames": crop_frames, "max_segments": 1}
            cfg = base.replace(features=features, augment={"copies": copies}, train={
                "model": row, "epochs": args.epochs, "seeds": args.seeds,
                "init": args.init if imagenet else "scratch", "monitor": "val_clip_accuracy",
                "early_stopping_patience": args.epochs, "reduce_lr_patience": args.epochs,
            })
            validate(cfg)
            cells.append(Cell(row, condition, cfg, args.out / condition / row, imagenet and args.init == "scratch"))
    if not cells:
        raise UserError("no cells: the backbone rows (vgg*, resnet18/34/50/101) are in the + both column only")
    return cells


def is_finished(cell: Cell) -> bool:
    from gtzan_tf.training.trainer import FINISHED

    return (cell.run_dir / FINISHED).is_file()


def cell_accuracy(cell: Cell) -> tuple[float, float | None, int]:
    """(mean, std, seeds) of a finished cell's test clip accuracy (%), as its run.json has them
    (std None for a single seed)."""
    summary = json.loads((cell.run_dir / "run.json").read_text())
    if "runs" not in summary:
        return 100 * summary["test_clip_accuracy"], None, 1
    return 100 * summary["test_clip_accuracy_mean"], 100 * summary["test_clip_accuracy_std"], len(summary["runs"])


def signed(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def header(args, cells: list[Cell], index, crop_frames: int) -> list[str]:
    """What differs from the original's setting, as lines above the table."""
    counts = {split: sum(clip.split == split for clip in index.clips) for split in ("train", "valid", "test")}
    lines = [f"Ours: `{args.data}` ({counts['train']} train / {counts['valid']} validation / {counts['test']} test clips, "
             f"{len(index.genres)} genres); mean ± std over {args.seeds} seed(s) of the test clip accuracy (%); "
             f"in brackets the original's (150 test clips, mean of 3 runs).",
             f"Epochs: {args.epochs}" + ("" if args.epochs == ORIGINAL_EPOCHS else f" (the original: {ORIGINAL_EPOCHS})")
             + f"; plain and + augmentation: the whole clip cropped to N = {crop_frames} frames (the original: 936); "
               "segments: clip = mean of segment probabilities (the original: majority vote)."]
    scratch = [cell.label for cell in cells if cell.from_scratch]
    if scratch:
        lines.append(f"Trained from scratch where the original started from ImageNet weights (marked *): {', '.join(scratch)}.")
    if args.set:
        lines.append(f"Changed in every cell: {', '.join(args.set)}.")
    return lines


def results(cells: list[Cell]) -> list[dict]:
    rows = []
    for cell in cells:
        mean, std, seeds = cell_accuracy(cell)
        original = cell.original
        rows.append({"row": cell.row, "model": ORIGINAL[cell.row][0], "condition": cell.condition,
                     "seeds": seeds, "epochs": cell.cfg.train.epochs, "from_scratch": cell.from_scratch,
                     "ours_mean": round(mean, 2), "ours_std": None if std is None else round(std, 2), "original": original,
                     "difference": None if original is None else round(mean - original, 2),
                     "run_dir": str(cell.run_dir)})
    return rows


def markdown_table(table: list[dict], conditions: list[str]) -> list[str]:
    """The original's layout: a row per model, a column per condition, each cell "ours mean ± std
    (original)", and the differences ours − original last."""
    columns = [c for c in CONDITIONS if c in conditions]
    lines = ["| model | " + " | ".join(CONDITIONS[c][0] for c in columns) + " | ours − original |",
             "|---|" + "---:|" * len(columns) + "---|"]
    for row in dict.fromkeys(r["row"] for r in table):
        cells = {r["condition"]: r for r in table if r["row"] == row}
        shown, differences = [], []
        for condition in columns:
            r = cells.get(condition)
            if r is None:
                shown.append("")
                continue
            std = "" if r["ours_std"] is None else f" ± {r['ours_std']:.2f}"
            mark = "*" if r["from_scratch"] else ""
            shown.append(f"{r['ours_mean']:.2f}{std}{mark} ({'–' if r['original'] is None else r['original']})")
            if r["difference"] is not None:
                differences.append(f"{CONDITIONS[condition][0]} {signed(r['difference'])}")
        lines.append(f"| {ORIGINAL[row][0]} | " + " | ".join(shown) + f" | {'; '.join(differences) or '–'} |")
    return lines


def write_csv(table: list[dict], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(table[0]))
    writer.writeheader()
    writer.writerows(table)
    write_text(path, buffer.getvalue())


def plot(table: list[dict], title: str, path: Path) -> None:
    """Ours (mean, std as error bar) and the original's accuracy per cell."""
    from matplotlib.figure import Figure

    labels = [f"{r['model']}, {CONDITIONS[r['condition']][0]}" for r in table]
    y = range(len(table))[::-1]
    fig = Figure(figsize=(7.5, 1.2 + 0.32 * len(table)), layout="constrained")
    ax = fig.subplots()
    ax.barh(list(y), [r["ours_mean"] for r in table], xerr=[r["ours_std"] or 0 for r in table],
            color="tab:blue", alpha=0.7, label="ours (mean ± std over seeds)")
    known = [(yy, r["original"]) for yy, r in zip(y, table) if r["original"] is not None]
    if known:
        ax.scatter([v for _, v in known], [yy for yy, _ in known], color="black", marker="D", zorder=3, label="original")
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("test clip accuracy (%)")
    ax.set_title(title, fontsize=9)
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)


@cli
def main(argv=None):
    """reproduce.py's command line (`argv` None: sys.argv)."""
    args = build_parser().parse_args(argv)
    check_choices(args.rows, args.conditions)
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file; choose a folder")
    base = base_config(args.set).replace(train={"seeds": args.seeds, "epochs": args.epochs})
    index = load_index(args.data, base.data)
    check_genres(index, args.data)
    crop_frames = args.crop_frames or shortest_clip_frames([c.path for c in index.clips if c.split != "test"], base)

    from gtzan_tf import import_tensorflow_quietly

    import_tensorflow_quietly()
    from gtzan_tf.training.trainer import check_same_config

    cells = plan_cells(args, base, crop_frames)
    for cell in cells:  # finished cells too: their results would be another recipe's
        check_same_config(cell.run_dir, cell.cfg)
    todo = [cell for cell in cells if not is_finished(cell)]
    print(f"{len(cells)} cells: {len(cells) - len(todo)} finished already, {len(todo)} to train "
          f"({args.seeds} seed(s) x {args.epochs} epochs each)", file=sys.stderr)
    if todo:
        from tqdm import tqdm

        from gtzan_tf.training.experiment import train

        with tqdm(total=len(todo), unit="cell", desc="reproduce", file=sys.stderr) as bar:
            for cell in todo:
                bar.set_postfix_str(cell.label)
                train(cell.cfg, args.data, cell.run_dir, workers=args.workers, verbose=0)
                bar.update()
    table = results(cells)
    lines = header(args, cells, index, crop_frames)
    text = "\n\n".join([*lines, "\n".join(markdown_table(table, args.conditions))]) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "results.md", text)
    write_csv(table, args.out / "results.csv")
    plot(table, f"ours ({args.data}, {args.epochs} epoch(s), {args.seeds} seed(s)) vs the original", args.out / "results.png")


if __name__ == "__main__":
    main()
