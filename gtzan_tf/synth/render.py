"""Rendering: one clip of a genre, from its style's parts and drums through the mix to mastering."""
from __future__ import annotations

import numpy as np
from scipy import signal

from gtzan_tf.errors import UserError
from gtzan_tf.synth.instruments import F32, INSTRUMENTS, Instrument, butter_sos, drum_sound, play_note, white_noise
from gtzan_tf.synth.styles import FOUR_BARS, SCALES, STYLES, Drums, Part, Style, is_minor_tonic, onsets, parse_chord

DRUM_GAINS = {"kick": 1.0, "snare": 0.8, "hat": 0.5, "open_hat": 0.45, "ride": 0.5, "crash": 0.5}


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
        minor = any(is_minor_tonic(s) for s in symbols)
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


def _render_part(part: Part, song: _Song, notes: dict) -> np.ndarray:
    """Play one part: resolve every onset to MIDI notes, render them (cached per pitch and length), place them."""
    rng, sr = song.rng, song.sr
    inst = INSTRUMENTS[str(rng.choice(part.instrument.split("|")))]
    track = np.zeros(song.n, F32)
    state: dict = {"prev": None, "motif": None}
    for k, (step, hold, velocity) in enumerate(onsets(str(rng.choice(part.rhythm)), song.n_steps)):
        midis = _pitches(part.notes[k % len(part.notes)], k, step, hold, part, song, state)
        n_on = int(round(hold * song.step * sr))
        start = song.time(step)
        gain = velocity * rng.uniform(0.85, 1.0)
        if k % 2:  # alternate down and up strums
            midis = midis[::-1]
        for j, midi in enumerate(midis):
            key = (inst, midi, n_on)
            if key not in notes:
                notes[key] = play_note(inst, song.freq(midi), n_on, sr, rng)
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


def _distort(track: np.ndarray, drive: float, sr: int) -> np.ndarray:
    """tanh overdrive followed by a speaker-cabinet lowpass."""
    peak = float(np.abs(track).max())
    if peak == 0:
        return track
    return signal.sosfilt(butter_sos(min(5000.0, 0.45 * sr), "lowpass", sr), np.tanh(track * (drive / peak)))


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
        sound = drum_sound(voice, drums.kit, song.sr, rng)
        gain = DRUM_GAINS[voice] * rng.uniform(0.8, 1.2)
        for step, _, velocity in onsets(pattern, song.n_steps):
            _add(out, sound, int(song.time(step) * song.sr), gain * velocity * rng.uniform(0.85, 1.0))
    return out


def _reverb(x: np.ndarray, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A dark room: a decaying-noise impulse response applied at a quarter of the sample rate; same RMS as x."""
    q = 4
    m = len(x) // q
    low = sum(x[j:m * q:q] for j in range(q))
    length = max(2, int(seconds * sr / q))
    impulse = white_noise(length, rng) * np.exp(np.linspace(0, -6.9, length, dtype=F32))
    wet = signal.fftconvolve(low, impulse)[:m + 1]
    out = np.zeros_like(x)
    grid = out[:m * q].reshape(m, q)
    for j in range(q):  # linear interpolation back to the full rate
        grid[:, j] = wet[:m] + (wet[1:] - wet[:m]) * (j / q)
    return out * (_rms(x) / (_rms(out) + 1e-12))


def _master(mix: np.ndarray, style: Style, song: _Song) -> np.ndarray:
    """Reverb, tone, slow dynamics, hiss / crackle, then peak-normalise to -12..-1 dBFS."""
    rng, sr, n = song.rng, song.sr, song.n
    lows = signal.sosfilt(butter_sos(1000.0, "lowpass", sr), mix)
    tilt = 10 ** (rng.uniform(-5, 5) / 20)  # recording / mastering differences: +-5 dB tilt around 1 kHz
    mix = lows / tilt + (mix - lows) * tilt
    if style.reverb:
        mix = mix + style.reverb * rng.uniform(0.7, 1.3) * _reverb(mix, style.room * rng.uniform(0.7, 1.3), sr, rng)
    if style.lowpass:
        cutoff = min(round(style.lowpass * rng.uniform(0.7, 1.4), -2), 0.45 * sr)
        mix = signal.sosfilt(butter_sos(cutoff, "lowpass", sr), mix)
    if style.swell:
        t = np.arange(n, dtype=F32) / F32(sr)
        mix = mix * (1 + style.swell * np.sin(F32(2 * np.pi / rng.uniform(6, 12)) * t + F32(rng.uniform(0, 2 * np.pi))))
    rms = _rms(mix) + 1e-12
    hiss = rms * 10 ** ((style.noise + rng.uniform(-8, 8)) / 20)
    mix = mix + white_noise(n, rng) * (hiss * 3**0.5)  # uniform in [-1, 1) has std 1/sqrt(3)
    if style.crackle:
        clicks = rng.integers(0, n, int(rng.uniform(5, 15) * n / sr))
        mix[clicks] += rng.uniform(-4, 4, len(clicks)).astype(F32) * rms
    peak = float(np.abs(mix).max()) + 1e-12
    return (mix * (10 ** (rng.uniform(-12, -1) / 20) / peak)).astype(F32)
