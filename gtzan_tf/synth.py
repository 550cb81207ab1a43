"""Synthetic music in the GTZAN layout: the demo and test dataset the project makes itself.

    python -m gtzan_tf.synth --out DIR [--clips-per-genre N] [--seconds S] [--seed K]
                             [--genres 8|10] [--test-fraction F] [--sample-rate SR]

writes `DIR/wav/<genre>/<genre>.000NN.wav` (mono 16-bit PCM) and `DIR/split/{train,test}.txt`.
Every genre is a `Style` in the `STYLES` table (tempo range, drum patterns, chord progressions,
instrument parts), played by one numpy renderer. Key, tempo, pattern variants, mix levels, tuning
and noise are drawn per clip from a generator seeded by (seed, genre, index), so a clip never
depends on how many others are made. The dataset is built in a hidden folder next to DIR and
renamed into place, so an interrupted run leaves no half-written files.
"""
from __future__ import annotations

import argparse
import functools
import json
import re
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal
from tqdm import tqdm

from gtzan_tf.data.index import GTZAN_8_GENRES, GTZAN_10_GENRES
from gtzan_tf.errors import UserError, cli
from gtzan_tf.files import replace_dir

F32 = np.float32
MARKER = "synth.json"
TABLE = 4096  # wavetable length (a power of two)
VELOCITY = {"X": 1.0, "x": 0.75, "g": 0.35}  # pattern characters that start a note or hit
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "pent_major": (0, 2, 4, 7, 9),
    "blues": (0, 3, 5, 6, 7, 10),
}
DRUM_GAINS = {"kick": 1.0, "snare": 0.8, "hat": 0.5, "open_hat": 0.45, "ride": 0.5, "crash": 0.5}


@dataclass(frozen=True)
class Instrument:
    """A pitched voice. `kind`: "wave" (wavetable, bright-to-dark), "fm" or "pluck" (Karplus-Strong)."""

    kind: str
    attack: float = 0.005  # s
    decay: float = 1.0  # s, time constant of the fall from 1 towards `sustain`
    sustain: float = 1.0
    release: float = 0.05  # s, linear fade after the note ends
    slope: float = 1.0  # harmonic k has level k**-slope (1: sawtooth)
    odd: bool = False  # odd harmonics only (square-like)
    partials: tuple[float, ...] = ()  # explicit harmonic levels instead of `slope`
    cutoff: float = 20000.0  # Hz, lowpass corner of the spectrum at note start
    dark: float = 1.0  # cutoff factor reached after `tone_decay`
    tone_decay: float = 0.3  # s
    voices: int = 1
    spread: float = 0.0  # cents between detuned voices
    vibrato: float = 0.0  # depth as a fraction of the frequency
    glide: float = 0.0  # pitch starts this fraction higher and falls within ~50 ms
    ratio: float = 1.0  # FM modulator / carrier
    index: float = 0.0  # FM index at note start
    brightness: float = 0.5  # pluck: 1 = white-noise excitation, lower = softer pick
    pick: float = 0.3  # pluck position along the string (comb notch)
    damping: float = 0.996  # pluck: loss per period
    strum: float = 0.0  # s between the notes of a chord


@dataclass(frozen=True)
class Part:
    """One instrument's line: a step pattern and the notes it plays.

    `instrument` names an `INSTRUMENTS` entry, or alternatives (one chosen per clip): "piano|epiano".
    `rhythm` variants are 16-step (one bar) or longer strings: X/x/g start a note (accent, normal,
    ghost), `-` holds it, `.` rests. `notes` is cycled over the onsets: R 3 5 6 7 8 chord degrees,
    C the chord, P a power chord, A arpeggio, M melody, W walking bass. `low` is the lowest MIDI
    note of the register; `drive` > 0 distorts the part (tanh) through a cabinet lowpass.
    """

    instrument: str
    rhythm: tuple[str, ...]
    notes: str
    low: int
    level: float = 1.0
    drive: float = 0.0
    prob: float = 1.0


@dataclass(frozen=True)
class Kit:
    """Drum sounds: kick (start Hz, end Hz, decay s, click level), snare kind and decays, hat band."""

    kick: tuple[float, float, float, float]
    snare: str  # snare | clap | rim | brush
    snare_decay: float
    hat_decay: float
    bright: float  # Hz, lower edge of the hi-hat / cymbal noise band


@dataclass(frozen=True)
class Drums:
    """Step patterns per drum voice (variants chosen per clip) and an optional fill on every 4th bar."""

    kit: Kit
    kick: tuple[str, ...]
    snare: tuple[str, ...]
    hat: tuple[str, ...] = ("",)
    open_hat: str = ""
    ride: str = ""
    crash: str = ""
    fill: str = ""


@dataclass(frozen=True)
class Style:
    """Everything that makes a genre: rhythm, harmony, instruments and production."""

    tempo: tuple[float, float]
    progressions: tuple[str, ...]  # roman numerals relative to the key: I ii7 bVII V7 i5 Imaj7
    parts: tuple[Part, ...]
    drums: Drums | None = None
    chord_steps: tuple[int, ...] = (16,)  # 16th steps per chord (variants)
    swing: float = 0.0  # delay of the off-beat, as a fraction of the swing unit
    swing_unit: int = 1  # 1: swung 16ths, 2: swung 8ths
    scale: str | None = None  # melody scale; None: major or minor from the progression
    reverb: float = 0.1  # wet level
    room: float = 1.0  # reverb time (s)
    lowpass: float = 0.0  # Hz, master lowpass (0: none)
    noise: float = -45.0  # dB of hiss relative to the mix
    crackle: bool = False  # vinyl clicks
    swell: float = 0.0  # depth of slow dynamics


