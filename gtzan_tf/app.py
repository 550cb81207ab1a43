"""A page for a trained run: `python -m gtzan_tf.app --model RUN_DIR [--host 127.0.0.1] [--port 7860]`.

Drop a song (wav, flac, mp3, ogg, au) or record one: the page shows the top genres, each segment's
genre probabilities over time and the clip's log-mel spectrogram. The answer comes from the run's
`serving/` model through `inference.Predictor`, as predict.py's does. Needs the `app` extra
(`pip install -e ".[app]"`).
"""
from __future__ import annotations

import argparse
import html
import math
from pathlib import Path

import numpy as np

from gtzan_tf import import_tensorflow_quietly
from gtzan_tf.config import PageConfig
from gtzan_tf.errors import UserError, cli

PAGE = PageConfig()


def demo_examples(run_dir: Path) -> Path:
    """The data set of a run laid out as `make demo` lays it: demo/gtzan beside demo/runs/RUN."""
    return run_dir.resolve().parent.parent / "gtzan"


def example_files(folder: Path, limit: int = 10) -> list[Path]:
    """The first audio file of each folder under `folder` (one clip per genre), at most `limit`."""
    from gtzan_tf.data.audio import audio_files

    first: dict[Path, Path] = {}
    for path in audio_files([folder]):
        first.setdefault(path.parent, path)
    return list(first.values())[:limit]


def clock(seconds: float) -> str:
    """12:05, for 725 seconds."""
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


class GenrePage:
    """The page's one analysis: an uploaded or recorded file -> top genres, timeline plot,
    spectrogram, top genre's name and notes, by the one Predictor (one model in memory for every request)."""

    def __init__(self, run_dir: Path, page: PageConfig):
        from gtzan_tf.features.frontend import feature_layers
        from gtzan_tf.inference import Predictor, load_run

        self.predictor = Predictor(load_run(run_dir))
        self.cfg, self.page = self.predictor.cfg, page
        self.log_mel = feature_layers(self.cfg.replace(features={"kind": "logmel"}))
        self.uploads: set[str] = set()  # the files users sent (Gradio's record of its uploads) ...
        self.examples: set[str] = set()  # ... less the example clips, which stay cached for the next click

    def analyse(self, upload: str | None) -> tuple:
        """The outputs for the file at `upload` (a path Gradio made); a UserError is one message on
        the page. The upload is deleted afterwards."""
        import gradio as gr

        from gtzan_tf.data.audio import load_audio, probe_audio

        if upload is None:
            return self.blank()
        path = Path(upload)
        try:
            y = load_audio(path, self.cfg.audio, max_seconds=self.page.max_minutes * 60)
            seconds = probe_audio(path, self.cfg.audio)
            result = self.predictor.predict_waveform(y)
        except UserError as exc:
            message = html.escape(str(exc).replace(str(path), path.name))
            raise gr.Error(message, duration=None, print_exception=False) from None
        finally:
            if upload in self.uploads and upload not in self.examples:
                path.unlink(missing_ok=True)
        notes = []
        if seconds > self.page.max_minutes * 60:
            analysed = len(y) / self.cfg.audio.sample_rate
            notes.append(f"The song is {clock(seconds)} long: analysed its first {clock(analysed)}.")
        if result["silent"]:
            notes.append("The audio is silent or nearly so: the genre above is a guess.")
        return (result["probabilities"], self.timeline(result["segments"]), self.spectrogram(y),
                f"### {result['genre']}", " ".join(notes))

    @staticmethod
    def blank() -> tuple:
        return None, None, None, "", ""

    def timeline(self, segments: list[dict]):
        """Each genre's probability in each segment, one point per segment at its start."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 3.2), layout="constrained")
        ax = fig.add_subplot()
        starts = [seg["start_s"] for seg in segments]
        for genre in self.predictor.run.genres:
            ax.plot(starts, [seg["probabilities"][genre] for seg in segments], "o-", label=genre)
        ax.set(xlabel="segment start (s)", ylabel="probability", ylim=(-0.02, 1.02))
        ax.legend(loc="upper left", bbox_to_anchor=(1, 1), fontsize="small")
        return fig

    def spectrogram(self, y: np.ndarray):
        """The clip's log-mel spectrogram (the run's feature layers), drawn by librosa."""
        import librosa.display
        from matplotlib.figure import Figure

        frames = y[np.newaxis]
        for layer in self.log_mel:
            frames = layer(frames)
        rate, hop = self.cfg.audio.sample_rate, self.cfg.features.hop_length
        fig = Figure(figsize=(10, 3.2), layout="constrained")
        ax = fig.add_subplot()
        image = librosa.display.specshow(np.asarray(frames)[0].T, sr=rate, hop_length=hop, x_axis="time",
                                         y_axis="mel", ax=ax)
        ax.set_xlabel("time (s)")
        fig.colorbar(image, ax=ax, format="%+2.0f dB")
        return fig

    def blocks(self, examples: list[Path]):
        """The page: inputs, outputs and the queued analysis, callable as the API's `/analyse`."""
        import gradio as gr

        run = self.predictor.run
        with gr.Blocks(title="gtzan-tf: music genre", analytics_enabled=False) as page:
            folds = f", an ensemble of {len(run.members)} folds" if run.members else ""
            gr.Markdown(f"# Music genre\nRun `{run.root.name}` (`{run.cfg.train.model}`{folds}): "
                        f"{len(run.genres)} genres ({', '.join(run.genres)}). Drop a song or record one; "
                        f"of a longer song, its first {clock(self.page.max_minutes * 60)} are analysed.")
            with gr.Row():
                with gr.Column():
                    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Song")
                    if examples:
                        gr.Examples([[str(p)] for p in examples], inputs=[audio],
                                    example_labels=[p.stem for p in examples], label="Example clips")
                with gr.Column():
                    top_genre = gr.Markdown(elem_id="top-genre", label="Top genre")
                    status = gr.Markdown(elem_id="status", label="Notes")
                    genres = gr.Label(num_top_classes=5, label="Top genres", elem_id="genres")
            timeline = gr.Plot(label="Genre probabilities over time (one point per segment)", format="png")
            spectrogram = gr.Plot(label="Log-mel spectrogram", format="png")
            outputs = [genres, timeline, spectrogram, top_genre, status]
            audio.change(self.blank, None, outputs, queue=False, api_visibility="private").then(
                self.analyse, audio, outputs, api_name="analyse")
        self.uploads, self.examples = page.upload_file_set, audio.keep_in_cache
        return page.queue(default_concurrency_limit=self.page.concurrency, max_size=self.page.queue_size)


