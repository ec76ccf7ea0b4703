"""IR-50: the ArcFace "ir" ResNet-50 face backbone, in the key layout of ``res50_ir_0.887.pth``.

The paper's visual backbone (MS-Celeb-1M pre-training, FER+ fine-tuning), as the official
pipeline uses it: 40x40 RGB centre crops of the 48x48 faces, normalised with mean = std = 0.5,
-> 512-d embedding, L2-normalised.

State-dict layout (what :func:`load_ir50` reads)::

    input_layer.{0: Conv3x3 3->64, 1: BatchNorm2d, 2: PReLU}
    body.{0..23}.shortcut_layer    MaxPool2d(1, stride) when channels stay, else {0: Conv1x1, 1: BN}
    body.{0..23}.res_layer.{0: BN, 1: Conv3x3, 2: PReLU, 3: Conv3x3(stride), 4: BN}
    output_layer.{0: BatchNorm2d(512), 1: Dropout, 2: Flatten, 3: Linear(512*s*s, 512), 4: BatchNorm1d}

with units (3, 4, 14, 3) of depths (64, 128, 256, 512); the first stage keeps the resolution and
the others halve it, so a 40x40 input ends at s = 5. Checkpoints saved from the official wrapper
(keys ``backbone.*`` plus a classifier ``logits.*``) load too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.core.assets import ASSETS, AssetError, missing, resolve_local

NORM_MEAN = 0.5  # input normalisation (the official pipeline): (x / 255 - 0.5) / 0.5
NORM_STD = 0.5


@dataclass(frozen=True)
class IR50Config:
    input_size: int = 40  # square input side (the official 40x40 centre crops)
    embedding_dim: int = 512
    units: tuple[int, ...] = (3, 4, 14, 3)  # bottleneck units per stage (ResNet-50 "ir")
    depths: tuple[int, ...] = (64, 128, 256, 512)  # channels per stage
    first_stride: int = 1  # stride of the first stage (the later stages use 2)
    stem_channels: int = 64
    dropout: float = 0.4  # before the embedding Linear (training only)


def _conv_out(n: int, stride: int) -> int:
    """Side after a 3x3/pad 1 (or 1x1/pad 0) convolution of stride ``stride``."""
    return (n - 1) // stride + 1


def output_side(cfg: IR50Config) -> int:
    """Spatial side of the last feature map: 5 for a 40x40 input."""
    n = cfg.input_size
    for s in range(len(cfg.units)):
        n = _conv_out(n, cfg.first_stride if s == 0 else 2)
    return n


class BottleneckIR(nn.Module):
    """Pre-activation residual unit: BN-conv-PReLU-conv(stride)-BN plus a (projected) shortcut."""

    def __init__(self, in_ch: int, depth: int, stride: int):
        super().__init__()
        if in_ch == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_ch, depth, 1, stride, bias=False),
                                                nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.Conv2d(in_ch, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IR50(nn.Module):
    """``[B, 3, S, S]`` normalised RGB -> ``[B, embedding_dim]`` L2-normalised embeddings."""

    def __init__(self, cfg: IR50Config = IR50Config()):
        super().__init__()
        self.cfg = cfg
        c0 = cfg.stem_channels
        self.input_layer = nn.Sequential(nn.Conv2d(3, c0, 3, 1, 1, bias=False), nn.BatchNorm2d(c0),
                                         nn.PReLU(c0))
        units = []
        in_ch = c0
        for s, (n_units, depth) in enumerate(zip(cfg.units, cfg.depths, strict=True)):
            for u in range(n_units):
                stride = (cfg.first_stride if s == 0 else 2) if u == 0 else 1
                units.append(BottleneckIR(in_ch, depth, stride))
                in_ch = depth
        self.body = nn.Sequential(*units)
        side = output_side(cfg)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.Dropout(cfg.dropout),
            nn.Flatten(),
            nn.Linear(in_ch * side * side, cfg.embedding_dim),
            nn.BatchNorm1d(cfg.embedding_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_layer(x)  # [B, 64, S, S]
        x = self.body(x)  # [B, 512, s, s]
        x = self.output_layer(x)  # [B, 512]
        return F.normalize(x, dim=1)


def backbone_state_dict(sd: dict) -> dict:
    """Keep the backbone's keys: strip a ``backbone.`` prefix and drop a ``logits.*`` classifier."""
    if any(k.startswith("backbone.") for k in sd):
        sd = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    return {k: v for k, v in sd.items() if not k.startswith("logits.")}


def load_ir50(weights: str, cfg: IR50Config = IR50Config()) -> IR50:
    """IR-50 in eval mode with the weights of the ``res50_ir`` checkpoint at path ``weights``.

    A missing, unreadable or differently shaped file raises ``AssetError`` naming the file, the
    problem, where to get the checkpoint and the param (``visual.ir50_weights``).
    """
    asset = ASSETS["ir50"]
    if not weights:
        raise missing(asset, "", "visual.backbone = ir50 but visual.ir50_weights is empty")
    path: Path = resolve_local(asset, weights)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise missing(asset, str(path), f"not a readable torch state dict ({e})") from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise missing(asset, str(path), "not a state dict of tensors")
    sd = backbone_state_dict(sd)
    linear = sd.get("output_layer.3.weight")
    model = IR50(cfg)
    want = model.output_layer[3].weight.shape
    if linear is not None and tuple(linear.shape) != tuple(want):
        raise AssetError(f"{path}: output_layer.3.weight has shape {tuple(linear.shape)} but a "
                         f"{cfg.input_size}x{cfg.input_size} input needs {tuple(want)} "
                         f"(visual.crop_size must match the checkpoint's input size)")
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        first = " ".join(str(e).strip().splitlines()[:3])
        raise AssetError(f"{path}: not an IR-50 checkpoint in the res50_ir layout (input_layer, "
                         f"body.N.res_layer / shortcut_layer, output_layer): {first}") from e
    return model.eval()