INSTRUMENTS = {
    "piano": Instrument("wave", attack=0.002, decay=0.9, sustain=0.0, release=0.12, slope=1.4, cutoff=3500,
                        dark=0.3, tone_decay=0.35),
    "vibes": Instrument("fm", attack=0.002, decay=1.5, sustain=0.0, release=0.3, ratio=4.0, index=1.2, tone_decay=0.15),
    "epiano": Instrument("fm", attack=0.002, decay=1.2, sustain=0.15, release=0.15, index=1.8, tone_decay=0.25),
    "strings": Instrument("wave", attack=0.25, decay=3.0, sustain=0.85, release=0.45, cutoff=2200, voices=3, spread=12,
                          vibrato=0.004),
    "violin": Instrument("wave", attack=0.08, decay=3.0, sustain=0.9, release=0.2, cutoff=3200, vibrato=0.007),
    "pad": Instrument("wave", attack=0.06, decay=2.0, sustain=0.9, release=0.3, cutoff=5000, voices=3, spread=18),
    "organ": Instrument("wave", attack=0.005, release=0.03, partials=(1.0, 0.8, 0.5, 0.45, 0.0, 0.3, 0.0, 0.25)),
    "lead": Instrument("wave", attack=0.01, decay=0.4, sustain=0.75, release=0.08, odd=True, cutoff=7000, voices=2,
                       spread=10, vibrato=0.003),
    "horn": Instrument("wave", attack=0.05, sustain=0.8, release=0.08, cutoff=1400, vibrato=0.005),
    "flute": Instrument("wave", attack=0.06, sustain=0.85, release=0.1, slope=2.5, cutoff=2500, vibrato=0.005),
    "synth_bass": Instrument("wave", attack=0.003, decay=0.3, sustain=0.5, release=0.04, cutoff=1600, dark=0.25,
                             tone_decay=0.12),
    "bass": Instrument("wave", attack=0.004, decay=0.7, sustain=0.25, release=0.06, slope=1.8, cutoff=900, dark=0.5,
                       tone_decay=0.2),
    "upright": Instrument("wave", attack=0.006, decay=0.35, sustain=0.1, release=0.05, slope=2.2, cutoff=700, dark=0.6,
                          tone_decay=0.1),
    "sub": Instrument("wave", attack=0.004, decay=1.2, sustain=0.4, release=0.08, partials=(1.0, 0.08, 0.03),
                      glide=0.5),
    "power": Instrument("wave", attack=0.002, decay=1.5, sustain=0.6, release=0.03, cutoff=3500, voices=2, spread=8),
    "pluck": Instrument("pluck", release=0.04, brightness=0.5, pick=0.3, damping=0.996, strum=0.012),
    "chop": Instrument("pluck", release=0.015, brightness=0.7, pick=0.2, damping=0.99, strum=0.004),
    "twang": Instrument("pluck", release=0.05, brightness=0.95, pick=0.12, damping=0.998, strum=0.01),
}

