"""The cross-fold report: CCC per fold and target and the mean over folds, plots, test predictions.

Reads the runs of exactly the configured folds x targets, ``results/train/<fold>-<target>/``
(written by ``python -m stages.train``): ``metrics.json`` (validation CCC of the best epoch),
``curves.json``, ``predictions/<video>.csv`` (validation videos, ``frame,<t>_pred,<t>_label``) and
``checkpoint.pt``. Result folders that are not configured (e.g. left over from an earlier fold
list) are never read.

Writes into one report directory (see :func:`write_report`)::

    metrics.json                   {"ccc": {target: mean over folds, "mean": mean over targets},
                                    "ccc_std": {target: std over folds}, "folds": {fold: {target: ccc}},
                                    "best_epoch": {"<fold>-<target>": epoch}}
    curves/<fold>-<target>.csv     epoch, train_loss, val_ccc, lr ... (for `dvc plots`)
    traces/<fold>-<target>-<video>.csv   frame, label, predicted (validation videos, for `dvc plots`)
    png/curves-<fold>-<target>.png       training curves (matplotlib)
    png/trace-<fold>-<target>-<video>.png  predicted vs true over time
    test/<video>.txt               the challenge format: header ``valence,arousal``, one row per frame
    submission.csv                 the ABAW submission file: ``image_location,valence,arousal``, one
                                   row per frame of the organisers' list (``report.submission_list``, a
                                   file in conf/lists: pipeline/dataset/lists.py)
                                   or of every test video, ``<trial>/00001.jpg`` naming (1-based)

Test predictions: each fold's model of a target predicts every test video, and the report averages
the per-frame predictions over the folds (an ensemble of the cross-validation models).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusion.checkpoint import load_checkpoint
from fusion.curves import plot_curves
from fusion.data import open_videos
from fusion.evaluate import model_inputs, predict_videos
from fusion.train import JOINT_TARGET
from pipeline.core import layout
from pipeline.core.atomic import atomic_dir, atomic_path, json_safe, write_json, write_text
from pipeline.dataset.lists import FRAME_LIST_HEADER as SUBMISSION_HEADER
from pipeline.dataset.lists import frame_list

CHALLENGE_TARGETS = ("valence", "arousal")  # column order of the challenge's prediction files
SUBMISSION = "submission.csv"
TRACE_SIZE = (8.0, 2.8)  # inches
PLOT_DPI = 100
FLOAT_FORMAT = "{:.6f}"

log = logging.getLogger("rjcma.report")


class ReportError(ValueError):
    """A configured run whose results are missing or unreadable; the message names the file."""


@dataclass
class Run:
    """One finished training run (fold x target) as the trainer left it."""

    fold: int
    target: str
    dir: Path
    metrics: dict  # the run's metrics.json
    curves: list[dict]  # curves.json rows; an undefined value (null) as NaN

    @property
    def name(self) -> str:
        return f"{self.fold}-{self.target}"

    @property
    def ccc(self) -> float:
        """Validation CCC of the best epoch (all validation frames concatenated); NaN if undefined."""
        value = self.metrics["ccc"][self.target]
        return math.nan if value is None else float(value)


def _number(text: str) -> float | int | str:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def read_csv_rows(path: Path) -> list[dict]:
    """Rows of a CSV file with numbers parsed (``nan`` stays a float NaN)."""
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def run_outputs(target: str, metrics: dict) -> list[str]:
    """The targets a run predicts: its own, or every target in a joint (``both``) run's metrics."""
    if target != JOINT_TARGET:
        return [target]
    return [t for t in metrics["ccc"] if t != "mean"]


def per_target(run: Run) -> list[Run]:
    """A joint run as one view per target (same folder and model), a single-target run as itself."""
    return [dataclasses.replace(run, target=t) for t in run_outputs(run.target, run.metrics)]


def read_run(fold: int, target: str, results: Path = layout.RESULTS) -> Run:
    """The run ``<fold>-<target>``; :class:`ReportError` naming the file when something is missing."""
    run_dir = layout.train_dir(fold, target, results)
    hint = f"run `python -m stages.train --fold {fold} --target {target}` (or `dvc repro`)"
    for name in (layout.METRICS, layout.CURVES_JSON, layout.CHECKPOINT):
        if not (run_dir / name).is_file():
            raise ReportError(f"{run_dir / name}: missing; {hint}")
    try:
        metrics = json.loads((run_dir / layout.METRICS).read_text())
        for t in run_outputs(target, metrics):
            metrics["ccc"][t]
    except (ValueError, KeyError, TypeError) as e:
        raise ReportError(f"{run_dir / layout.METRICS}: no validation CCC for {target!r} ({e})") from e
    try:
        curves = [{k: math.nan if v is None else v for k, v in row.items()}
                  for row in json.loads((run_dir / layout.CURVES_JSON).read_text())]
    except (ValueError, AttributeError) as e:
        raise ReportError(f"{run_dir / layout.CURVES_JSON}: not a list of epoch rows ({e})") from e
    return Run(fold, target, run_dir, metrics, curves)


