"""The trainer: fit RJCMA on cached per-frame features, select on validation CCC.

The paper's recipe (params ``train``): Adam (weight decay 1e-3), batches of 12 windows reshuffled
every epoch, lr 1e-5 with linear warm-up over ``warmup_epochs``, then reduce-on-plateau on the
validation CCC (patience 5, factor 0.1, min lr 1e-8), at most 100 epochs, early stopping after
``early_stop`` epochs without improvement, and the best epoch's weights restored at the end.
The loss is the mean over windows of ``1 - CCC`` (per target; the official code), or with
``train.loss: batch`` ``1 - CCC`` of all frames of the batch; the selection metric
is the CCC over all validation frames concatenated after stitching (the challenge protocol),
averaged over targets.

One target per model by default (the paper trains valence and arousal separately); with
``train.joint`` one model has an output per target. On CUDA the forward pass runs under float16
autocast with a GradScaler (``train.amp``); on CPU a fixed ``train.seed`` repeats a run exactly.

A non-finite training loss or validation prediction stops the run (fusion/diverge.py names the first
non-finite input, parameter or module); the best epoch so far is kept, or :class:`Diverged` is
raised when there was none.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from fusion.attention import canonical
from fusion.ccc import LOSSES
from fusion.data import Normalizer, Video, WindowDataset, feature_dims, make_loader
from fusion.diverge import Diverged, first_nonfinite, first_nonfinite_video
from fusion.evaluate import amp_dtype, autocast, input_pad, partition_metrics, predict_videos
from fusion.model import RJCMA
from fusion.unfreeze import Phases
from pipeline.core.params import FusionParams, Params, TrainParams

JOINT_TARGET = "both"  # the target name of a joint (multi-output) run
JOINT_OUTPUTS = ("valence", "arousal")  # its outputs when train.targets is just [both] (dvc.yaml's matrix)

log = logging.getLogger("rjcma.train")


@dataclass
class TrainResult:
    """What a finished run hands back; ``model`` holds the best epoch's weights."""

    model: RJCMA
    targets: tuple[str, ...]
    history: list[dict]  # one row per epoch, see fusion.curves
    best_epoch: int  # 1-based
    val_metrics: dict  # fusion.evaluate.partition_metrics of the best epoch
    val_preds: dict[str, np.ndarray]  # video id -> [T, n_targets] of the best epoch
    stopped: str  # why training ended: "epochs" | "early stop" | "all groups released" | "non-finite ..."


