"""Training curves: one row per epoch, written as CSV + JSON and drawn as a PNG (matplotlib, Agg).

A row holds ``epoch`` (1-based), ``lr`` (at the epoch's last step), ``train_loss`` (mean 1 - CCC
over the epoch's windows), ``val_ccc`` (the model-selection metric: mean over targets of the
partition CCC), ``val_ccc_<target>`` per target and ``best`` (whether this epoch is the best so far).
No wall-clock times: outputs stay byte-identical between identical runs (DVC).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from pipeline.core import layout
from pipeline.core.atomic import atomic_path, json_safe, write_text

PLOT_SIZE = (8.0, 3.2)  # inches
PLOT_DPI = 100


def write_curves(out_dir: str | Path, rows: Sequence[dict]) -> None:
    """Write ``curves.csv`` and ``curves.json`` (atomic) into ``out_dir``."""
    out_dir = Path(out_dir)
    if not rows:
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.8g}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text(out_dir / layout.CURVES_CSV, buf.getvalue())
    write_text(out_dir / layout.CURVES_JSON,
               json.dumps(json_safe(list(rows)), indent=2) + "\n")


def plot_curves(path: str | Path, rows: Sequence[dict], title: str = "") -> None:
    """Train loss and validation CCC per epoch (left), lr on a log scale (right), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=PLOT_SIZE)
    ax.plot(epochs, [r["train_loss"] for r in rows], label="train loss (1 - CCC)")
    ax.plot(epochs, [r["val_ccc"] for r in rows], label="validation CCC")
    best = [r for r in rows if r.get("best")]
    if best:
        ax.axvline(best[-1]["epoch"], color="grey", ls=":", lw=1, label=f"best (epoch {best[-1]['epoch']})")
    ax.set_xlabel("epoch")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax_lr.plot(epochs, [r["lr"] for r in rows], color="tab:green")
    ax_lr.set_yscale("log")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("lr")
    ax_lr.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=PLOT_DPI, metadata={"Software": None})
    plt.close(fig)
