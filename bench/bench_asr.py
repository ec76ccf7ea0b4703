"""ASR accuracy on the demo: word error rate and word-timestamp error against its known transcripts.

    python bench/bench_asr.py [--engine whisper] [--videos demo01 demo10 ...] [--beam 1]

Decodes each demo video's audio (``data/demo/videos/<id>.mp4`` → 16 kHz wav, as extract_audio
does) with the configured engine of ``params.yaml`` (``asr.*``; ``--engine``/``--beam`` override)
and compares the words with ``data/demo/transcripts/<id>.json`` (the words espeak-ng was given, with
their true times). Words are compared lower case without punctuation (both engines' format).

- WER = (substitutions + deletions + insertions) / reference words, over all videos, from a
  Levenshtein alignment of the word sequences;
- timestamp error: over the words the alignment matches exactly, the mean and 90th percentile of
  |start - true start| and |end - true end| in seconds;
- real-time factor: decoding seconds / audio seconds (model loading excluded).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.core.media import extract_wav, read_wav  # noqa: E402
from pipeline.core.params import load_params  # noqa: E402
from pipeline.text.asr import load_recognizer  # noqa: E402
from pipeline.text.whisper import clean_word  # noqa: E402

DEMO = ROOT / "data" / "demo"


def align(ref: list[str], hyp: list[str]) -> tuple[int, int, int, list[tuple[int, int]]]:
    """Levenshtein alignment of word lists → (substitutions, deletions, insertions, matched pairs
    ``(i_ref, i_hyp)`` of equal words)."""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), np.int64)
    d[:, 0], d[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    s = de = ins = 0
    pairs = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            if ref[i - 1] == hyp[j - 1]:
                pairs.append((i - 1, j - 1))
            else:
                s += 1
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            de, i = de + 1, i - 1
        else:
            ins, j = ins + 1, j - 1
    return s, de, ins, pairs[::-1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--params", default=str(ROOT / "params.yaml"))
    p.add_argument("--engine", choices=("vosk", "whisper"), default=None)
    p.add_argument("--beam", type=int, default=None, help="asr.whisper_beam override")
    p.add_argument("--videos", nargs="*", default=None, help="demo ids (default: all)")
    args = p.parse_args()
    asr = load_params(args.params).asr
    if args.beam:
        asr = dataclasses.replace(asr, whisper_beam=args.beam)
    t0 = time.perf_counter()
    rec = load_recognizer(asr, args.engine or ("whisper" if asr.engine == "transcripts" else None))
    load_s = time.perf_counter() - t0
    videos = args.videos or sorted(v.stem for v in (DEMO / "videos").glob("*.mp4"))
    tot = dict(n=0, s=0, d=0, i=0, audio=0.0, decode=0.0)
    dstart, dend = [], []
    print(f"# {rec.source} {json.dumps(rec.settings, sort_keys=True)}; load {load_s:.1f} s")
    print("| video | ref words | WER | mean abs start / end error (s) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for vid in videos:
            wav = extract_wav(DEMO / "videos" / f"{vid}.mp4", Path(tmp) / f"{vid}.wav")
            x, sr = read_wav(wav)
            t = time.perf_counter()
            words = rec.words(x, sr)
            tot["decode"] += time.perf_counter() - t
            tot["audio"] += len(x) / sr
            truth = json.loads((DEMO / "transcripts" / f"{vid}.json").read_text())
            ref = [clean_word(w["word"]) for w in truth]
            hyp = [w.word for w in words]
            s, de, ins, pairs = align(ref, hyp)
            for a, b in pairs:
                dstart.append(abs(words[b].start - truth[a]["start"]))
                dend.append(abs(words[b].end - truth[a]["end"]))
            tot["n"] += len(ref)
            tot["s"], tot["d"], tot["i"] = tot["s"] + s, tot["d"] + de, tot["i"] + ins
            ds = [abs(words[b].start - truth[a]["start"]) for a, b in pairs]
            de_ = [abs(words[b].end - truth[a]["end"]) for a, b in pairs]
            err = (f"{np.mean(ds):.3f} / {np.mean(de_):.3f}" if pairs else "n/a")
            print(f"| {vid} | {len(ref)} | {(s + de + ins) / max(len(ref), 1):.2f} | {err} |")
    wer = (tot["s"] + tot["d"] + tot["i"]) / max(tot["n"], 1)
    print(f"\nall {len(videos)} videos: {tot['n']} reference words, WER {wer:.3f} "
          f"(substitutions {tot['s']}, deletions {tot['d']}, insertions {tot['i']}); "
          f"{len(dstart)} words matched exactly")
    if dstart:
        print(f"timestamp error over matched words: start mean {np.mean(dstart):.3f} s "
              f"(p90 {np.percentile(dstart, 90):.3f}), end mean {np.mean(dend):.3f} s "
              f"(p90 {np.percentile(dend, 90):.3f})")
    print(f"decoding: {tot['decode']:.1f} s for {tot['audio']:.1f} s of audio "
          f"(real-time factor {tot['decode'] / tot['audio']:.2f}); {platform.machine()}, "
          f"{__import__('os').cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
