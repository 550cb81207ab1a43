"""The model page (`python -m gtzan_tf.app`), started as a user starts it, driven through Gradio's
own client and a real headless Chromium; its answers are checked against predict.py's."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
MAX_MINUTES = 0.1  # the server's --max-minutes in these tests: 6 s, below the long clip's 10 s
MAX_UPLOAD_MB = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def clips(tiny_data, tmp_path_factory) -> dict[str, Path]:
    """Files to send: 16 demo clips renamed `upload-NN.wav` (none of them an example clip), and the
    bad or odd ones."""
    folder = tmp_path_factory.mktemp("clips")
    wavs = sorted((tiny_data / "wav").rglob("*.wav"))
    firsts = {min(p for p in wavs if p.parent == wav.parent) for wav in wavs}  # the page's examples
    files = {}
    for k, source in enumerate([p for p in wavs if p not in firsts][:16]):
        files[f"upload-{k:02d}"] = Path(shutil.copy(source, folder / f"upload-{k:02d}.wav"))
    y, rate = sf.read(files["upload-00"])
    sf.write(files.setdefault("mp3", folder / "stereo.mp3"), np.stack([y, 0.5 * y], axis=1), rate, format="MP3")
    sf.write(files.setdefault("silence", folder / "silence.wav"), np.zeros(3 * rate), rate)
    sf.write(files.setdefault("long", folder / "long.wav"), np.concatenate([y, y]), rate)
    (files.setdefault("not-audio", folder / "notes.mp3")).write_text("these are my notes, not a song\n" * 20)
    (files.setdefault("empty", folder / "empty.wav")).write_bytes(b"")
    (files.setdefault("too-big", folder / "big.wav")).write_bytes(os.urandom(int(1.5 * 2**20)))
    return files


@pytest.fixture(scope="module")
def page_run(tiny_data, tiny_features, tmp_path_factory) -> Path:
    """A small cnn1d run (1 epoch), trained and exported by train.py in this process."""
    import train

    run = tmp_path_factory.mktemp("runs") / "cnn1d"
    train.main(["--model", "cnn1d", "--data", str(tiny_data), "--features", str(tiny_features), "--out", str(run),
                "--epochs", "1", "--batch-size", "8", "--quiet",
                "--set", "data.validation_per_genre=1", "--set", "data.embeddings="])
    return run


@pytest.fixture(scope="module")
def page(page_run, tiny_data, tmp_path_factory):
    """`python -m gtzan_tf.app` on a free port (default host), its uploads under its own temp folder."""
    temp = tmp_path_factory.mktemp("gradio")
    port = free_port()
    log = temp.parent / "app.log"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(temp), "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gtzan_tf.app", "--model", str(page_run), "--port", str(port),
             "--examples", str(tiny_data / "wav"), "--max-minutes", str(MAX_MINUTES),
             "--max-upload-mb", str(MAX_UPLOAD_MB)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    yield {"proc": proc, "url": f"http://127.0.0.1:{port}", "temp": temp, "log": log}
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def predicted(page_run, clips) -> dict[str, dict]:
    """predict.py's JSON answer for every good clip, by name (computed while the page starts)."""
    import predict

    good = [path for name, path in clips.items() if name.startswith("upload-") or name in ("silence", "long", "mp3")]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        predict.main(["--model", str(page_run), "--json", "--segments", *map(str, good)])
    return {Path(o["file"]).stem: o for o in map(json.loads, out.getvalue().splitlines())}


@pytest.fixture(scope="module")
def url(page, predicted) -> str:
    """The page's address once it answers."""
    from gradio_client import Client

    deadline = time.monotonic() + 240
    while "Running on local URL" not in page["log"].read_text():
        assert page["proc"].poll() is None, page["log"].read_text()[-4000:]
        assert time.monotonic() < deadline, "the page did not start in 240 s"
        time.sleep(0.5)
    assert f"Running on local URL:  {page['url']}" in page["log"].read_text()  # 127.0.0.1 by default
    Client(page["url"], verbose=False)  # the API is up
    return page["url"]


def confidences(label: dict) -> dict[str, float]:
    return {c["label"]: c["confidence"] for c in label["confidences"]}


def assert_same_answer(label: dict, expected: dict) -> None:
    assert label["label"] == expected["genre"]
    got = confidences(label)
    top = dict(list(expected["probabilities"].items())[: len(got)])
    assert got.keys() == top.keys()
    assert np.allclose(list(got.values()), list(top.values()), atol=1e-5)