FOUR_BARS = 64  # steps
STYLES = {
    "blues": Style(
        tempo=(70, 110), swing=1 / 3, swing_unit=2, scale="blues", reverb=0.15, room=1.2,
        progressions=("I7 IV7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7", "I7 I7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 I7",
                      "i7 iv7 i7 i7 iv7 iv7 i7 i7 bVI7 V7 i7 V7"),
        drums=Drums(Kit((110, 50, 0.22, 0.15), "snare", 0.14, 0.04, 6500),
                    kick=("X.......X.......", "X.....x.X......."), snare=("....X.......X...",),
                    hat=("x.x.x.x.x.x.x.x.",), fill="..xX"),
        parts=(
            Part("bass", ("x---x---x---x---", "x.x.x.x.x.x.x.x."), "R3568653", low=33),
            Part("pluck|twang", ("x.x-..x.xx-.x...", "X---x.x.x---..x."), "M", low=60, level=0.8, drive=3),
            Part("organ|piano", ("..x-..x-..x-..x-",), "C", low=55, level=0.5, prob=0.7),
        ),
    ),
    "classical": Style(
        tempo=(60, 96), chord_steps=(16, 32), reverb=0.35, room=2.2, noise=-55, swell=0.35,
        progressions=("I IV V I", "I vi IV V", "I V vi iii IV I IV V", "i iv V i", "i VI iv V", "ii V I vi",
                      "I ii V7 I"),
        parts=(
            Part("strings", ("X---------------",), "C", low=55),
            Part("strings", ("X-------X-------",), "R", low=36, level=0.6),
            Part("piano|pluck", ("x.x.x.x.x.x.x.x.", "x..x..x.x..x..x."), "A", low=60, level=0.7, prob=0.6),
            Part("violin|flute", ("X---x-x-X-------", "X-----x-x---X---"), "M", low=67, level=0.6, prob=0.6),
        ),
    ),
    "country": Style(
        tempo=(100, 140), chord_steps=(16, 32), swing=0.04, swing_unit=2, scale="pent_major", reverb=0.12, room=0.8,
        progressions=("I IV V I", "I I IV V", "I V IV I", "I IV I V", "I vi IV V", "I IV V7 I"),
        drums=Drums(Kit((110, 55, 0.18, 0.2), "brush", 0.12, 0.03, 7000),
                    kick=("X.......X.......", "X.......X.x....."), snare=("xgxgXgxgxgxgXgxg",),
                    hat=("x.x.x.x.x.x.x.x.", "")),
        parts=(
            Part("bass", ("X...x...X...x...",), "R5", low=36, level=0.9),
            Part("pluck", ("....X-......X-..", "x.x.X.x.x.x.X.x.", "X...X-x.X...X-x."), "C", low=52, level=0.8),
            Part("twang|twang|pluck", ("x.xx..x.x.x...x.", "x.x.x-..xxx.x-.."), "M", low=60, level=0.7, prob=0.85),
            Part("violin", ("X---x-x-X---x---",), "M", low=67, level=0.5, prob=0.3),
        ),
    ),
    "disco": Style(
        tempo=(110, 132), chord_steps=(16, 32), reverb=0.12, room=1.0,
        progressions=("i7 iv7", "ii7 V7", "i7 IV7", "vi7 ii7 V7 Imaj7", "i7 bVII", "Imaj7 vi7 ii7 V7",
                      "i7 bVImaj7 bVII i7"),
        drums=Drums(Kit((130, 50, 0.2, 0.3), "clap", 0.15, 0.035, 8000),
                    kick=("X...X...X...X...",), snare=("....X.......X...",),
                    hat=("xg.gxg.gxg.gxg.g", "x...x...x...x..."),
                    open_hat="..X...X...X...X.", crash="X" + "." * (2 * FOUR_BARS - 1), fill="xxXX"),
        parts=(
            Part("synth_bass", ("x.x.x.x.x.x.x.x.", "x.xxx.x.x.xxx.x."), "R8", low=33),
            Part("chop|chop|epiano", ("x.gx.xg.x.gx.xg.", "..x...x...x...x."), "C", low=60, level=0.6),
            Part("strings|pad", ("X-------x---x---", "X---------------"), "C", low=62, level=0.6, prob=0.7),
        ),
    ),
    "hiphop": Style(
        tempo=(80, 98), chord_steps=(32, 16), swing=0.22, lowpass=5000, noise=-32, crackle=True, reverb=0.08, room=0.6,
        progressions=("i7 iv7", "i7 bVImaj7", "i7 v7 bVImaj7 v7", "i7 bIIImaj7 iv7 v7", "vi7 ii7"),
        drums=Drums(Kit((100, 45, 0.35, 0.25), "snare", 0.17, 0.03, 6000),
                    kick=("X.........X.....", "X......X..X.....", "X.x.......X..x..", "X.........XX...."),
                    snare=("....X.......X...", "....X.......X..g"),
                    hat=("x.x.x.x.x.x.x.x.", "xxxxxxxxxxxxxxxx", "x.xgx.xgx.xgx.xg")),
        parts=(
            Part("sub", ("X-------..x-X---", "X---------x-----"), "R", low=28, drive=1.5),
            Part("epiano|piano|strings", ("X-----x---x-----", "X---------------", "x--x--x---x-----"), "C", low=55,
                 level=0.7),
            Part("piano|flute|epiano", ("x.x...x.....x...",), "M", low=67, level=0.4, prob=0.5),
        ),
    ),
    "jazz": Style(
        tempo=(110, 210), chord_steps=(16, 16, 8), swing=1 / 3, swing_unit=2, reverb=0.2, room=1.2,
        progressions=("ii7 V7 Imaj7 Imaj7", "ii7 V7 Imaj7 VI7", "Imaj7 vi7 ii7 V7", "iii7 VI7 ii7 V7",
                      "i7 iv7 bVII7 bIIImaj7"),
        drums=Drums(Kit((90, 50, 0.2, 0.05), "brush", 0.2, 0.05, 6000),
                    kick=("g...g...g...g...", "g.......g......."),
                    snare=("......g.......g.", "..........g...g.", "....g.........g."),
                    hat=("....x.......x...",), ride="X...x.x.X...x.x."),
        parts=(
            Part("upright", ("x---x---x---x---",), "W", low=33),
            Part("piano|piano|epiano", ("......x-.....x--", "X-----x.........", "..x-......x-...."), "C", low=53,
                 level=0.7),
            Part("horn|horn|flute|vibes", ("x-.x..x-x.x...x.", "X--x.x..x-x-x..."), "M", low=60, level=0.6, prob=0.7),
        ),
    ),
    "metal": Style(
        tempo=(140, 190), chord_steps=(16, 8), noise=-40, reverb=0.08, room=0.8,
        progressions=("i5 i5 bVI5 bVII5", "i5 bII5 i5 bVII5", "i5 iv5 bVI5 v5", "i5 bVII5 bVI5 bVII5",
                      "i5 bIII5 bII5 i5"),
        drums=Drums(Kit((160, 60, 0.1, 0.6), "snare", 0.14, 0.03, 6000),
                    kick=("xxxxxxxxxxxxxxxx", "X.xxX.xxX.xxX.xx", "XxxxXxxxXxxxXxxx"),
                    snare=("....X.......X...", "..X...X...X...X."), crash="X...x...x...x...", fill="XXXX"),
        parts=(
            Part("power", ("xxxxxxxxxxxxxxxx", "xxx.xxx.x.x.xxx.", "X-----x-X-----x-"), "P", low=40, drive=12),
            Part("power", ("X-------X-------", "X---------------"), "P", low=47, level=0.7, drive=16, prob=0.6),
            Part("bass", ("x.x.x.x.x.x.x.x.",), "R", low=28, level=0.7, drive=3),
        ),
    ),
    "pop": Style(
        tempo=(95, 128), chord_steps=(16, 32), reverb=0.15, room=1.0,
        progressions=("I V vi IV", "vi IV I V", "I vi IV V", "IV I V vi", "I IV vi V", "I iii IV V"),
        drums=Drums(Kit((140, 52, 0.22, 0.35), "clap", 0.16, 0.03, 8000),
                    kick=("X.....x.X.......", "X.......X.x.....", "X..x..x.X......."), snare=("....X.......X...",),
                    hat=("x.x.x.x.x.x.x.x.", "xgxgxgxgxgxgxgxg"), crash="X" + "." * (FOUR_BARS - 1), fill="..xX"),
        parts=(
            Part("synth_bass", ("x.x.x.x.x.x.x.x.", "X-.xX-.xX-.xX-.x"), "R", low=36, level=0.9),
            Part("pad|strings", ("X---------------",), "C", low=60, level=0.6),
            Part("lead|lead|pluck", ("x.x.x-x.x-..x.x.", "X-x-x-x-X---x.x.", "x.xx.x.x..x.x-.."), "M", low=72,
                 level=0.8),
            Part("piano|epiano", ("x..x..x.x..x..x.",), "C", low=60, level=0.5, prob=0.5),
        ),
    ),
    "reggae": Style(
        tempo=(66, 90), chord_steps=(16, 32), swing=0.08, swing_unit=2, reverb=0.25, room=1.5,
        progressions=("i iv", "I IV", "i bVII", "I IV V IV", "i iv i v", "i bVII bVI bVII"),
        drums=Drums(Kit((90, 48, 0.3, 0.1), "rim", 0.05, 0.03, 7000),
                    kick=("........X.......",), snare=("........X.......", "........X.....g."),
                    hat=("x.x.x.x.x.x.x.x.", "x.xxx.xxx.xxx.xx", "..x...x...x...x.")),
        parts=(
            Part("bass", ("X-.x..x-X-..x.x.", "X--.x.x.X-....x.", "X-..x-x.....x-x."), "R58R5R3", low=28, level=1.1),
            Part("pluck|chop", ("....X.......X...", "....X.x.....X.x.", "..X...X...X...X."), "C", low=60, level=0.7),
            Part("organ|piano", ("..x...x...x...x.", "..xx..xx..xx..xx"), "C", low=55, level=0.5, prob=0.7),
            Part("horn|flute", ("X---x-x-X---....",), "M", low=67, level=0.4, prob=0.3),
        ),
    ),
    "rock": Style(
        tempo=(108, 150), chord_steps=(16, 32), reverb=0.12, room=1.0,
        progressions=("I bVII IV I", "I IV V IV", "I V vi IV", "i bVI bIII bVII", "I IV I V", "vi IV I V"),
        drums=Drums(Kit((130, 55, 0.2, 0.35), "snare", 0.16, 0.035, 7000),
                    kick=("X.......X.x.....", "X.....x.X.......", "X.x.....X.x....."), snare=("....X.......X...",),
                    hat=("x.x.x.x.x.x.x.x.",), crash="X" + "." * (FOUR_BARS - 1), fill="xxXX"),
        parts=(
            Part("power", ("x.x.x.x.x.x.x.x.", "X-x-X-x-X-x-X-x-", "X--x--x-X--x--x-"), "P", low=45, drive=4),
            Part("bass", ("x.x.x.x.x.x.x.x.",), "R", low=33, level=0.8),
            Part("pluck", ("x.x-x.x-x---x.x.",), "M", low=64, level=0.5, drive=3, prob=0.6),
        ),
    ),
}