def summarize(runs: Sequence[Run], folds: Sequence[int], targets: Sequence[str]) -> dict:
    """The report's metrics: CCC per fold and target, mean and std over folds, mean over targets."""
    by = {(r.fold, r.target): r for r in runs}
    out: dict = {"ccc": {}, "ccc_std": {}, "folds": {}, "best_epoch": {}}
    for t in targets:
        values = np.array([by[f, t].ccc for f in folds], dtype=np.float64)
        out["ccc"][t] = json_safe(float(values.mean()))
        out["ccc_std"][t] = json_safe(float(values.std()))
    means = [out["ccc"][t] for t in targets]
    out["ccc"]["mean"] = None if None in means else float(np.mean(means))
    for f in folds:
        out["folds"][str(f)] = {t: json_safe(by[f, t].ccc) for t in targets}
    for r in runs:
        if "best_epoch" in r.metrics:
            out["best_epoch"][r.name] = r.metrics["best_epoch"]
    return out


def read_predictions(path: Path, target: str) -> tuple[np.ndarray, np.ndarray]:
    """``(predicted [T], true [T])`` float32 of ``target`` from a run's ``predictions/<video>.csv``."""
    rows = read_csv_rows(path)
    if not rows or f"{target}_pred" not in rows[0] or f"{target}_label" not in rows[0]:
        raise ReportError(f"{path}: expected columns {target}_pred and {target}_label")
    pred = np.array([r[f"{target}_pred"] for r in rows], dtype=np.float32)
    true = np.array([r[f"{target}_label"] for r in rows], dtype=np.float32)
    return pred, true


def trace_csv(pred: np.ndarray, true: np.ndarray) -> str:
    """``frame,label,predicted`` one row per frame; an unlabeled frame's ``label`` is empty."""
    lines = ["frame,label,predicted"]
    for i, (p, y) in enumerate(zip(pred, true)):
        lines.append(f"{i},{'' if np.isnan(y) else FLOAT_FORMAT.format(y)},{FLOAT_FORMAT.format(p)}")
    return "\n".join(lines) + "\n"


