"""Sound sources: the pitched instruments (wavetable, FM, plucked string), their notes, and the drum one-shots."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import signal

F32 = np.float32
TABLE = 4096  # wavetable length (a power of two)


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
class Kit:
    """Drum sounds: kick (start Hz, end Hz, decay s, click level), snare kind and decays, hat band."""

    kick: tuple[float, float, float, float]
    snare: str  # snare | clap | rim | brush
    snare_decay: float
    hat_decay: float
    bright: float  # Hz, lower edge of the hi-hat / cymbal noise band


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


@functools.lru_cache(maxsize=256)
def butter_sos(cutoff: float | tuple[float, float], btype: str, sr: int) -> np.ndarray:
    """Second-order Butterworth sections (float32), cached: designing costs more than filtering."""
    return signal.butter(2, cutoff, btype, fs=sr, output="sos").astype(F32)


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform white noise in [-1, 1) (float32)."""
    return rng.random(n, dtype=F32) * 2 - 1


def play_note(inst: Instrument, freq: float, n_on: int, sr: int, rng: np.random.Generator) -> np.ndarray:
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


def _band_noise(n: int, lo: float, hi: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    hi = min(hi, 0.45 * sr)
    return signal.sosfilt(butter_sos((min(lo, 0.5 * hi), hi), "bandpass", sr), white_noise(n, rng))


def _metallic(t: np.ndarray, base: float) -> np.ndarray:
    """Six inharmonic square waves (the 808 cymbal recipe)."""
    ratios = np.array([1.0, 1.48, 1.8, 2.55, 2.63, 3.9], F32)[:, None]
    return ((base * ratios * t) % 1 < 0.5).mean(axis=0, dtype=F32) * 2 - 1


def drum_sound(voice: str, kit: Kit, sr: int, rng: np.random.Generator) -> np.ndarray:
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
    sizzle = white_noise(len(t), rng)
    if voice in ("hat", "open_hat"):
        sizzle += 0.5 * _metallic(t, base)
    elif voice == "ride":
        sizzle += 0.8 * sum(np.sin(F32(2 * np.pi * base * 1.3 * r) * t) for r in (1.0, 1.51, 2.13, 2.76))
    sizzle = signal.sosfilt(butter_sos(min(kit.bright, 0.4 * sr), "highpass", sr), sizzle)
    if voice == "crash":
        sizzle += 0.5 * _band_noise(len(t), 3000, 9000, sr, rng)
    return sizzle * np.exp(-t / decay)
