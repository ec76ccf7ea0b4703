"""Whole-video prediction over windows with stitching, partition metrics, prediction CSVs.

Everything streams: windows are read from the caches in order and each video is stitched as soon
as its windows are predicted; labels are read one video at a time.

The challenge protocol: the CCC of a partition is computed over all labelled frames of all its
videos concatenated (not the mean of per-video CCCs); per-video CCCs are reported as well.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from fusion.ccc import RunningCCC, ccc
from fusion.data import EMBEDDING, ArrayVideo, Video, WindowDataset, make_loader
from fusion.windows import stitch, window_starts
from pipeline.core.atomic import write_text

PRED_FLOAT_FORMAT = "{:.6f}"


def input_pad(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Padding per modality ``[D_m]``: the model's input mean (standardised to 0) where it has one
    (a fine-tuning model, fusion.backbones, says its own: the cached modalities' means)."""
    if hasattr(model, "input_pad"):
        return model.input_pad()
    return {m: getattr(model, f"input_mean_{m}").detach().cpu().numpy() for m in model.modalities
            if hasattr(model, f"input_mean_{m}")}


def model_inputs(model: torch.nn.Module) -> dict[str, str]:
    """The input kind per modality a model consumes: its ``input_kinds`` attribute when it has one
    (``{modality: "embedding" | "faces" | "logmel"}``, see :mod:`fusion.data`), else embeddings."""
    return dict(getattr(model, "input_kinds", None) or {m: EMBEDDING for m in model.modalities})


def amp_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where the CUDA device supports it, else float16 (which needs a GradScaler)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, enabled: bool):
    """Mixed precision (:func:`amp_dtype` autocast) on CUDA when ``enabled``; a no-op otherwise."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=amp_dtype(device))
    return contextlib.nullcontext()


@torch.no_grad()
def predict_videos(model: torch.nn.Module, videos: Sequence[Video | ArrayVideo], window: int,
                   stride: int, batch_size: int = 12, amp: bool = False, num_workers: int = 0,
                   inputs: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
    """``{video id: [T, n_outputs] float32}``: per-frame predictions, streamed window by window.

    The videos' windows (:func:`fusion.windows.window_starts`) are read from the caches in order
    (:class:`fusion.data.WindowDataset`, ``num_workers`` reader processes), predicted in batches of
    ``batch_size`` windows in eval mode, and each video's overlapping predictions are averaged per
    frame (:func:`fusion.windows.stitch`) as soon as its last window is in. ``inputs``: the kind
    per modality (default :func:`model_inputs`).
    """
    model.eval()
    device = next(model.parameters()).device
    dataset = WindowDataset(videos, window, stride, pad=input_pad(model),
                            inputs=dict(inputs) if inputs else model_inputs(model))
    loader = make_loader(dataset, batch_size, shuffle=False, num_workers=num_workers,
                         pin_memory=device.type == "cuda")
    out: dict[str, np.ndarray] = {}
    current, parts = -1, []  # the video being stitched and its window predictions [K, C]

    def finish() -> None:
        if current >= 0:
            v = dataset.videos[current]
            out[v.id] = stitch(np.stack(parts), window_starts(v.n_frames, window, stride), v.n_frames)

    for batch in loader:
        feats = {m: x.to(device, non_blocking=True) for m, x in batch["features"].items()}
        if "face_present" in batch:  # visual faces (a fine-tuning model)
            feats["face_present"] = batch["face_present"].to(device, non_blocking=True)
        with autocast(device, amp):
            pred = model(feats).float().cpu().numpy()  # [B, K, C]
        for vi, p in zip(batch["video"].tolist(), pred):
            if vi != current:
                finish()
                current, parts = vi, []
            parts.append(p)
    finish()
    return out


def predict_video(model: torch.nn.Module, video: Video | ArrayVideo | Mapping[str, np.ndarray],
                  window: int, stride: int, batch_size: int = 12, amp: bool = False) -> np.ndarray:
    """Per-frame predictions ``[T, n_outputs]`` float32 of one video (see :func:`predict_videos`).

    ``video``: a cached :class:`~fusion.data.Video`, an :class:`~fusion.data.ArrayVideo`, or
    per-frame features ``{modality: [T, D_m]}`` in memory (all T long).
    """
    if isinstance(video, Mapping):
        video = ArrayVideo.from_frames(video)
    return predict_videos(model, [video], window, stride, batch_size, amp)[video.id]


def partition_metrics(videos: Sequence[Video | ArrayVideo], preds: Mapping[str, np.ndarray],
                      targets: Sequence[str]) -> dict:
    """CCC per target over all labelled frames of ``videos`` concatenated, their mean, per-video CCCs.

    Labels are read video by video; the partition CCC is accumulated (:class:`fusion.ccc.RunningCCC`),
    equal to the CCC of the concatenation. Returns ``{"ccc": {target: float}, "ccc_mean": float,
    "per_video": {id: {target: float}}, "labelled_frames": {target: int}, "frames": int}`` (NaN
    where undefined).
    """
    running = {t: RunningCCC() for t in targets}
    per_video: dict[str, dict[str, float]] = {}
    labelled = dict.fromkeys(targets, 0)
    frames = 0
    for v in videos:
        y, p = v.labels, preds[v.id]  # [T, C] each
        per_video[v.id] = {}
        for j, t in enumerate(targets):
            running[t].update(p[:, j], y[:, j])
            per_video[v.id][t] = ccc(p[:, j], y[:, j])
            labelled[t] += int((~np.isnan(y[:, j])).sum())
        frames += len(y)
    out = {"ccc": {t: running[t].value() for t in targets}, "per_video": per_video,
           "labelled_frames": labelled, "frames": frames}
    values = list(out["ccc"].values())
    out["ccc_mean"] = float(np.mean(values)) if not np.isnan(values).any() else float("nan")
    return out


def predictions_csv(pred: np.ndarray, labels: np.ndarray | None, targets: Sequence[str]) -> str:
    """CSV text: ``frame,<target>_pred,<target>_label,...`` one row per frame (0-based); an
    unlabeled frame's label is ``nan``; without ``labels`` only the prediction columns."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = ["frame"]
    for t in targets:
        header += [f"{t}_pred"] + ([f"{t}_label"] if labels is not None else [])
    w.writerow(header)
    for i in range(len(pred)):
        row = [str(i)]
        for j in range(len(targets)):
            row.append(PRED_FLOAT_FORMAT.format(pred[i, j]))
            if labels is not None:
                row.append("nan" if np.isnan(labels[i, j]) else PRED_FLOAT_FORMAT.format(labels[i, j]))
        w.writerow(row)
    return buf.getvalue()


def write_predictions(out_dir: str | Path, videos: Sequence[Video | ArrayVideo],
                      preds: Mapping[str, np.ndarray], targets: Sequence[str]) -> list[Path]:
    """Write ``<out_dir>/<video id>.csv`` per video (atomic); returns the paths."""
    out_dir = Path(out_dir)
    paths = []
    for v in videos:
        path = out_dir / f"{v.id}.csv"
        write_text(path, predictions_csv(preds[v.id], v.labels, targets))
        paths.append(path)
    return paths