_CHORD = re.compile(r"(b|#)?([iv]+|[IV]+)(maj7|7|5|dim)?")
_NUMERALS = {"i": 0, "ii": 2, "iii": 4, "iv": 5, "v": 7, "vi": 9, "vii": 11}


def parse_chord(symbol: str) -> tuple[int, tuple[int, ...]]:
    """Roman numeral -> (root semitones above the key, chord intervals); lower case is minor."""
    match = _CHORD.fullmatch(symbol)
    if not match or match.group(2).lower() not in _NUMERALS:
        raise ValueError(f"bad chord symbol {symbol!r}")
    accidental, numeral, suffix = match.groups()
    root = _NUMERALS[numeral.lower()] + {"b": -1, "#": 1, None: 0}[accidental]
    minor = numeral.islower()
    intervals = {
        None: (0, 3, 7) if minor else (0, 4, 7),
        "7": (0, 3, 7, 10) if minor else (0, 4, 7, 10),
        "maj7": (0, 4, 7, 11),
        "5": (0, 7, 12),
        "dim": (0, 3, 6),
    }[suffix]
    return root % 12, intervals


class _Song:
    """Per-clip musical context: timing grid, chords, key and the random generator."""

    def __init__(self, style: Style, rng: np.random.Generator, seconds: float, sr: int):
        self.style, self.rng, self.sr = style, rng, sr
        self.n = int(round(seconds * sr))
        self.step = 60.0 / rng.uniform(*style.tempo) / 4
        self.swing = style.swing * rng.uniform(0.7, 1.3)
        self.offset = int(rng.integers(16)) * self.step  # the clip starts on a random 16th
        self.n_steps = int(np.ceil((seconds + self.offset) / self.step)) + 1
        symbols = str(rng.choice(style.progressions)).split()
        start = int(rng.integers(len(symbols)))
        self.chords = [parse_chord(s) for s in symbols[start:] + symbols[:start]]
        self.chord_steps = int(rng.choice(style.chord_steps))
        self.tonic = int(rng.integers(12))
        minor = any(_CHORD.fullmatch(s).group(2) == "i" for s in symbols)  # a minor tonic chord
        self.scale = SCALES[style.scale or ("minor" if minor else "major")]
        self.tuning = 2 ** (rng.uniform(-20, 20) / 1200)
        self.timing = rng.uniform(0.002, 0.008)  # s, humanised timing spread

    def time(self, step: int) -> float:
        """Onset in seconds from the clip start: grid + swing + a little human timing."""
        unit = self.style.swing_unit
        late = self.swing * unit * self.step if step % (2 * unit) == unit else 0.0
        return step * self.step + late - self.offset + self.rng.normal(0, self.timing)

    def chord(self, step: int) -> tuple[int, tuple[int, ...]]:
        """(root pitch class, intervals) of the chord sounding at `step`."""
        root, intervals = self.chords[(step // self.chord_steps) % len(self.chords)]
        return (self.tonic + root) % 12, intervals

    def freq(self, midi: int) -> float:
        return 440.0 * 2 ** ((midi - 69) / 12) * self.tuning


def synthesize_clip(genre: str, rng_or_seed: np.random.Generator | int | list[int], seconds: float = 12.0,
                    sample_rate: int = 22050) -> np.ndarray:
    """Render one clip of `genre`: mono float32 in [-1, 1], peak at a random -12..-1 dBFS."""
    if genre not in STYLES:
        raise UserError(f"unknown genre {genre!r}: choose from {', '.join(STYLES)}")
    style = STYLES[genre]
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    song = _Song(style, rng, seconds, sample_rate)
    mix = np.zeros(song.n, F32)
    if style.drums is not None:
        _mix_in(mix, _render_drums(style.drums, song), rng.uniform(0.8, 1.25))
    notes: dict[tuple[Instrument, int, int], np.ndarray] = {}
    for part in style.parts:
        if rng.random() >= part.prob:
            continue
        track = _render_part(part, song, notes)
        if part.drive:
            track = _distort(track, part.drive * rng.uniform(0.7, 1.4), sample_rate)
        _mix_in(mix, track, part.level * rng.uniform(0.7, 1.4))
    return _master(mix, style, song)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.dot(x, x) / len(x)))