def run_targets(train: TrainParams, target: str) -> tuple[str, ...]:
    """The model outputs of a run named ``target``: one target, or all of them for ``both``.

    ``both`` requires ``train.joint`` and predicts the named ``train.targets`` (valence and arousal
    when the list is just ``[both]``, as dvc.yaml's folds x targets matrix needs for a joint run);
    a single target requires ``train.joint`` off and to be listed in ``train.targets``.
    """
    if target == JOINT_TARGET:
        if not train.joint:
            raise ValueError(f"target {JOINT_TARGET!r} needs train.joint: true")
        named = tuple(t for t in train.targets if t != JOINT_TARGET)
        return named or JOINT_OUTPUTS
    if train.joint:
        raise ValueError(f"train.joint is true: the run's target is {JOINT_TARGET!r}, not {target!r} "
                         f"(under DVC set train.targets: [{JOINT_TARGET}])")
    if target not in train.targets:
        raise ValueError(f"unknown target {target!r}; train.targets = {list(train.targets)}")
    return (target,)


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; otherwise any torch device string (``cpu``,
    ``cuda``, ``cuda:1``, ``mps``, ...), checked to exist where torch can tell."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"train.device = {name}: not a torch device ({e})") from e
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise RuntimeError(f"train.device = {name}: this machine has {torch.cuda.device_count()} "
                           "CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"train.device = {name}: MPS is not available on this machine")
    return device


@contextlib.contextmanager
def torch_threads(n: int):
    """Run with ``n`` torch CPU threads (0: leave torch's setting), restored afterwards."""
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def train_model(fusion: FusionParams, train: TrainParams, train_videos: Sequence[Video],
                val_videos: Sequence[Video], targets: Sequence[str],
                on_epoch: Callable[[list[dict]], None] | None = None,
                params: Params | None = None) -> TrainResult:
    """Train one model on ``train_videos`` and select its epoch on ``val_videos``.

    Videos carry labels for exactly ``targets`` (columns in order) and features for every modality
    of ``fusion.modalities`` (with ``train.backbones: finetune``: opened with fusion.data's
    ``faces`` / ``logmel`` input kinds, and ``params`` gives the backbones' settings and weights).
    ``on_epoch(history)`` is called after every epoch (e.g. to write the curves so far).
    """
    if train.backbones == "finetune" and params is None:
        raise ValueError("train.backbones = finetune needs the full params (backbone settings)")
    with torch_threads(train.threads):
        return _train(fusion, train, train_videos, val_videos, targets, on_epoch, params)


def _finetune_model(params: Params, videos: Sequence[Video], train_videos: Sequence[Video],
                    n_outputs: int, device: torch.device):
    """The fine-tuning model on ``device``: pretrained backbones loaded, the cached modalities
    (text) standardised with the training videos' statistics, the backbones' embeddings with
    those of the first training windows (:func:`fusion.backbones.embedding_stats`)."""
    from fusion.backbones import BackboneRJCMA, backbone_config, embedding_stats, load_pretrained

    fusion = params.fusion
    backbones = backbone_config(params)
    cached = [m for m in fusion.modalities if canonical(m) not in backbones]  # text
    dims = {m: d for m, d in feature_dims(videos).items() if m in cached}
    norm = Normalizer.fit(train_videos, cached) if fusion.normalize and cached else Normalizer.identity(dims)
    model = BackboneRJCMA(fusion, backbones, dims, n_outputs)
    load_pretrained(model, params)
    model.set_input_stats(norm.mean, norm.std)
    model.to(device)
    if fusion.normalize:  # fixed standardisation of the initial backbones' embeddings
        mean, std = embedding_stats(model, train_videos, fusion.window, params.train.batch_size)
        model.set_input_stats(norm.mean | mean, norm.std | std)
    return model


def _train(fusion: FusionParams, train: TrainParams, train_videos: Sequence[Video],
           val_videos: Sequence[Video], targets: Sequence[str],
           on_epoch: Callable[[list[dict]], None] | None, params: Params | None) -> TrainResult:
    if not train_videos or not val_videos:
        raise ValueError(f"need training and validation videos, got {len(train_videos)} "
                         f"and {len(val_videos)}")
    for v in list(train_videos) + list(val_videos):
        if tuple(v.targets) != tuple(targets):
            raise ValueError(f"video {v.id}: label columns {list(v.targets)} for targets {list(targets)}")
    modalities = list(fusion.modalities)
    finetune = train.backbones == "finetune"
    device = resolve_device(train.device)
    use_amp = train.amp and device.type == "cuda"

    torch.manual_seed(train.seed)
    if finetune:  # IR-50 / VGGish inside the model (fusion.backbones, fusion.unfreeze)
        model = _finetune_model(params, list(train_videos) + list(val_videos), train_videos, len(targets),
                                device)
        dataset = WindowDataset(train_videos, fusion.window, fusion.stride, pad=input_pad(model),
                                inputs=model.input_kinds)
    else:
        dims = feature_dims(list(train_videos) + list(val_videos))
        norm = Normalizer.fit(train_videos, modalities) if fusion.normalize else Normalizer.identity(dims)
        model = RJCMA(fusion, {m: dims[m] for m in modalities}, len(targets))
        model.set_input_stats(norm.mean, norm.std)
        dataset = WindowDataset(train_videos, fusion.window, fusion.stride, pad=norm.mean)
    loader = make_loader(dataset, train.batch_size, shuffle=True, seed=train.seed,
                         num_workers=train.num_workers,
                         pin_memory=device.type == "cuda")  # streams windows from the caches
    model.to(device)
    phases = Phases(model, train, len(loader))  # Adam, warm-up, plateau, releases
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype(device) == torch.float16)
    log.info("training %s on %d videos (%d windows), validating on %d videos; %s, %d parameters%s",
             "+".join(targets), len(train_videos), len(loader.dataset), len(val_videos), device,
             sum(p.numel() for p in model.parameters()),
             f", {phases.n_groups} backbone layer groups" if finetune else "")

    history: list[dict] = []
    best_score, best_epoch, best_state = -math.inf, 0, _state_copy(model)
    best_metrics: dict = {}
    best_preds: dict[str, np.ndarray] = {}
    stopped, since_best, diverged = "epochs", 0, ""
    for epoch in range(1, train.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        phases.set_modes()  # frozen backbone layers in eval mode
        optimizer = phases.optimizer
        total, count, lr = 0.0, 0, phases.plateau.lr
        bar = tqdm(loader, desc=f"epoch {epoch}/{train.epochs}", unit="batch", leave=False, disable=None)
        for i, batch in enumerate(bar):
            lr = phases.lr(i)
            inputs = {m: x.to(device, non_blocking=True) for m, x in batch["features"].items()}
            if "face_present" in batch:  # visual faces (fine-tuning): which frames have a face
                inputs["face_present"] = batch["face_present"].to(device, non_blocking=True)
            target = batch["target"].to(device)  # [B, K, C], NaN = unlabeled or padding
            with autocast(device, use_amp):
                pred = model(inputs)  # [B, K, C]
            loss = LOSSES[train.loss](pred.float(), target)
            if not torch.isfinite(loss):
                ids = [loader.dataset.videos[v].id for v in batch["video"].tolist()]
                diverged = (f"non-finite loss at epoch {epoch}, batch {i + 1}: "
                            f"{first_nonfinite(model, inputs, ids, use_amp)}")
                break
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += loss.item() * len(target)
            count += len(target)
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
        if diverged:
            break
        preds = predict_videos(model, val_videos, fusion.window, fusion.stride, train.batch_size, use_amp,
                               num_workers=train.num_workers)
        bad = next((v for v in val_videos if not np.isfinite(preds[v.id]).all()), None)
        if bad is not None:
            diverged = (f"non-finite prediction for validation video {bad.id} after epoch {epoch}: "
                        f"{first_nonfinite_video(model, bad, fusion.window, use_amp)}")
            break
        metrics = partition_metrics(val_videos, preds, targets)
        score = metrics["ccc_mean"]
        improved = not math.isnan(score) and score > best_score
        if improved:
            best_score, best_epoch, best_state = score, epoch, _state_copy(model)
            best_metrics, best_preds, since_best = metrics, preds, 0
        else:
            since_best += 1
            if train.reload_best_every_epoch and best_epoch > 0:  # the paper: best weights so far
                model.load_state_dict(best_state)
        released = phases.released  # the groups this epoch trained
        event = phases.end_epoch(score)  # plateau step; a release re-creates Adam (lr reset)
        row = {"epoch": epoch, "lr": lr, "train_loss": total / max(count, 1), "val_ccc": score}
        row.update({f"val_ccc_{t}": metrics["ccc"][t] for t in targets})
        row["best"] = improved
        if phases.finetuning:
            row["released"] = released
        history.append(row)
        log.info("epoch %d: lr %.2e, train loss %.4f, val CCC %.4f%s (%.1f s)", epoch, lr,
                 row["train_loss"], score, " *" if improved else "", time.perf_counter() - t0)
        if on_epoch is not None:
            on_epoch(history)
        if event == "release":  # the next backbone group: best weights back, early stop reset
            if best_epoch > 0:
                model.load_state_dict(best_state)
            since_best = 0
            log.info("lr below %.1e: released backbone group %d of %d (lr back to %.1e)",
                     train.min_lr, phases.released, phases.n_groups, train.lr)
        elif event == "done":
            stopped = "all groups released"
            log.info("lr below %.1e after the last backbone group: training ends", train.min_lr)
            break
        if train.early_stop and since_best >= train.early_stop:
            stopped = "early stop"
            log.info("early stop: no validation improvement for %d epochs", since_best)
            break
    if diverged:
        if best_epoch == 0:
            raise Diverged(f"{diverged}; no usable epoch before it")
        stopped = diverged
        log.warning("stopped early: %s; keeping epoch %d", diverged, best_epoch)
    if best_epoch == 0:  # validation CCC was never defined: keep the last epoch
        best_epoch, best_state = len(history), _state_copy(model)
        best_preds = predict_videos(model, val_videos, fusion.window, fusion.stride, train.batch_size,
                                    use_amp, num_workers=train.num_workers)
        best_metrics = partition_metrics(val_videos, best_preds, targets)
        log.warning("validation CCC was undefined in every epoch; keeping the last epoch's weights")
    model.load_state_dict(best_state)
    model.eval()
    log.info("best epoch %d: validation CCC %s", best_epoch,
             ", ".join(f"{t} {best_metrics['ccc'][t]:.4f}" for t in targets))
    return TrainResult(model=model, targets=tuple(targets), history=history, best_epoch=best_epoch,
                       val_metrics=best_metrics, val_preds=best_preds, stopped=stopped)
