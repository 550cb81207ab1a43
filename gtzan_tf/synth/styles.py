"""Per-genre recipes: the Style / Part / Drums types, their step-pattern and chord notation, and the STYLES table."""
from __future__ import annotations

import re
from dataclasses import dataclass

from gtzan_tf.synth.instruments import Kit

VELOCITY = {"X": 1.0, "x": 0.75, "g": 0.35}  # pattern characters that start a note or hit
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "pent_major": (0, 2, 4, 7, 9),
    "blues": (0, 3, 5, 6, 7, 10),
}
FOUR_BARS = 64  # steps


@dataclass(frozen=True)
class Part:
    """One instrument's line: a step pattern and the notes it plays.

    `instrument` names an `instruments.INSTRUMENTS` entry, or alternatives (one chosen per clip): "piano|epiano".
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


def is_minor_tonic(symbol: str) -> bool:
    """Whether the chord stands on a minor tonic (i, i7, i5...): a progression with one is in a minor key."""
    return _CHORD.fullmatch(symbol).group(2) == "i"


def onsets(pattern: str, n_steps: int) -> list[tuple[int, int, float]]:
    """(step, held steps, velocity) of every hit of a repeating pattern."""
    if not pattern:
        return []
    holds = [len(pattern[i + 1:]) - len(pattern[i + 1:].lstrip("-")) + 1 for i in range(len(pattern))]
    return [(s, holds[s % len(pattern)], VELOCITY[pattern[s % len(pattern)]])
            for s in range(n_steps) if pattern[s % len(pattern)] in VELOCITY]
