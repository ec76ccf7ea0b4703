"""VGGish (AudioSet) 128-d embeddings through torchvggish's own network definition.

torchvggish's ``vggish()`` always downloads its weights and PCA parameters; here the network is
built with ``torchvggish.torchvggish.VGG(make_layers(), postprocess=False)`` (no download, no PCA:
the paper uses the raw 128-d embedding) and the released state dict (``vggish-10086976.pth``,
key names ``features.*`` / ``embeddings.*``) is loaded from:

- a local path (``audio.vggish_weights: /path/to/vggish-10086976.pth``), or
- ``download``: torchvggish's own download through ``torch.hub`` (machines with internet; a file
  already in the torch hub cache is used without network). Offline, a clear
  :class:`~pipeline.core.assets.AssetError` says where to get the file and which param to set.

Layout (what the fine-tuning groups select by name, see fusion/unfreeze.py)::

    features.{0..13}   conv3x3 64 - pool - 128 - pool - 256, 256 - pool - 512, 512 - pool  (ReLUs)
    embeddings.{0: Linear(12288, 4096), 1: ReLU, 2: Linear(4096, 4096), 3: ReLU,
                4: Linear(4096, 128), 5: ReLU (only with ``relu``: torchvggish keeps it, the authors drop it)}

:class:`VGGishConfig` also describes smaller networks of the same layout (random init, for the
CPU demo of the fine-tuning path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvggish.torchvggish import VGG, VGGISH_WEIGHTS, make_layers

from pipeline.core.assets import ASSETS, AssetError, missing, resolve_local, sha256_file
from pipeline.core.device import prefetch, to_device

EMBEDDING_DIM = 128
DOWNLOAD = "download"


PATCH_SHAPE = (96, 64)  # log-mel rows x mel bands of one input patch


@dataclass(frozen=True)
class VGGishConfig:
    """The network's sizes; the defaults are VGGish (torchvggish's ``make_layers`` and ``VGG``)."""

    channels: tuple[int, ...] = (64, 128, 256, 256, 512, 512)  # conv widths
    pools: tuple[int, ...] = (0, 1, 3, 5)  # a 2x2 max-pool after these convs
    hidden: int = 4096  # width of the two hidden embedding layers
    embedding_dim: int = EMBEDDING_DIM

    @property
    def is_vggish(self) -> bool:
        return self == VGGishConfig()


def _features(cfg: VGGishConfig) -> nn.Sequential:
    if cfg.is_vggish:
        return make_layers()
    layers: list[nn.Module] = []
    in_ch = 1
    for i, c in enumerate(cfg.channels):
        layers += [nn.Conv2d(in_ch, c, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
        if i in cfg.pools:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        in_ch = c
    return nn.Sequential(*layers)


def build_vggish(relu: bool = True, cfg: VGGishConfig = VGGishConfig()) -> VGG:
    """The VGGish network (random weights, no PCA postprocessing), eval mode.

    ``relu`` False drops the final ReLU of ``embeddings`` (the authors' choice); a non-default
    ``cfg`` builds a smaller network with the same module names and forward pass.
    """
    model = VGG(_features(cfg), postprocess=False)
    if not cfg.is_vggish:
        side = (PATCH_SHAPE[0] >> len(cfg.pools), PATCH_SHAPE[1] >> len(cfg.pools))
        flat = cfg.channels[-1] * side[0] * side[1]
        model.embeddings = nn.Sequential(nn.Linear(flat, cfg.hidden), nn.ReLU(True),
                                         nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(True),
                                         nn.Linear(cfg.hidden, cfg.embedding_dim), nn.ReLU(True))
    if not relu:
        model.embeddings = nn.Sequential(*list(model.embeddings)[:-1])
    return model.eval()


def _state_dict_from_file(path: Path) -> dict:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or non-torch file
        raise missing(ASSETS["vggish"], str(path), f"not a readable torch state dict ({e})") from e
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise missing(ASSETS["vggish"], str(path), "not a state dict of tensors")
    return sd


def _download() -> tuple[dict, Path]:
    try:
        sd = torch.hub.load_state_dict_from_url(VGGISH_WEIGHTS, map_location="cpu",
                                                progress=False, weights_only=True)
    except Exception as e:  # offline: URLError / HTTPError / socket errors
        raise missing(ASSETS["vggish"], VGGISH_WEIGHTS, f"download failed: {e}") from e
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(VGGISH_WEIGHTS).name
    return sd, path


def load_vggish(weights: str, relu: bool = True) -> tuple[VGG, str]:
    """The VGGish model with weights from ``weights`` (a path or ``"download"``), eval mode;
    ``relu`` False drops the final ReLU (``audio.vggish_relu``).

    Returns ``(model, sha256 of the weights file)``; raises ``AssetError`` naming the file, where
    to get it and the param (``audio.vggish_weights``) for a missing or wrong file.
    """
    if weights == DOWNLOAD:
        sd, path = _download()
    else:
        path = resolve_local(ASSETS["vggish"], weights)
        sd = _state_dict_from_file(path)
    model = build_vggish(relu)
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise AssetError(f"{path}: not a VGGish state dict in torchvggish's released key layout "
                         f"(features.*, embeddings.*): {' '.join(first[:3])} - get "
                         f"{ASSETS['vggish'].filename} from {ASSETS['vggish'].url} and set "
                         f"`{ASSETS['vggish'].param}`") from e
    return model.eval(), sha256_file(path) if path.is_file() else ""


@torch.no_grad()
def embed_patches(model: VGG, get_patches: Callable[[slice], np.ndarray], n: int,
                  batch_size: int) -> np.ndarray:
    """VGGish embeddings of ``n`` log-mel patches fetched batch by batch: ``[n, 128]`` float32.

    get_patches(slice) returns the patches ``[b, 96, 64]`` of that slice of 0..n-1, so that the
    ``[n, 96, 64]`` array is never held in memory; the next batches are cut in a background thread
    while the model runs (on its own device and dtype).
    """
    w = next(model.parameters())
    out = np.zeros((n, EMBEDDING_DIM), np.float32)
    slices = [slice(b0, min(n, b0 + batch_size)) for b0 in range(0, n, batch_size)]
    batches = ((sl, np.ascontiguousarray(get_patches(sl)[:, None], np.float32)) for sl in slices)
    for sl, x in prefetch(batches):  # x: [b, 1, 96, 64]
        out[sl] = model(to_device(x, w.device, w.dtype)).float().cpu().numpy()
    return out
