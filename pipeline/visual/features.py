"""Visual features: faces per frame (see :mod:`pipeline.visual.faces`) and per-frame embeddings.

Backbones (``visual.backbone``); both read the ``crop_size`` x ``crop_size`` centre crop of each
stored face, and a frame without a face gets an all-zero embedding:

- ``pixels`` (built-in default, needs no weights): the crop in grayscale (ITU-R 601 luma),
  area-downsampled to ``pixels_size`` x ``pixels_size`` and standardised per frame (zero mean,
  unit variance over its pixels) -> ``pixels_size**2``-d (256-d by default). A crude but honest
  appearance feature so that a fresh machine runs end to end.
- ``ir50``: the paper's IR-50 (:mod:`pipeline.visual.ir50`) from ``visual.ir50_weights``; RGB crop
  normalised with mean = std = 0.5 -> 512-d, L2-normalised. It runs on ``visual.device`` (auto:
  CUDA when available) at ``visual.precision``, batches of ``visual.batch_size`` frames, with
  ``visual.threads`` torch threads on a CPU (0 = every core); see :mod:`pipeline.core.device`.

Stored per video: ``faces`` ``[n_frames, S, S, 3]`` uint8 RGB, ``face_present`` ``[n_frames]``
bool, ``embedding`` ``[n_frames, D]`` float32.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.core.cache import CacheKey
from pipeline.core.device import PREFETCH_DEPTH, prefetch
from pipeline.core.manifest import crops_fingerprint
from pipeline.core.params import VisualParams, to_dict
from pipeline.visual.faces import iter_faces, resolve_source
from pipeline.visual.ir50 import NORM_MEAN, NORM_STD

log = logging.getLogger(__name__)

FEATURE_VERSION = 1  # bump when the code changes what is stored (invalidates caches)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # RGB -> gray (ITU-R 601)
PIXELS_STD_FLOOR = 1e-3  # pixels backbone: std floor (gray in [0, 1]) for flat images
NO_FACE = ("no face",)  # the stage condition of a video with faces_found == 0


def centre_crop(faces: np.ndarray, crop: int) -> np.ndarray:
    """``[B, S, S, C]`` -> the ``[B, crop, crop, C]`` centre crop (the official evaluation crop)."""
    s = faces.shape[1]
    if crop > s:
        raise ValueError(f"visual.crop_size {crop} is larger than visual.face_size {s}")
    o = (s - crop) // 2
    return faces[:, o:o + crop, o:o + crop]


def pixels_embed(faces: np.ndarray, present: np.ndarray, crop: int, size: int) -> np.ndarray:
    """The built-in backbone: ``[B, S, S, 3]`` uint8 RGB -> ``[B, size * size]`` float32."""
    gray = centre_crop(faces, crop).astype(np.float32) @ LUMA / 255.0  # [B, crop, crop]
    out = np.zeros((len(faces), size * size), np.float32)
    for b in np.flatnonzero(present):
        small = cv2.resize(gray[b], (size, size), interpolation=cv2.INTER_AREA).reshape(-1)
        out[b] = (small - small.mean()) / max(float(small.std()), PIXELS_STD_FLOOR)
    return out


def ir50_embed(model, faces: np.ndarray, present: np.ndarray, crop: int) -> np.ndarray:
    """IR-50: ``[B, S, S, 3]`` uint8 RGB -> ``[B, 512]`` float32 (zeros where no face).

    Runs on the model's device in the model's dtype (``visual.device``, ``visual.precision``);
    the input normalisation is float32 on the CPU whatever the device (exact at fp32).
    """
    import torch

    from pipeline.core.device import to_device

    out = np.zeros((len(faces), model.cfg.embedding_dim), np.float32)
    idx = np.flatnonzero(present)
    if len(idx) == 0:
        return out
    x = centre_crop(faces[idx], crop).astype(np.float32) / 255.0
    x = (x - NORM_MEAN) / NORM_STD
    w = next(model.parameters())
    with torch.no_grad():
        t = to_device(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), w.device, w.dtype)  # [b,3,c,c]
        out[idx] = model(t).float().cpu().numpy()
    return out


@dataclass
class VisualBackbone:
    """A loaded backbone: ``embed(faces, present) -> [B, dim]`` plus what the cache records."""

    name: str
    dim: int
    embed: Callable[[np.ndarray, np.ndarray], np.ndarray]
    versions: dict = field(default_factory=dict)
    model: Any = None  # the torch module (IR-50) on its device and dtype, None for pixels


def load_backbone(params: VisualParams) -> VisualBackbone:
    """Build the configured backbone once (IR-50 weights are loaded here; clear errors)."""
    versions = {"rjcma_visual": FEATURE_VERSION, "opencv": cv2.__version__, "numpy": np.__version__}
    if params.backbone == "pixels":
        return VisualBackbone(
            "pixels", params.pixels_size ** 2,
            lambda f, p: pixels_embed(f, p, params.crop_size, params.pixels_size), versions)
    import torch  # backbone = ir50 (VisualParams allows pixels | ir50)

    from pipeline.core.assets import sha256_file
    from pipeline.core.device import place
    from pipeline.visual.ir50 import IR50Config, load_ir50

    model = load_ir50(params.ir50_weights, IR50Config(input_size=params.crop_size))
    model, _, _ = place(model, params.device, params.precision, params.threads, "visual.device")
    versions.update(torch=torch.__version__, ir50_sha256=sha256_file(params.ir50_weights))
    return VisualBackbone("ir50", model.cfg.embedding_dim,
                          lambda f, p: ir50_embed(model, f, p, params.crop_size), versions, model)


RUNTIME_KEYS = ("batch_size", "device", "threads", "workers")  # where/how fast, not what


def cache_settings(params: VisualParams, source: str) -> dict:
    """The visual params that shape the content of a cache whose faces come from ``source``
    (crops | frames | detect), recorded in its attrs: changing the detector's settings does not
    invalidate caches made from crops, nor ``pixels_size`` those made with IR-50. Where and how
    fast the backbone runs (``RUNTIME_KEYS``) is not recorded; ``precision`` only when IR-50
    runs at other than fp32 (so fp32 caches are the same wherever they were made)."""
    settings = to_dict(params)
    for key in RUNTIME_KEYS:
        settings.pop(key)
    if params.backbone != "ir50" or params.precision == "fp32":
        del settings["precision"]
    settings["face_source"] = source
    if source != "detect":
        for k in [k for k in settings if k.startswith("detect_")]:
            del settings[k]
    del settings["pixels_size" if params.backbone == "ir50" else "ir50_weights"]
    return settings


def source_hash(content_hash: str, source: str, crops_dir: str | Path | None) -> str:
    """The video's content hash, plus the crops' fingerprint when faces come from crops."""
    if source == "crops" and Path(crops_dir).is_dir():  # type: ignore[arg-type]
        return f"{content_hash}+crops:{crops_fingerprint(crops_dir)}"  # type: ignore[arg-type]
    return content_hash


def visual_cache_key(video_id: str, fps: float, n_frames: int, params: VisualParams, source: str,
                     backbone: VisualBackbone, content_hash: str,
                     crops_dir: str | Path | None = None) -> CacheKey:
    """The key of one video's visual cache whose faces come from the concrete ``source``
    (:func:`pipeline.visual.faces.resolve_source`, settled once per video)."""
    return CacheKey("visual", video_id, fps, n_frames, backbone.name, cache_settings(params, source),
                    backbone.versions, source_hash(content_hash, source, crops_dir))


def visual_features_for(video_path: str | Path | None, n_frames: int, params: VisualParams,
                        crops_dir: str | Path | None = None,
                        backbone: VisualBackbone | None = None,
                        source: str | None = None) -> tuple[dict, dict]:
    """Visual cache content of one video, streamed in batches of ``params.batch_size`` frames
    (the next batches are read and decoded in a background thread while the backbone runs).

    ``source``: the concrete face source (crops | frames | detect) when the caller has settled it
    (the stage does, once per video, for the cache key too); else resolved here from
    ``params.face_source``.

    Returns ``(arrays, attrs)``: arrays ``faces`` ``[n_frames, S, S, 3]`` uint8, ``face_present``
    ``[n_frames]`` bool, ``embedding`` ``[n_frames, D]`` float32; attrs ``face_source`` (the
    concrete source used), ``backbone``, ``dim``, ``faces_found``.
    """
    backbone = backbone or load_backbone(params)
    source = source or resolve_source(params.face_source, crops_dir)
    s = params.face_size
    faces = np.zeros((n_frames, s, s, 3), np.uint8)
    present = np.zeros(n_frames, bool)
    emb = np.zeros((n_frames, backbone.dim), np.float32)
    i = 0
    batches = iter_faces(video_path, n_frames, params, crops_dir, source)
    for f, p in prefetch(batches, PREFETCH_DEPTH if params.workers else 0):  # decode ahead
        faces[i:i + len(f)] = f
        present[i:i + len(f)] = p
        emb[i:i + len(f)] = backbone.embed(f, p)
        i += len(f)
    found = int(present.sum())
    if n_frames and found == 0:
        log.debug("%s: no face in any of its %d frames; embeddings are zeros",
                    video_path or crops_dir, n_frames)
    attrs = {"face_source": source,
             "backbone": backbone.name, "dim": backbone.dim, "faces_found": found}
    return {"faces": faces, "face_present": present, "embedding": emb}, attrs