def test_sixteen_requests_at_once_get_predict_py_answers_and_leave_no_upload(url, page, clips, predicted):
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    names = [name for name in clips if name.startswith("upload-")]
    assert len(names) == 16
    jobs = [client.submit(handle_file(str(clips[name])), api_name="/analyse") for name in names]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda job: job.result(timeout=180), jobs))
    for name, (label, timeline, spectrogram, top_genre, status) in zip(names, answers):
        expected = predicted[name]
        assert_same_answer(label, expected)
        assert top_genre == f"### {expected['genre']}" and status == ""
        assert timeline["plot"].startswith("data:image/png;base64,")
        assert spectrogram["plot"].startswith("data:image/png;base64,")
    left = [p.name for p in page["temp"].rglob("upload-*")]
    assert not left, f"uploads left on the server: {left}"


def test_odd_input_is_a_message_and_the_page_keeps_serving(url, clips, predicted, page_run):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from gtzan_tf.data.audio import load_audio
    from gtzan_tf.inference import Predictor, load_run

    client = Client(url, verbose=False)
    for name, message in [("not-audio", "notes.mp3: cannot decode audio"), ("empty", "empty.wav: empty file")]:
        with pytest.raises(AppError, match=message):
            client.predict(handle_file(str(clips[name])), api_name="/analyse")
    with open(clips["too-big"], "rb") as big:  # the server's own limit, past the client's check
        assert httpx.post(f"{url}/gradio_api/upload", files={"files": big}).status_code == 413

    label, *_, status = client.predict(handle_file(str(clips["silence"])), api_name="/analyse")
    assert_same_answer(label, predicted["silence"])
    assert "a guess" in status

    # Longer than --max-minutes: the first 6 s are analysed, and the page says so.
    label, timeline, *_, status = client.predict(handle_file(str(clips["long"])), api_name="/analyse")
    assert status == "The song is 0:10 long: analysed its first 0:06."
    predictor = Predictor(load_run(page_run))
    expected = predictor.predict_waveform(load_audio(clips["long"], predictor.cfg.audio, max_seconds=MAX_MINUTES * 60))
    assert_same_answer(label, expected)
    assert expected["probabilities"] != predicted["long"]["probabilities"]  # the cut changes the answer

    label, *_ = client.predict(handle_file(str(clips["upload-03"])), api_name="/analyse")
    assert_same_answer(label, predicted["upload-03"])


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1500"):
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def test_browser_upload_shows_predict_py_genre_and_recovers_from_a_bad_file(url, browser, clips, predicted, tiny_data,
                                                                            tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(url)

    def top_genre() -> str:
        return browser.find_element(By.ID, "top-genre").text.strip()

    def upload(path: Path) -> None:
        for clear in browser.find_elements(By.CSS_SELECTOR, "button[aria-label='Clear']")[:1]:
            clear.click()
            wait.until(lambda _: top_genre() == "")
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=file]")).send_keys(str(path))

    try:
        # The examples are one click away.
        genres = predicted["upload-00"]["probabilities"]
        examples = {min((tiny_data / "wav" / genre).glob("*.wav")).stem for genre in genres}
        wait.until(lambda d: examples <= {button.text for button in d.find_elements(By.CSS_SELECTOR, "button")})

        upload(clips["not-audio"])
        toast = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "[data-testid='toast-body']"))
        assert "notes.mp3: cannot decode audio" in toast.text
        browser.find_element(By.CSS_SELECTOR, "[data-testid='toast-close']").click()

        upload(clips["mp3"])
        expected = predicted["stereo"]
        assert wait.until(lambda _: top_genre()) == expected["genre"]
        shown = browser.find_element(By.ID, "genres").text.split("\n")
        top_rows = [line for genre, p in expected["probabilities"].items() for line in (genre, f"{p:.0%}")][:10]
        assert shown[2:12] == top_rows, shown  # below label and heading: genre, percentage (predict.py's)
        time.sleep(1)  # let the plots draw
    finally:
        browser.save_screenshot(str(tmp_path / "page.png"))


@pytest.mark.parametrize("flags, message", [
    (["--max-minutes", "inf"], "argument --max-minutes: must be a finite number > 0, got inf"),
    (["--concurrency", "0"], "argument --concurrency: must be a finite number > 0, got 0"),
    (["--examples", "no-such-folder"], "error: --examples no-such-folder: not a folder"),
])
def test_a_bad_flag_is_one_line_before_anything_loads(flags, message, tmp_path, capsys):
    from gtzan_tf import app

    with pytest.raises(SystemExit) as stopped:
        app.main(["--model", str(tmp_path), *flags])
    assert stopped.value.code == 2 and message in capsys.readouterr().err
