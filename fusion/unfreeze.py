"""Progressive unfreezing and the per-phase optimisation schedule (the authors' training system).

Layer groups, selected BY MODULE NAME (the authors index ``list(backbone.parameters())``; an IR-50
that registers its modules in another order has the same names but other indices):

- visual (IR-50): 1 = ``output_layer``, 2 = stage 4 (``body.21`` - ``body.23``), 3 = the last 3
  units of stage 3 (``body.18`` - ``body.20``); computed from the config's units;
- audio (VGGish): 1 = ``embeddings.4`` (last FC, 4096 -> 128), 2 = ``embeddings.2`` (FC2),
  3 = ``embeddings.0`` (FC1).

Everything else in a backbone stays frozen for the whole run. Release k opens group k of every
backbone at once.

``train.unfreeze: all`` makes each backbone ONE group, released at epoch 0 (every layer trains from
the start; the lr falling below ``min_lr`` then ends training): for random-init backbones (the CPU
demo's ``ir50-tiny`` / ``vggish-tiny``), whose frozen layers would stay random for the whole run.
The authors' pretrained backbones use the default ``progressive``.

:class:`Phases` owns the optimiser and the lr of one phase:

- phase 1 starts at epoch 0 with group 1 released;
- per batch the lr follows the warm-up (``train.warmup``: linear | official, fusion/lr.py) over the
  phase's first ``warmup_epochs`` epochs, then reduce-on-plateau on validation CCC;
- after warm-up, when the lr falls below ``train.min_lr`` the next group is released: Adam and the
  plateau state are re-created (lr back to ``train.lr``, the warm-up restarts); the trainer resets
  early stopping and reloads the best weights. A release after the last group ends training.

Without backbones (``train.backbones: frozen``) there is one phase and the lr never ends training
(it stays at ``min_lr``), as before.

Frozen backbone layers run in eval mode (:func:`set_modes`: their BatchNorm statistics and dropout
stay fixed); ``train.frozen_bn: train`` keeps them in train mode like the authors' code.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fusion.lr import Plateau, official_warmup_lr, warmup_lr
from pipeline.core.params import TrainParams
from pipeline.visual.ir50 import IR50Config

STAGE3_UNITS = 3  # visual group 3: the last units of stage 3
LR_REL_TOL = 1e-6  # an lr within this relative distance of min_lr has not fallen below it
VGGISH_GROUPS = (("embeddings.4",), ("embeddings.2",), ("embeddings.0",))
PROGRESSIVE, ALL = "progressive", "all"  # train.unfreeze


def ir50_groups(cfg: IR50Config) -> list[tuple[str, ...]]:
    """The IR-50 module names of groups 1 - 3 (``body.i`` numbering follows ``cfg.units``)."""
    ends = [sum(cfg.units[:i + 1]) for i in range(len(cfg.units))]  # (3, 7, 21, 24) for IR-50
    stage4 = tuple(f"body.{i}" for i in range(ends[-2], ends[-1]))
    n3 = min(STAGE3_UNITS, cfg.units[-2])
    stage3 = tuple(f"body.{i}" for i in range(ends[-2] - n3, ends[-2]))
    return [("output_layer",), stage4, stage3]


def layer_groups(model: nn.Module, unfreeze: str = PROGRESSIVE) -> list[list[str]]:
    """Release k's module names (full names in ``model``), for every backbone of ``model``:
    the official groups (``progressive``), or one group of the whole backbones (``all``)."""
    if unfreeze == ALL:
        return [backbone_prefixes(model)] if getattr(model, "encoders", None) else []
    per: list[list[str]] = []
    for m, enc in getattr(model, "encoders", {}).items():
        prefix = f"encoders.{m}.backbone."
        groups = ir50_groups(enc.backbone.cfg) if m == "visual" else VGGISH_GROUPS
        for k, names in enumerate(groups):
            while len(per) <= k:
                per.append([])
            per[k] += [prefix + n for n in names]
    return per


def _under(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def backbone_prefixes(model: nn.Module) -> list[str]:
    return [f"encoders.{m}.backbone" for m in getattr(model, "encoders", {})]


def set_trainable(model: nn.Module, released: int, unfreeze: str = PROGRESSIVE) -> None:
    """Backbone parameters require grad only inside the first ``released`` groups; the rest of the
    model (TCNs, attention, head) always trains."""
    groups = layer_groups(model, unfreeze)
    open_names = [n for g in groups[:released] for n in g]
    bb = backbone_prefixes(model)
    for name, p in model.named_parameters():
        p.requires_grad_(not _under(name, bb) or _under(name, open_names))


def set_modes(model: nn.Module, released: int, frozen_bn: str, unfreeze: str = PROGRESSIVE) -> None:
    """After ``model.train()``: frozen backbone modules to eval mode (unless ``frozen_bn`` is
    ``train``), the released groups in train mode."""
    if frozen_bn == "train" or not model.training:
        return
    groups = layer_groups(model, unfreeze)
    for prefix in backbone_prefixes(model):
        model.get_submodule(prefix).eval()
    for name in (n for g in groups[:released] for n in g):
        model.get_submodule(name).train()


FUSED_DEVICES = ("cpu", "cuda")  # where torch's fused Adam runs (one kernel for all parameters)


def adam(params: list[nn.Parameter], train: TrainParams) -> torch.optim.Adam:
    """The run's Adam (``train.lr``, L2 ``train.weight_decay``), fused where torch has the kernel: the
    same update as the default multi-tensor Adam to float rounding, ~4x less time on CPU
    (bench/bench_train_step.py)."""
    fused = bool(params) and all(p.device.type in FUSED_DEVICES for p in params)
    return torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay, fused=fused or None)


class Phases:
    """The optimiser, lr and release state of a run (module docstring)."""

    def __init__(self, model: nn.Module, train: TrainParams, n_batches: int):
        self.model, self.train, self.n_batches = model, train, n_batches
        self.n_groups = len(layer_groups(model, train.unfreeze))
        self.released = 0
        self.phase = 0
        self.start_phase()

    @property
    def finetuning(self) -> bool:
        return self.n_groups > 0

    def start_phase(self) -> None:
        """Release the next group (if any), re-create Adam and the plateau (lr = ``train.lr``)."""
        t = self.train
        if self.finetuning:
            self.released += 1
            set_trainable(self.model, self.released, t.unfreeze)
        self.phase += 1
        self.epoch = 0  # epochs done in this phase
        self.optimizer = adam([p for p in self.model.parameters() if p.requires_grad], t)
        # fine-tuning: no floor, so that the lr can fall below min_lr and trigger a release
        self.plateau = Plateau(lr=t.lr, factor=t.plateau_factor, patience=t.plateau_patience,
                               min_lr=0.0 if self.finetuning else t.min_lr)

    def lr(self, batch: int) -> float:
        """Set and return the lr of batch ``batch`` (0-based) of the current epoch."""
        t = self.train
        if t.warmup == "official":
            lr = official_warmup_lr(self.epoch, batch, self.n_batches, t.warmup_epochs, self.plateau.lr)
        else:
            lr = warmup_lr(self.epoch * self.n_batches + batch, t.warmup_epochs * self.n_batches,
                           self.plateau.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def set_modes(self) -> None:
        set_modes(self.model, self.released, self.train.frozen_bn, self.train.unfreeze)

    def end_epoch(self, score: float) -> str | None:
        """Record a finished epoch's validation ``score``: ``"release"`` (a new phase began),
        ``"done"`` (the lr fell below min_lr after the last group) or None."""
        self.epoch += 1
        if self.epoch >= self.train.warmup_epochs:
            self.plateau.step(score)
        if not self.finetuning:
            return None
        if self.epoch >= self.train.warmup_epochs and self.below_min_lr():
            if self.released >= self.n_groups:
                return "done"
            self.start_phase()
            return "release"
        return None

    def below_min_lr(self) -> bool:
        return self.plateau.lr < self.train.min_lr * (1 - LR_REL_TOL) and not math.isclose(
            self.plateau.lr, self.train.min_lr, rel_tol=LR_REL_TOL)