def _mix_in(mix: np.ndarray, track: np.ndarray, level: float) -> None:
    """Add a track scaled to RMS `level`."""
    rms = _rms(track)
    if rms > 1e-9:
        mix += track * (level / rms)


def _add(buf: np.ndarray, sound: np.ndarray, start: int, gain: float) -> None:
    """Add `sound` * gain into `buf` at sample `start`, cropping at both ends."""
    lo, hi = max(start, 0), min(start + len(sound), len(buf))
    if hi > lo:
        buf[lo:hi] += gain * sound[lo - start:hi - start]


@functools.lru_cache(maxsize=256)
def _sos(cutoff: float | tuple[float, float], btype: str, sr: int) -> np.ndarray:
    """Second-order Butterworth sections (float32), cached: designing costs more than filtering."""
    return signal.butter(2, cutoff, btype, fs=sr, output="sos").astype(F32)


def _white(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform white noise in [-1, 1) (float32)."""
    return rng.random(n, dtype=F32) * 2 - 1


def _onsets(pattern: str, n_steps: int) -> list[tuple[int, int, float]]:
    """(step, held steps, velocity) of every hit of a repeating pattern."""
    if not pattern:
        return []
    holds = [len(pattern[i + 1:]) - len(pattern[i + 1:].lstrip("-")) + 1 for i in range(len(pattern))]
    return [(s, holds[s % len(pattern)], VELOCITY[pattern[s % len(pattern)]])
            for s in range(n_steps) if pattern[s % len(pattern)] in VELOCITY]


def _render_part(part: Part, song: _Song, notes: dict) -> np.ndarray:
    """Play one part: resolve every onset to MIDI notes, render them (cached per pitch and length), place them."""
    rng, sr = song.rng, song.sr
    inst = INSTRUMENTS[str(rng.choice(part.instrument.split("|")))]
    track = np.zeros(song.n, F32)
    state: dict = {"prev": None, "motif": None}
    for k, (step, hold, velocity) in enumerate(_onsets(str(rng.choice(part.rhythm)), song.n_steps)):
        midis = _pitches(part.notes[k % len(part.notes)], k, step, hold, part, song, state)
        n_on = int(round(hold * song.step * sr))
        start = song.time(step)
        gain = velocity * rng.uniform(0.85, 1.0)
        if k % 2:  # alternate down and up strums
            midis = midis[::-1]
        for j, midi in enumerate(midis):
            key = (inst, midi, n_on)
            if key not in notes:
                notes[key] = _note(inst, song.freq(midi), n_on, sr, rng)
            _add(track, notes[key], int((start + j * inst.strum) * sr), gain)
    return track


def _place(pitch_class: int, low: int) -> int:
    """Lowest MIDI note >= low with this pitch class."""
    return low + (pitch_class - low) % 12


def _pitches(role: str, k: int, step: int, hold: int, part: Part, song: _Song, state: dict) -> list[int]:
    """MIDI notes for one onset of a part, from its note role and the current chord."""
    root_pc, intervals = song.chord(step)
    root = _place(root_pc, part.low)
    if role in "R35678":
        offset = {"R": 0, "3": intervals[1], "5": 7, "6": 9, "8": 12,
                  "7": intervals[3] if len(intervals) > 3 else 10}[role]
        return [root + offset]
    if role == "C":
        return [root + i for i in intervals]
    if role == "P":
        return [root, root + 7, root + 12]
    if role == "A":
        tones = [i for i in intervals if i < 12] + [12]
        return [root + tones[(step % song.chord_steps // 2) % len(tones)]]
    if role == "W":
        return [_walk(step, hold, root, intervals, part, song, state)]
    return [_melody(k, step, root_pc, intervals, part, song, state)]


def _walk(step: int, hold: int, root: int, intervals: tuple[int, ...], part: Part, song: _Song, state: dict) -> int:
    """Walking bass: root on the chord change, chord tones between, a chromatic approach before the next chord."""
    rng = song.rng
    if step % song.chord_steps == 0:
        note = root
    elif (step + hold) % song.chord_steps == 0:
        note = _place(song.chord(step + hold)[0], part.low) + int(rng.choice([-1, 1]))
    else:
        note = int(rng.choice([root + i for i in (*intervals, 12, -5) if root + i != state["prev"]]))
    state["prev"] = note
    return note


def _melody(k: int, step: int, root_pc: int, intervals: tuple[int, ...], part: Part, song: _Song, state: dict) -> int:
    """A repeating, slightly varied 8-note motif on the scale; strong beats land on chord tones."""
    rng = song.rng
    scale_notes = [m for m in range(part.low, part.low + 20) if (m - song.tonic) % 12 in song.scale]
    if state["motif"] is None:
        walk = np.cumsum(rng.choice([-2, -1, -1, 0, 1, 1, 2], size=8))
        state["motif"] = walk - int(round(walk.mean())) + len(scale_notes) // 2
    if k % 8 == 0:
        state["phrase"] = state["motif"] + (rng.random(8) < 0.25) * rng.choice([-1, 1], size=8)
    note = scale_notes[int(np.clip(state["phrase"][k % 8], 0, len(scale_notes) - 1))]
    if step % 8 == 0:
        chord_pcs = {i % 12 for i in intervals}
        note = min((m for m in range(part.low, part.low + 20) if (m - root_pc) % 12 in chord_pcs),
                   key=lambda m: abs(m - note))
    return note


def _note(inst: Instrument, freq: float, n_on: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One note: `n_on` samples held plus the release, with its amplitude envelope (float32)."""
    n = n_on + int(inst.release * sr)
    t = np.arange(n, dtype=F32) / F32(sr)
    if inst.kind == "pluck":
        y = _karplus(inst, freq, n, sr, rng)
    elif inst.kind == "fm":
        cycles = freq * np.arange(n) / sr
        carrier = (2 * np.pi * (cycles % 1)).astype(F32)
        modulator = (2 * np.pi * (inst.ratio * cycles % 1)).astype(F32)
        y = np.sin(carrier + inst.index * np.exp(-t / inst.tone_decay) * np.sin(modulator))
    else:
        y = _wavetable_voice(inst, freq, t, sr, rng)
    env = np.minimum(t / inst.attack, 1) * np.clip((n / sr - t) / inst.release, 0, 1)
    if inst.sustain < 1:
        env *= inst.sustain + (1 - inst.sustain) * np.exp(-t / inst.decay)
    return y * env


@functools.lru_cache(maxsize=1024)
def _wavetable(inst: Instrument, freq: float, sr: int, dark: bool) -> np.ndarray:
    """One period of the instrument's band-limited spectrum at this pitch (float32, peak 1)."""
    n_harm = max(1, min(TABLE // 2 - 1, int(0.45 * sr / freq)))
    k = np.arange(1, n_harm + 1)
    if inst.partials:
        amps = np.zeros(n_harm)
        amps[:len(inst.partials)] = inst.partials[:n_harm]
    else:
        amps = k ** -inst.slope * ((k % 2 == 1) if inst.odd else 1.0)
    cutoff = inst.cutoff * (inst.dark if dark else 1.0)
    spectrum = np.zeros(TABLE // 2 + 1, complex)
    spectrum[1:n_harm + 1] = -1j * amps / np.sqrt(1 + (k * freq / cutoff) ** 4)
    table = np.fft.irfft(spectrum, TABLE)
    return (table / np.abs(table).max()).astype(F32)


def _wavetable_voice(inst: Instrument, freq: float, t: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Detuned wavetable voices with vibrato / glide, fading from the bright to the dark table."""
    nominal = float(440.0 * 2 ** (np.round(12 * np.log2(freq / 440.0)) / 12))  # nearest semitone: cache key
    bright = _wavetable(inst, nominal, sr, False)
    darker = _wavetable(inst, nominal, sr, True) if inst.dark != 1.0 else None
    if inst.vibrato or inst.glide:
        ramp = np.full(len(t), F32(freq / sr))
        if inst.vibrato:
            ramp *= 1 + inst.vibrato * np.minimum(t / 0.3, 1) * np.sin(F32(2 * np.pi * rng.uniform(4.5, 6.5)) * t)
        if inst.glide:
            ramp *= 1 + inst.glide * np.exp(-t / 0.05)
        cycles = np.cumsum(ramp, dtype=np.float64)
    else:
        cycles = np.arange(len(t)) * (freq / sr)
    fade = np.exp(-t / inst.tone_decay) if darker is not None else None
    out = np.zeros(len(t), F32)
    for v in range(inst.voices):
        detune = 2 ** (inst.spread * (v - (inst.voices - 1) / 2) / 1200)
        idx = (cycles * (detune * TABLE) + rng.random() * TABLE).astype(np.int64) & (TABLE - 1)
        out += bright[idx] if darker is None else darker[idx] + fade * (bright[idx] - darker[idx])
    return out / inst.voices


def _karplus(inst: Instrument, freq: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Karplus-Strong string, one period per numpy step, retimed to the exact pitch."""
    period = max(2, int(sr / freq - 0.5))  # the loop filter adds half a sample: f = sr / (period + 0.5)
    ratio = freq * (period + 0.5) / sr  # <= 1: read the string slower to hit `freq`
    m = int(n * ratio) + 2
    excitation = signal.lfilter([inst.brightness], [1, inst.brightness - 1], rng.uniform(-1, 1, period))
    excitation -= np.roll(excitation, max(1, int(inst.pick * period)))  # pick position
    buf = np.zeros(max(m, period) + 1)
    buf[1:period + 1] = excitation
    g = 0.5 * inst.damping
    for start in range(period + 1, m, period):
        end = min(start + period, m)
        np.add(buf[start - period:end - period], buf[start - period - 1:end - period - 1], out=buf[start:end])
        buf[start:end] *= g
    y = np.interp(np.arange(n) * ratio, np.arange(len(buf) - 1), buf[1:])
    return (y / (np.abs(excitation).max() + 1e-9)).astype(F32)


def _distort(track: np.ndarray, drive: float, sr: int) -> np.ndarray:
    """tanh overdrive followed by a speaker-cabinet lowpass."""
    peak = float(np.abs(track).max())
    if peak == 0:
        return track
    return signal.sosfilt(_sos(min(5000.0, 0.45 * sr), "lowpass", sr), np.tanh(track * (drive / peak)))


def _band_noise(n: int, lo: float, hi: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    hi = min(hi, 0.45 * sr)
    return signal.sosfilt(_sos((min(lo, 0.5 * hi), hi), "bandpass", sr), _white(n, rng))


def _metallic(t: np.ndarray, base: float) -> np.ndarray:
    """Six inharmonic square waves (the 808 cymbal recipe)."""
    ratios = np.array([1.0, 1.48, 1.8, 2.55, 2.63, 3.9], F32)[:, None]
    return ((base * ratios * t) % 1 < 0.5).mean(axis=0, dtype=F32) * 2 - 1


def _drum_sound(voice: str, kit: Kit, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One-shot sample of a drum voice, slightly varied per clip."""
    def time(seconds: float) -> np.ndarray:
        return np.arange(int(seconds * sr), dtype=F32) / F32(sr)

    if voice == "kick":
        f0, f1, decay, click = kit.kick
        decay *= rng.uniform(0.8, 1.2)
        t = time(decay * 6)
        sweep = f1 * rng.uniform(0.9, 1.1) + (f0 - f1) * np.exp(-t / 0.025)
        body = np.sin((2 * np.pi / sr) * np.cumsum(sweep, dtype=np.float64)).astype(F32) * np.exp(-t / decay)
        return np.tanh(1.5 * (body + click * _band_noise(len(t), 2000, 8000, sr, rng) * np.exp(-t / 0.004)))
    if voice == "snare":
        t = time(max(0.3, kit.snare_decay * 5))
        tail = np.exp(-t / kit.snare_decay)
        tone = rng.uniform(170, 230)
        if kit.snare == "clap":
            bursts = sum((t >= d) * np.exp(-np.maximum(t - d, 0) / 0.004) for d in (0.0, 0.011, 0.022))
            return _band_noise(len(t), 900, 4000, sr, rng) * (bursts + 0.6 * (t >= 0.022) * tail)
        noise = _band_noise(len(t), 1500, 9000, sr, rng)
        if kit.snare == "rim":
            return 0.7 * np.sin(F32(2 * np.pi * 2.4 * tone) * t) * np.exp(-t / 0.012) + noise * tail
        if kit.snare == "brush":
            return 0.6 * noise * (1 - np.exp(-t / 0.01)) * tail
        return 0.6 * np.sin(F32(2 * np.pi * tone) * t) * np.exp(-t / 0.06) + noise * tail
    decay, length = {"hat": (kit.hat_decay, 6 * kit.hat_decay), "open_hat": (8 * kit.hat_decay, 0.6),
                     "ride": (0.5, 1.2), "crash": (0.7, 1.5)}[voice]
    t = time(length)
    base = rng.uniform(300, 420)
    sizzle = _white(len(t), rng)
    if voice in ("hat", "open_hat"):
        sizzle += 0.5 * _metallic(t, base)
    elif voice == "ride":
        sizzle += 0.8 * sum(np.sin(F32(2 * np.pi * base * 1.3 * r) * t) for r in (1.0, 1.51, 2.13, 2.76))
    sizzle = signal.sosfilt(_sos(min(kit.bright, 0.4 * sr), "highpass", sr), sizzle)
    if voice == "crash":
        sizzle += 0.5 * _band_noise(len(t), 3000, 9000, sr, rng)
    return sizzle * np.exp(-t / decay)


def _render_drums(drums: Drums, song: _Song) -> np.ndarray:
    """Place the kit's one-shots on the step grid (swing, humanised timing and velocity, fills)."""
    rng = song.rng
    patterns = {
        "kick": str(rng.choice(drums.kick)), "snare": str(rng.choice(drums.snare)), "hat": str(rng.choice(drums.hat)),
        "open_hat": drums.open_hat, "ride": drums.ride, "crash": drums.crash,
    }
    if drums.fill:  # the last beat of every 4th bar, in half of the phrases
        fills = rng.random(song.n_steps // FOUR_BARS + 1) < 0.5
        snare = [patterns["snare"][s % len(patterns["snare"])] for s in range(song.n_steps)]
        for s in range(song.n_steps):
            pos = s % FOUR_BARS - (FOUR_BARS - len(drums.fill))
            if pos >= 0 and fills[s // FOUR_BARS]:
                snare[s] = drums.fill[pos]
        patterns["snare"] = "".join(snare)
    out = np.zeros(song.n, F32)
    for voice, pattern in patterns.items():
        if not pattern:
            continue
        sound = _drum_sound(voice, drums.kit, song.sr, rng)
        gain = DRUM_GAINS[voice] * rng.uniform(0.8, 1.2)
        for step, _, velocity in _onsets(pattern, song.n_steps):
            _add(out, sound, int(song.time(step) * song.sr), gain * velocity * rng.uniform(0.85, 1.0))
    return out


def _reverb(x: np.ndarray, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A dark room: a decaying-noise impulse response applied at a quarter of the sample rate; same RMS as x."""
    q = 4
    m = len(x) // q
    low = sum(x[j:m * q:q] for j in range(q))
    length = max(2, int(seconds * sr / q))
    impulse = _white(length, rng) * np.exp(np.linspace(0, -6.9, length, dtype=F32))
    wet = signal.fftconvolve(low, impulse)[:m + 1]
    out = np.zeros_like(x)
    grid = out[:m * q].reshape(m, q)
    for j in range(q):  # linear interpolation back to the full rate
        grid[:, j] = wet[:m] + (wet[1:] - wet[:m]) * (j / q)
    return out * (_rms(x) / (_rms(out) + 1e-12))


def _master(mix: np.ndarray, style: Style, song: _Song) -> np.ndarray:
    """Reverb, tone, slow dynamics, hiss / crackle, then peak-normalise to -12..-1 dBFS."""
    rng, sr, n = song.rng, song.sr, song.n
    lows = signal.sosfilt(_sos(1000.0, "lowpass", sr), mix)
    tilt = 10 ** (rng.uniform(-5, 5) / 20)  # recording / mastering differences: +-5 dB tilt around 1 kHz
    mix = lows / tilt + (mix - lows) * tilt
    if style.reverb:
        mix = mix + style.reverb * rng.uniform(0.7, 1.3) * _reverb(mix, style.room * rng.uniform(0.7, 1.3), sr, rng)
    if style.lowpass:
        cutoff = min(round(style.lowpass * rng.uniform(0.7, 1.4), -2), 0.45 * sr)
        mix = signal.sosfilt(_sos(cutoff, "lowpass", sr), mix)
    if style.swell:
        t = np.arange(n, dtype=F32) / F32(sr)
        mix = mix * (1 + style.swell * np.sin(F32(2 * np.pi / rng.uniform(6, 12)) * t + F32(rng.uniform(0, 2 * np.pi))))
    rms = _rms(mix) + 1e-12
    hiss = rms * 10 ** ((style.noise + rng.uniform(-8, 8)) / 20)
    mix = mix + _white(n, rng) * (hiss * 3**0.5)  # uniform in [-1, 1) has std 1/sqrt(3)
    if style.crackle:
        clicks = rng.integers(0, n, int(rng.uniform(5, 15) * n / sr))
        mix[clicks] += rng.uniform(-4, 4, len(clicks)).astype(F32) * rms
    peak = float(np.abs(mix).max()) + 1e-12
    return (mix * (10 ** (rng.uniform(-12, -1) / 20) / peak)).astype(F32)

def clip_seed(seed: int, genre: str, index: int) -> list[int]:
    """Seed of one clip: independent of how many clips or which other genres are generated."""
    return [seed, zlib.crc32(genre.encode()), 0, index]


def split_clips(genre: str, clips_per_genre: int, test_fraction: float, seed: int) -> set[int]:
    """Indices of the test clips of one genre: round(N * fraction), at least one, never all (seeded)."""
    n_test = int(round(clips_per_genre * test_fraction))
    if test_fraction > 0:
        n_test = max(n_test, 1)
    n_test = min(n_test, clips_per_genre - 1)
    order = np.random.default_rng([seed, zlib.crc32(genre.encode()), 1]).permutation(clips_per_genre)
    return {int(i) for i in order[:n_test]}


def _write_wav(path: Path, audio: np.ndarray, sr: int) -> None:
    pcm = np.round(np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sr)
        f.writeframes(pcm.tobytes())


def generate_dataset(out_dir: str | Path, *, clips_per_genre: int = 24, seconds: float = 12.0, seed: int = 0,
                     genres: tuple[str, ...] = GTZAN_8_GENRES, test_fraction: float = 0.25,
                     sample_rate: int = 22050, progress: bool = True) -> Path:
    """Write a synthetic dataset in the GTZAN layout to `out_dir` (replacing an earlier synth output)."""
    out = Path(out_dir)
    unknown = [g for g in genres if g not in STYLES]
    if unknown:
        raise UserError(f"unknown genre {unknown[0]!r}: choose from {', '.join(STYLES)}")
    if seed < 0:
        raise UserError(f"--seed must be >= 0, got {seed}")
    if clips_per_genre < 1:
        raise UserError(f"--clips-per-genre must be at least 1, got {clips_per_genre}")
    if not 0 < seconds <= 600:
        raise UserError(f"--seconds must be in (0, 600], got {seconds}")
    if not 0 <= test_fraction < 1:
        raise UserError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    if not 8000 <= sample_rate <= 96000:
        raise UserError(f"--sample-rate must be 8000..96000 Hz, got {sample_rate}")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; choose a folder for --out")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise UserError(f"{out} is not empty and is not a gtzan_tf.synth output; choose another --out or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        lines: dict[str, list[str]] = {"train": [], "test": []}
        with tqdm(total=len(genres) * clips_per_genre, unit="clip", desc="synth", disable=not progress) as bar:
            for genre in genres:
                (tmp / "wav" / genre).mkdir(parents=True)
                test = split_clips(genre, clips_per_genre, test_fraction, seed)
                for i in range(clips_per_genre):
                    name = f"{genre}/{genre}.{i:05d}.wav"
                    audio = synthesize_clip(genre, clip_seed(seed, genre, i), seconds, sample_rate)
                    _write_wav(tmp / "wav" / name, audio, sample_rate)
                    lines["test" if i in test else "train"].append(name)
                    bar.update()
        (tmp / "split").mkdir()
        for split, names in lines.items():
            (tmp / "split" / f"{split}.txt").write_text("".join(f"{name}\n" for name in names))
        params = {"clips_per_genre": clips_per_genre, "seconds": seconds, "seed": seed, "genres": list(genres),
                  "test_fraction": test_fraction, "sample_rate": sample_rate}
        (tmp / MARKER).write_text(json.dumps(params, indent=2) + "\n")

    replace_dir(out, write)
    return out


@cli
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gtzan_tf.synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write (GTZAN layout)")
    parser.add_argument("--clips-per-genre", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=12.0, help="clip length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--genres", type=int, choices=(8, 10), default=8, help="the 8-genre subset or all 10")
    parser.add_argument("--test-fraction", type=float, default=0.25, help="test clips per genre (stratified)")
    parser.add_argument("--sample-rate", type=int, default=22050)
    args = parser.parse_args(argv)
    genres = GTZAN_8_GENRES if args.genres == 8 else GTZAN_10_GENRES
    out = generate_dataset(args.out, clips_per_genre=args.clips_per_genre, seconds=args.seconds, seed=args.seed,
                           genres=genres, test_fraction=args.test_fraction, sample_rate=args.sample_rate)
    counts = {s: len((out / "split" / f"{s}.txt").read_text().split()) for s in ("train", "test")}
    print(f"{out}: {len(genres)} genres x {args.clips_per_genre} clips of {args.seconds:g} s; "
          f"train {counts['train']}, test {counts['test']}")


if __name__ == "__main__":
    main()