def positive(kind):
    """An argparse type: a finite number of `kind` above 0."""

    def parse(text: str):
        value = kind(text)
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, metavar="RUN_DIR", help="a run folder written by train.py")
    p.add_argument("--host", default=PAGE.host, help=f"address to listen on (default {PAGE.host}: this machine only)")
    p.add_argument("--port", type=int, default=PAGE.port)
    p.add_argument("--examples", type=Path, metavar="DIR",
                   help="audio clips to offer, the first of each subfolder "
                        "(default: the demo set beside the run, RUN_DIR/../../gtzan)")
    p.add_argument("--max-minutes", type=positive(float), default=PAGE.max_minutes,
                   help="analyse at most this much of a song, from its start")
    p.add_argument("--max-upload-mb", type=positive(int), default=PAGE.max_upload_mb, help="largest upload accepted")
    p.add_argument("--concurrency", type=positive(int), default=PAGE.concurrency, help="requests analysed at once")
    return p


@cli
def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.examples and not args.examples.is_dir():
        raise UserError(f"--examples {args.examples}: not a folder")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError('the page needs Gradio: pip install -e ".[app]"') from None
    import_tensorflow_quietly()

    page = PageConfig(host=args.host, port=args.port, max_minutes=args.max_minutes,
                      max_upload_mb=args.max_upload_mb, concurrency=args.concurrency)
    examples_dir = args.examples or demo_examples(args.model)
    genre_page = GenrePage(args.model, page)
    examples = example_files(examples_dir) if examples_dir.is_dir() else []
    genre_page.blocks(examples).launch(server_name=page.host, server_port=page.port, share=False,
                                       max_file_size=f"{page.max_upload_mb}mb", show_error=False)


if __name__ == "__main__":
    main()
