"""VGGish (AudioSet) 128-d embeddings through torchvggish's own network definition.

torchvggish's ``vggish()`` always downloads its weights and PCA parameters; here the network is
built with ``torchvggish.torchvggish.VGG(make_layers(), postprocess=False)`` (no download, no PCA:
the paper uses the raw 128-d embedding) and the released state dict (``vggish-10086976.pth``,
key names ``features.*`` / ``embeddings.*``) is loaded from:

- a local path (``audio.vggish_weights: /path/to/vggish-10086976.pth``), or
- ``download``: torchvggish's own download through ``torch.hub`` (machines with internet; a file
  already in the torch hub cache is used without network). Offline, a clear
  :class:`~pipeline.core.assets.AssetError` says where to get the file and which param to set.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torchvggish.torchvggish import VGG, VGGISH_WEIGHTS, make_layers

from pipeline.core.assets import ASSETS, AssetError, missing, resolve_local, sha256_file

EMBEDDING_DIM = 128
DOWNLOAD = "download"


def build_vggish() -> VGG:
    """The VGGish network with random weights, no PCA postprocessing; eval mode."""
    return VGG(make_layers(), postprocess=False).eval()


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


def load_vggish(weights: str) -> tuple[VGG, str]:
    """The VGGish model with weights from ``weights`` (a path or ``"download"``), eval mode.

    Returns ``(model, sha256 of the weights file)``; raises ``AssetError`` naming the file, where
    to get it and the param (``audio.vggish_weights``) for a missing or wrong file.
    """
    if weights == DOWNLOAD:
        sd, path = _download()
    else:
        path = resolve_local(ASSETS["vggish"], weights)
        sd = _state_dict_from_file(path)
    model = build_vggish()
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
    ``[n, 96, 64]`` array is never held in memory.
    """
    device = next(model.parameters()).device
    out = np.zeros((n, EMBEDDING_DIM), np.float32)
    for b0 in range(0, n, batch_size):
        sl = slice(b0, min(n, b0 + batch_size))
        x = torch.from_numpy(np.ascontiguousarray(get_patches(sl), np.float32))[:, None]  # [b,1,96,64]
        out[sl] = model(x.to(device)).float().cpu().numpy()
    return out