def plot_trace(path: Path, pred: np.ndarray, true: np.ndarray, target: str, title: str) -> None:
    """Predicted vs true ``target`` over the frames of one video, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=TRACE_SIZE)
    frames = np.arange(len(pred))
    ax.plot(frames, true, label=f"true {target}", color="black", lw=1.2)
    ax.plot(frames, pred, label=f"predicted {target}", color="tab:red", lw=1.2)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("frame")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=PLOT_DPI, metadata={"Software": None})
    plt.close(fig)


def curves_csv(rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_run_plots(run: Run, validation: Sequence[str], n_videos: int, out: Path) -> None:
    """Curves of one run and predicted-vs-true traces of its first ``n_videos`` validation videos."""
    if run.curves:
        write_text(out / "curves" / f"{run.name}.csv", curves_csv(run.curves))
        plot_curves(out / "png" / f"curves-{run.name}.png", run.curves,
                    title=f"fold {run.fold}, {run.target}")
    for video in sorted(validation)[:n_videos]:
        path = run.dir / layout.PREDICTIONS / f"{video}.csv"
        if not path.is_file():
            raise ReportError(f"{path}: validation predictions missing (re-run the train stage)")
        pred, true = read_predictions(path, run.target)
        write_text(out / "traces" / f"{run.name}-{video}.csv", trace_csv(pred, true))
        ccc = run.metrics.get("per_video", {}).get(video, {}).get(run.target)
        title = f"{video}: fold {run.fold}" + (f", CCC {ccc:.3f}" if isinstance(ccc, float) else "")
        plot_trace(out / "png" / f"trace-{run.name}-{video}.png", pred, true, run.target, title)


def predict_test(runs: Sequence[Run], test_ids: Sequence[str], targets: Sequence[str],
                 data_root: Path) -> dict[str, dict[str, np.ndarray]]:
    """``{video: {target: [T]}}``: per target, the mean over the folds' models of their per-frame
    predictions of each test video (the checkpoint's own window, stride and modalities)."""
    sums: dict[str, dict[str, np.ndarray]] = {v: {} for v in test_ids}
    counts: dict[str, int] = dict.fromkeys(targets, 0)
    opened: dict[tuple, list] = {}  # videos checked once per set of modalities and input kinds
    for run in runs:
        model, ckpt = load_checkpoint(run.dir / layout.CHECKPOINT)
        kinds = model_inputs(model)  # embeddings, or faces / log-mel for a fine-tuned model
        key = tuple(sorted(kinds.items()))
        if key not in opened:
            opened[key] = open_videos(test_ids, list(model.modalities), list(targets), data_root,
                                      require_labels=False, desc="test videos", inputs=kinds)
        column = list(ckpt["targets"]).index(run.target)
        preds = predict_videos(model, opened[key], ckpt["window"], ckpt["stride"])  # streamed
        for vid, pred in preds.items():
            sums[vid][run.target] = sums[vid].get(run.target, 0) + pred[:, column].astype(np.float64)
        counts[run.target] += 1
    return {v: {t: (s[t] / counts[t]).astype(np.float32) for t in targets} for v, s in sums.items()}


def challenge_csv(preds: dict[str, np.ndarray], targets: Sequence[str]) -> str:
    """The challenge's per-video file: header of the targets (``valence,arousal``), a row per frame."""
    cols = [t for t in CHALLENGE_TARGETS if t in targets] + [t for t in targets if t not in CHALLENGE_TARGETS]
    table = np.clip(np.stack([preds[t] for t in cols], axis=1), -1.0, 1.0)  # [T, C]
    lines = [",".join(cols)]
    lines += [",".join(FLOAT_FORMAT.format(float(x)) for x in row) for row in table]
    return "\n".join(lines) + "\n"


def submission_csv(preds: dict[str, dict[str, np.ndarray]],
                   frame_list: Sequence[tuple[str, int]] | None = None, where: str = "") -> str:
    """The ABAW submission file: ``image_location,valence,arousal`` and one row per frame of
    ``frame_list`` (``(trial, 1-based frame)``; a frame past a trial's predictions repeats its last
    one, as the authors pad) or, without a list, of every frame of every trial in ``preds``."""
    if frame_list is None:
        frame_list = [(v, i + 1) for v in sorted(preds) for i in range(len(preds[v]["valence"]))]
    missing = sorted({t for t, _ in frame_list if t not in preds})
    if missing:
        raise ReportError(f"{where or 'frame list'}: trials without test predictions {missing[:5]}")
    lines = [f"{SUBMISSION_HEADER},{','.join(CHALLENGE_TARGETS)}"]
    for trial, frame in frame_list:
        p = preds[trial]
        i = min(frame, len(p["valence"])) - 1
        values = ",".join(FLOAT_FORMAT.format(float(np.clip(p[t][i], -1.0, 1.0))) for t in CHALLENGE_TARGETS)
        lines.append(f"{trial}/{layout.CROP_NAME.format(frame)},{values}")  # 1-based
    return "\n".join(lines) + "\n"


def write_report(out: Path, folds: Sequence[int], targets: Sequence[str], plot_videos: int,
                 results: Path = layout.RESULTS, data_root: Path = layout.DATA,
                 submission_list: str = "") -> dict:
    """Build the whole report in a temporary directory beside ``out`` and move it into place.

    ``folds`` x ``targets``: exactly the runs to read; ``submission_list``: the organisers' frame
    list for ``submission.csv``, a file in conf/lists ("" = every test frame). Returns the metrics.
    """
    from pipeline.dataset.folds import read_folds

    split = read_folds(layout.folds_file(data_root))
    if any(f >= len(split["folds"]) or f < 0 for f in folds):
        raise ReportError(f"{layout.folds_file(data_root)}: has {len(split['folds'])} folds, "
                          f"the report asks for folds {list(folds)}")
    runs = [view for f in folds for t in targets for view in per_target(read_run(f, t, results))]
    targets = list(dict.fromkeys(r.target for r in runs))  # a joint run's outputs replace `both`
    with atomic_dir(out) as tmp:  # built beside `out`, swapped in when complete
        metrics = summarize(runs, folds, targets)
        write_json(tmp / layout.METRICS, metrics)
        for run in runs:
            write_run_plots(run, split["folds"][run.fold]["validation"], plot_videos, tmp)
        test_ids = sorted(split.get("test", []))
        if test_ids:
            test_preds = predict_test(runs, test_ids, targets, data_root)
            for video, preds in test_preds.items():
                write_text(tmp / "test" / f"{video}.txt", challenge_csv(preds, targets))
            if all(t in targets for t in CHALLENGE_TARGETS):
                frames = frame_list(submission_list)  # conf/lists/... or None
                write_text(tmp / SUBMISSION, submission_csv(test_preds, frames, submission_list))
    return metrics
