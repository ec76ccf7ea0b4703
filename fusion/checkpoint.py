"""Checkpoints: a state dict plus plain config, loadable with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain Python values only (no pickled objects):

- ``format``: :data:`FORMAT`;
- ``model``: the model's ``state_dict`` (CPU tensors). It includes the input standardisation
  buffers ``input_mean_<modality>`` / ``input_std_<modality>`` (``[D_m]``), i.e. the training-set
  feature statistics, so raw cached features go straight in;
- ``model_config``: ``RJCMA.config_dict()`` — the fusion section, ``input_dims`` ``{modality: D_m}``
  and ``n_outputs``; :func:`fusion.model.build_model` rebuilds the network from it. A fine-tuned
  model (``train.backbones: finetune``) records ``kind: backbones`` and its backbones' names and
  configs too (:func:`fusion.backbones.build_backbone_model`); its ``model`` state dict then holds
  the fine-tuned IR-50 / VGGish weights (``encoders.<modality>.backbone.*``);
- ``targets``: the output columns, e.g. ``["valence"]`` or ``["valence", "arousal"]``;
- ``window``, ``stride``: K and s for windowed prediction;
- ``params``: the resolved params the run used (:func:`recorded_params`: all but data/report);
- ``info``: run facts (fold, best epoch, validation CCC, ...).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from fusion.backbones import build_backbone_model, is_backbone_config
from fusion.model import build_model
from pipeline.core.atomic import atomic_path
from pipeline.core.params import Params, to_dict

FORMAT = "rjcma-checkpoint-1"


def recorded_params(params: Params) -> dict[str, Any]:
    """The params a checkpoint records: the model's and the recipe's, and the feature sections
    that ``predict`` needs to compute features exactly as in training. Not ``data`` or
    ``report``: changing those must not make DVC retrain."""
    return {"fusion": to_dict(params.fusion), "train": to_dict(params.train),
            "audio": to_dict(params.audio), "visual": to_dict(params.visual),
            "asr": to_dict(params.asr), "punctuation": to_dict(params.punctuation),
            "text": to_dict(params.text)}


def save_checkpoint(path: str | Path, model: torch.nn.Module, *, targets: Sequence[str], params: Params,
                    info: dict[str, Any] | None = None) -> Path:
    """Atomically write ``model`` and its config to ``path``."""
    path = Path(path)
    ckpt = {
        "format": FORMAT,
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "model_config": model.config_dict(),
        "targets": list(targets),
        "window": int(params.fusion.window),
        "stride": int(params.fusion.stride),
        "params": recorded_params(params),
        "info": dict(info or {}),
    }
    buf = io.BytesIO()  # not the temp file: torch.save names the archive after it (non-deterministic bytes)
    torch.save(ckpt, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, read with ``weights_only=True``; a clear error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found (train with `python -m stages.train`)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: not a readable rjcma checkpoint ({e})") from e
    found = ckpt.get("format") if isinstance(ckpt, dict) else None
    if found != FORMAT:
        raise ValueError(f"{path}: not an rjcma checkpoint (format {found!r}, expected {FORMAT!r})")
    return ckpt


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the trained model (eval mode, on ``device``) and return it with the checkpoint dict."""
    ckpt = read_checkpoint(path)
    config = ckpt["model_config"]
    model = build_backbone_model(config) if is_backbone_config(config) else build_model(config)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt
