"""Fitting: a torch loop over in-memory tensors (both cores busy, no loader to starve them) with flips,
shifts and small rotations, class weights, L1, early stopping on validation accuracy; or a scikit-learn fit."""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BadParameter
from .models import CLASSICAL, MODELS, TORCH_DEFAULTS, hog_features

STN_PREFIXES = ("localization.", "fc_loc.")


@dataclass
class TrainArgs:
    model: str = "compact-cnn"
    epochs: int = 30
    batch_size: int | None = None  # None: the model's default
    lr: float | None = None
    seed: int = 0
    class_weights: bool = False
    augment: bool | None = None  # None: the model's default
    optimizer: str | None = None  # "adam" (constant rate) or "adamw" (one-cycle); None: the model's default
    l1: float = 0.0
    stn_lr_scale: float = 0.1  # the spatial transformer's learning rate, as a fraction of `lr`
    patience: int = 6
    time_limit: float | None = None  # seconds; a one-cycle schedule anneals to it, a constant rate stops after it

    def resolved(self) -> dict[str, Any]:
        d = dict(TORCH_DEFAULTS.get(self.model, {}))
        d.update({k: v for k, v in self.__dict__.items() if v is not None})
        return d


@dataclass
class History:
    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


def to_tensor(x: np.ndarray) -> torch.Tensor:
    """(N,48,48) uint8 -> (N,1,48,48) float in [-1, 1], channels-last (faster convolutions on CPU)."""
    return torch.from_numpy(x).float().div_(127.5).sub_(1.0).unsqueeze(1).contiguous(memory_format=torch.channels_last)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random horizontal flips, shifts of up to 10%, rotations of up to 10 degrees and 10% zoom, per image."""
    n = x.shape[0]
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    ang = (torch.rand(n, generator=g) * 2 - 1) * np.deg2rad(10)
    scale = 1 + (torch.rand(n, generator=g) * 2 - 1) * 0.1
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * 0.2
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1
    )
    return warp(x, theta)


def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The batch resampled through per-image affine maps `theta` (N, 2, 3), borders replicated."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


TTA_ZOOMS = (1.08, 0.93)  # test-time views inside the training augmentation's +-10% zoom


def zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """The batch enlarged (factor > 1) or reduced about its centre, borders replicated."""
    return warp(x, torch.tensor([[1 / factor, 0.0, 0.0], [0.0, 1 / factor, 0.0]]).expand(len(x), 2, 3))


def predict_proba_torch(model: torch.nn.Module, x: torch.Tensor, batch: int = 512, tta: str = "flip") -> np.ndarray:
    """Class probabilities, averaged over test-time views: `none`; `flip` (and the mirrored image); `zoom`
    (each of those also enlarged and reduced by the factors of TTA_ZOOMS: six views)."""
    if tta not in ("none", "flip", "zoom"):
        raise BadParameter(f"tta must be none, flip or zoom, got {tta!r}")
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            views = [x[i : i + batch]]
            if tta != "none":
                views.append(torch.flip(views[0], dims=[3]))
            if tta == "zoom":
                views += [zoom(v, f) for v in views[:2] for f in TTA_ZOOMS]
            out.append(sum(F.softmax(model(v), 1) for v in views) / len(views))
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


def param_groups(model: torch.nn.Module, lr: float, stn_scale: float) -> tuple[list[dict], list[float]]:
    """Optimizer groups: the spatial transformer's localisation net (if any) learns at `stn_scale` x `lr`.
    At the full rate Deep-Emotion's transformer can run away on zeroed faces (its affine grid grows ~50x
    in one epoch and samples only the padding, so every input looks the same and the net predicts one class)."""
    stn = [p for n, p in model.named_parameters() if n.startswith(STN_PREFIXES)]
    rest = [p for n, p in model.named_parameters() if not n.startswith(STN_PREFIXES)]
    if not stn:
        return [{"params": rest, "lr": lr}], [lr]
    return [{"params": rest, "lr": lr}, {"params": stn, "lr": lr * stn_scale}], [lr, lr * stn_scale]


def one_cycle(progress: float, peak: float, warmup: float = 0.15) -> float:
    """The one-cycle rate at `progress` in [0, 1]: cosine warm-up from peak/25 to `peak`, then cosine
    annealing to peak/250,000 (OneCycleLR's shape, as a function of progress rather than of step)."""
    progress = min(max(progress, 0.0), 1.0)
    start, end = peak / 25, peak / 25 / 1e4
    if progress < warmup:
        a, b, t = start, peak, progress / warmup
    else:
        a, b, t = peak, end, (progress - warmup) / (1 - warmup)
    return b + (a - b) * (1 + np.cos(np.pi * t)) / 2


def fit_torch(
    args: TrainArgs,
    classes: int,
    xtr: np.ndarray,
    ytr: np.ndarray,
    xva: np.ndarray,
    yva: np.ndarray,
    progress: bool = True,
) -> tuple[torch.nn.Module, History]:
    from tqdm import tqdm

    p = args.resolved()
    if p["optimizer"] not in ("adam", "adamw"):
        raise BadParameter(f"optimizer must be 'adam' or 'adamw', got {p['optimizer']!r}")
    if not 0 < args.stn_lr_scale <= 10:
        raise BadParameter(f"stn_lr_scale must be in (0, 10], got {args.stn_lr_scale}")
    torch.manual_seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    g = torch.Generator().manual_seed(args.seed)
    model = MODELS.create(args.model, classes=classes).to(memory_format=torch.channels_last)
    xt, yt = to_tensor(xtr), torch.from_numpy(ytr).long()
    xv = to_tensor(xva)
    weight = None
    if args.class_weights:
        counts = np.bincount(ytr, minlength=classes).astype(np.float64)
        weight = torch.tensor(counts.sum() / (classes * np.maximum(counts, 1)), dtype=torch.float32)
    p["batch_size"] = max(8, min(p["batch_size"], len(xt) // 8))  # small sets: at least 8 steps per epoch
    steps = max(1, int(np.ceil(len(xt) / p["batch_size"])))
    groups, rates = param_groups(model, p["lr"], args.stn_lr_scale)
    if p["optimizer"] == "adam":
        opt = torch.optim.Adam(groups, lr=p["lr"])
        sched = None
    elif args.time_limit:  # one cycle over the time allowed (or the epochs, if they end first)
        opt = torch.optim.AdamW(groups, lr=p["lr"], weight_decay=1e-4)
        sched = TimedOneCycle(opt, rates, steps * args.epochs, args.time_limit)
    else:
        opt = torch.optim.AdamW(groups, lr=p["lr"], weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=rates, total_steps=steps * args.epochs, pct_start=0.15)
    hist, best, best_acc, bad = History(), copy.deepcopy(model.state_dict()), -1.0, 0
    start = time.perf_counter()
    bar = tqdm(range(args.epochs), desc=f"train {args.model}", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(xt), generator=g)
        total, seen = 0.0, 0
        for i in range(steps):
            idx = perm[i * p["batch_size"] : (i + 1) * p["batch_size"]]
            xb = augment(xt[idx], g) if p["augment"] else xt[idx]
            loss = F.cross_entropy(model(xb), yt[idx], weight=weight, label_smoothing=0.05 if p["augment"] else 0.0)
            if args.l1:
                loss = loss + args.l1 * sum(w.abs().sum() for n, w in model.named_parameters() if "weight" in n)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
            if isinstance(sched, TimedOneCycle) and sched.done:
                break
        val_acc = float((predict_proba_torch(model, xv, tta="none").argmax(1) == yva).mean()) if len(xv) else 0.0
        hist.epochs.append({"epoch": epoch + 1, "loss": total / max(seen, 1), "val_accuracy": val_acc})
        bar.set_postfix(loss=f"{total / max(seen, 1):.3f}", val_acc=f"{val_acc:.3f}")
        if val_acc >= best_acc:  # ties go to the later, better-trained epoch
            best_acc, best, bad, hist.best_epoch = val_acc, copy.deepcopy(model.state_dict()), 0, epoch + 1
        else:
            bad += 1
            if bad >= args.patience and sched is None:  # one-cycle schedules run to the end: they peak late
                break
        if args.time_limit and time.perf_counter() - start > args.time_limit:
            break
        if isinstance(sched, TimedOneCycle) and sched.done:
            break
    bar.close()
    model.load_state_dict(best)
    hist.seconds = time.perf_counter() - start
    return model, hist


class TimedOneCycle:
    """One-cycle rates driven by whichever ends first, the steps or the clock: with a time limit the rate
    anneals to its floor at the limit, so a run cut by the clock still ends cooled down, not at its peak."""

    def __init__(self, opt: torch.optim.Optimizer, peaks: list[float], total_steps: int, seconds: float) -> None:
        self.opt, self.peaks, self.total, self.seconds = opt, peaks, total_steps, seconds
        self.start, self.steps, self.progress = time.perf_counter(), 0, 0.0
        self._apply()

    def _apply(self) -> None:
        for group, peak in zip(self.opt.param_groups, self.peaks, strict=True):
            group["lr"] = one_cycle(self.progress, peak)

    def step(self) -> None:
        self.steps += 1
        self.progress = max(self.steps / self.total, (time.perf_counter() - self.start) / self.seconds)
        self._apply()

    @property
    def done(self) -> bool:
        return self.progress >= 1.0


def fit_classical(args: TrainArgs, classes: int, xtr: np.ndarray, ytr: np.ndarray) -> tuple[Any, History]:
    start = time.perf_counter()
    model = MODELS.create(args.model, classes=classes)
    model.set_params(**{k: args.seed for k in model.get_params() if k.endswith("random_state")})
    model.fit(hog_features(xtr), ytr)
    return model, History(seconds=time.perf_counter() - start)


def is_classical(name: str) -> bool:
    return name in CLASSICAL
