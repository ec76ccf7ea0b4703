"""The demo's voice: espeak-ng speech whose pitch, rate and loudness follow arousal, words that
follow valence, and the mouth-opening envelope."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np

from rjcma.demo.plan import VideoPlan, lerp, unit

# ---- speech ----
ESPEAK = "espeak-ng"
SPEECH_RATE = 22050  # espeak-ng's output rate; ffmpeg resamples (encode.AUDIO_RATE)
PITCH_RANGE = (15, 90)  # espeak-ng -p at arousal -1 .. +1
SPEED_RANGE = (130, 290)  # -s, words per minute
AMPLITUDE = 100  # espeak-ng -a; loudness is set by GAIN_DB instead (no clipping)
GAIN_DB = (-20.0, 0.0)  # speech gain at arousal -1 .. +1
WORD_GAP = (0.02, 0.06)  # seconds of silence between words
PAUSE_BASE = 0.1  # seconds between sentences, + PAUSE_CALM x (1 - arousal) / 2
PAUSE_CALM = 0.4
LEAD_IN = (0.1, 0.4)  # seconds of silence at the start
TRIM_LEVEL = 0.01  # of full scale: espeak-ng's leading/trailing silence is cut below it
ENVELOPE_REF = 0.1  # RMS (full scale = 1) that opens the mouth fully

# words graded by valence: level = round((valence + 1) * 2), 0 = very negative .. 4 = very positive
WORDS = (
    ("terrible", "awful", "horrible", "miserable", "dreadful", "furious", "tragic", "painful",
     "disgusting", "hopeless", "hateful", "disastrous"),
    ("sad", "tired", "bad", "worried", "boring", "lonely", "upset", "gloomy", "annoyed", "sorry",
     "difficult", "unhappy"),
    ("normal", "usual", "ordinary", "plain", "average", "regular", "okay", "standard", "typical",
     "moderate", "common", "routine"),
    ("good", "nice", "pleasant", "calm", "friendly", "glad", "fine", "sunny", "kind", "warm",
     "happy", "cheerful"),
    ("wonderful", "amazing", "fantastic", "lovely", "delighted", "brilliant", "excellent",
     "joyful", "perfect", "thrilled", "marvelous", "beautiful"),
)
TEMPLATES = (  # {} = a word of the sentence's valence level
    "i feel {} and {}",
    "this is {}",
    "everything seems {} today",
    "it was {} and {} again",
    "what a {} {} day",
    "the news is {}",
    "we are {} about it",
    "such a {} time",
)

WORDS = (
    ("terrible", "awful", "horrible", "miserable", "dreadful", "furious", "tragic", "painful",
     "disgusting", "hopeless", "hateful", "disastrous"),
    ("sad", "tired", "bad", "worried", "boring", "lonely", "upset", "gloomy", "annoyed", "sorry",
     "difficult", "unhappy"),
    ("normal", "usual", "ordinary", "plain", "average", "regular", "okay", "standard", "typical",
     "moderate", "common", "routine"),
    ("good", "nice", "pleasant", "calm", "friendly", "glad", "fine", "sunny", "kind", "warm",
     "happy", "cheerful"),
    ("wonderful", "amazing", "fantastic", "lovely", "delighted", "brilliant", "excellent",
     "joyful", "perfect", "thrilled", "marvelous", "beautiful"),
)
TEMPLATES = (  # {} = a word of the sentence's valence level
    "i feel {} and {}",
    "this is {}",
    "everything seems {} today",
    "it was {} and {} again",
    "what a {} {} day",
    "the news is {}",
    "we are {} about it",
    "such a {} time",
)


def sentence(rng: np.random.Generator, valence: float) -> list[str]:
    """The words of one sentence whose wording follows ``valence``."""
    level = int(np.clip(round((valence + 1) * 2), 0, len(WORDS) - 1))
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    fill = [WORDS[level][int(i)] for i in rng.choice(len(WORDS[level]), template.count("{}"), replace=False)]
    return template.format(*fill).split()


def synthesize(word: str, voice: str, pitch: int, speed: int, tmp: Path) -> np.ndarray:
    """espeak-ng speech of one word, leading/trailing silence trimmed → ``[n]`` float32 at SPEECH_RATE."""
    path = tmp / "word.wav"
    cmd = [ESPEAK, "-v", voice, "-p", str(pitch), "-s", str(speed), "-a", str(AMPLITUDE),
           "-w", str(path), word]
    subprocess.run(cmd, check=True, capture_output=True)
    with wave.open(str(path)) as w:
        if w.getframerate() != SPEECH_RATE or w.getnchannels() != 1:
            raise RuntimeError(f"espeak-ng wrote {w.getframerate()} Hz x {w.getnchannels()}; "
                               f"expected {SPEECH_RATE} Hz mono")
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    loud = np.flatnonzero(np.abs(x) > TRIM_LEVEL)
    return x[loud[0]:loud[-1] + 1] if loud.size else x[:0]


def speak(plan: VideoPlan, fps: float, rng: np.random.Generator, tmp: Path
          ) -> tuple[list[np.ndarray], list[dict]]:
    """Speech of the video's persons taking turns by sentence.

    Returns per person a ``[n_samples]`` float32 track at SPEECH_RATE (silent while the other
    speaks) and the word-level transcript ``[{"word", "start", "end"}]`` of the mix.
    """
    duration = plan.n_frames / fps
    n = int(round(duration * SPEECH_RATE))
    tracks = [np.zeros(n, np.float32) for _ in plan.persons]
    words = []
    t = rng.uniform(*LEAD_IN)
    for turn in range(10**6):
        who = turn % len(plan.persons)
        person = plan.persons[who]
        for text in sentence(rng, float(person.valence[min(int(t * fps), plan.n_frames - 1)])):
            u = unit(person.arousal[min(int(t * fps), plan.n_frames - 1)])
            x = synthesize(text, person.voice,
                           pitch=int(round(lerp(PITCH_RANGE, u))) + person.pitch_offset,
                           speed=int(round(lerp(SPEED_RANGE, u))), tmp=tmp)
            x = x * np.float32(10 ** (lerp(GAIN_DB, u) / 20))
            start = int(round(t * SPEECH_RATE))
            if start + x.size > n - 1:  # the video ends inside this word
                return tracks, words
            tracks[who][start:start + x.size] += x
            words.append({"word": text, "start": round(start / SPEECH_RATE, 3),
                          "end": round((start + x.size) / SPEECH_RATE, 3)})
            t = (start + x.size) / SPEECH_RATE + rng.uniform(*WORD_GAP)
        u = unit(person.arousal[min(int(t * fps), plan.n_frames - 1)])
        t += PAUSE_BASE + PAUSE_CALM * (1 - u) + rng.uniform(0, 0.1)
    return tracks, words


def envelope(track: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """Per-frame mouth opening ``[n_frames]`` in [0, 1]: RMS of each frame's audio / ENVELOPE_REF."""
    hop = SPEECH_RATE / fps
    out = np.zeros(n_frames, np.float32)
    for i in range(n_frames):
        seg = track[int(i * hop):int((i + 1) * hop)]
        if seg.size:
            out[i] = min(1.0, float(np.sqrt(np.mean(seg ** 2))) / ENVELOPE_REF)
    return out
