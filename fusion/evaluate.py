"""Whole-video prediction over windows with stitching, partition metrics, prediction CSVs.

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

from fusion.ccc import ccc
from fusion.data import Video
from fusion.windows import cut_window, stitch, window_starts
from pipeline.core.atomic import write_text

PRED_FLOAT_FORMAT = "{:.6f}"


def input_pad(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Padding per modality ``[D_m]``: the model's input mean (standardised to 0), else zeros."""
    return {m: getattr(model, f"input_mean_{m}").detach().cpu().numpy() for m in model.modalities}


def autocast(device: torch.device, enabled: bool):
    """Mixed precision (float16 autocast) on CUDA when ``enabled``; a no-op context otherwise."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict_video(model: torch.nn.Module, features: Mapping[str, np.ndarray], window: int, stride: int,
                  batch_size: int = 12, amp: bool = False) -> np.ndarray:
    """Per-frame predictions ``[T, n_outputs]`` float32 of one video.

    ``features``: modality -> ``[T, D_m]`` raw per-frame features (all T long). The video is cut
    into windows (:func:`fusion.windows.window_starts`), predicted in batches of ``batch_size``
    windows in eval mode, and overlapping predictions are averaged per frame.
    """
    model.eval()
    device = next(model.parameters()).device
    lengths = {m: x.shape[0] for m, x in features.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"modalities disagree on the frame count: {lengths}")
    n_frames = next(iter(lengths.values()))
    pad = input_pad(model)
    starts = window_starts(n_frames, window, stride)
    outs = []
    for i in range(0, len(starts), batch_size):
        batch = {}
        for m in model.modalities:
            ws = []
            for s in starts[i:i + batch_size]:
                w, mask = cut_window(np.asarray(features[m], np.float32), int(s), window)
                w[~mask] = pad[m]
                ws.append(w)
            batch[m] = torch.from_numpy(np.stack(ws)).to(device)
        with autocast(device, amp):
            outs.append(model(batch).float().cpu().numpy())
    return stitch(np.concatenate(outs), starts, n_frames)


def predict_videos(model: torch.nn.Module, videos: Sequence[Video], window: int, stride: int,
                   batch_size: int = 12, amp: bool = False) -> dict[str, np.ndarray]:
    """``{video id: [T, n_outputs]}`` for each video."""
    return {v.id: predict_video(model, v.features, window, stride, batch_size, amp) for v in videos}


def partition_metrics(videos: Sequence[Video], preds: Mapping[str, np.ndarray],
                      targets: Sequence[str]) -> dict:
    """CCC per target over all labelled frames of ``videos`` concatenated, their mean, per-video CCCs.

    Returns ``{"ccc": {target: float}, "ccc_mean": float, "per_video": {id: {target: float}},
    "labelled_frames": {target: int}, "frames": int}`` (NaN where undefined).
    """
    y = np.concatenate([v.labels for v in videos])
    p = np.concatenate([preds[v.id] for v in videos])
    out = {
        "ccc": {t: ccc(p[:, j], y[:, j]) for j, t in enumerate(targets)},
        "per_video": {v.id: {t: ccc(preds[v.id][:, j], v.labels[:, j]) for j, t in enumerate(targets)}
                      for v in videos},
        "labelled_frames": {t: int((~np.isnan(y[:, j])).sum()) for j, t in enumerate(targets)},
        "frames": int(len(y)),
    }
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


def write_predictions(out_dir: str | Path, videos: Sequence[Video], preds: Mapping[str, np.ndarray],
                      targets: Sequence[str]) -> list[Path]:
    """Write ``<out_dir>/<video id>.csv`` per video (atomic); returns the paths."""
    out_dir = Path(out_dir)
    paths = []
    for v in videos:
        path = out_dir / f"{v.id}.csv"
        write_text(path, predictions_csv(preds[v.id], v.labels, targets))
        paths.append(path)
    return paths
