"""Reference FER models in plain PyTorch (torchvision does not import beside torch 2.13.0), registered by name,
plus scikit-learn baselines on HOG features. All take 48x48 grayscale."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..catalog import MODEL_DOCS
from ..registry import Registry

MODELS: Registry[Any] = Registry("model")


class DeepEmotion(nn.Module):
    """Deep-Emotion (Minaee et al., 2021): a spatial-transformer attention branch (two conv layers and a
    regressor of an affine grid) in front of four 3x3 conv layers with max-pooling and ReLU, dropout,
    and two fully connected layers."""

    def __init__(self, classes: int = 7, channels: int = 10, stn: bool = True) -> None:
        super().__init__()
        c = channels
        self.conv1, self.conv2 = nn.Conv2d(1, c, 3), nn.Conv2d(c, c, 3)
        self.conv3, self.conv4 = nn.Conv2d(c, c, 3), nn.Conv2d(c, c, 3)
        self.norm = nn.BatchNorm2d(c)
        self.drop = nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(c * 9 * 9, 50), nn.Linear(50, classes)
        self.stn = stn
        if stn:
            self.localization = nn.Sequential(
                nn.Conv2d(1, 8, 7),
                nn.MaxPool2d(2, 2),
                nn.ReLU(True),
                nn.Conv2d(8, 10, 5),
                nn.MaxPool2d(2, 2),
                nn.ReLU(True),
            )
            self.fc_loc = nn.Sequential(nn.Linear(10 * 8 * 8, 32), nn.ReLU(True), nn.Linear(32, 6))
            self.fc_loc[2].weight.data.zero_()
            self.fc_loc[2].bias.data.copy_(torch.tensor([1, 0, 0, 0, 1, 0], dtype=torch.float))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.fc_loc(self.localization(x).flatten(1)).view(-1, 2, 3)
        grid = F.affine_grid(theta, list(x.size()), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stn:
            x = self.attend(x)
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        x = F.max_pool2d(F.relu(self.norm(self.conv4(x))), 2)
        x = self.drop(x.flatten(1))
        return self.fc2(F.relu(self.fc1(x)))


class SeparableBlock(nn.Module):
    """Two depthwise-separable convs with a strided 1x1 residual (mini-Xception style)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()

        def sep(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(a, a, 3, padding=1, groups=a, bias=False), nn.Conv2d(a, b, 1, bias=False), nn.BatchNorm2d(b)
            )

        self.body = nn.Sequential(sep(cin, cout), nn.ReLU(True), sep(cout, cout), nn.MaxPool2d(3, 2, 1))
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


class MiniXception(nn.Module):
    """A compact modern CNN: conv stem, four separable residual blocks, global average pooling."""

    def __init__(self, classes: int = 7, width: int = 32) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(True),
            nn.Conv2d(w, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(True),
        )
        self.blocks = nn.Sequential(
            SeparableBlock(w, 2 * w),
            SeparableBlock(2 * w, 4 * w),
            SeparableBlock(4 * w, 8 * w),
            SeparableBlock(8 * w, 8 * w),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(8 * w, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


class CompactCNN(nn.Module):
    """A compact VGG-style CNN (about 0.66M parameters at width 24): conv-BN-ReLU pairs, max-pooling,
    global average pooling. The fastest of the reference nets on a CPU; the default."""

    def __init__(self, classes: int = 7, width: int = 24) -> None:
        super().__init__()
        w = width

        def cbr(a: int, b: int) -> list[nn.Module]:
            return [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]

        self.features = nn.Sequential(
            *cbr(1, w),
            nn.MaxPool2d(2),
            *cbr(w, 2 * w),
            *cbr(2 * w, 2 * w),
            nn.MaxPool2d(2),
            *cbr(2 * w, 4 * w),
            *cbr(4 * w, 4 * w),
            nn.MaxPool2d(2),
            *cbr(4 * w, 8 * w),
            *cbr(8 * w, 8 * w),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Dropout(0.4), nn.Linear(8 * w, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.b2(self.c2(F.relu(self.b1(self.c1(x))))) + self.skip(x))


class ResNet18(nn.Module):
    """ResNet-18 for 48x48 grayscale: a 3x3 stride-2 stem (no max-pooling), four stages of two basic
    blocks, at half the usual width (32) so that it trains on a CPU."""

    def __init__(self, classes: int = 7, width: int = 32) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True))
        layers, cin = [], w
        for i, cout in enumerate((w, 2 * w, 4 * w, 8 * w)):
            layers += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(cin, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)).mean((2, 3)))


# name -> (factory, defaults for the trainer)
TORCH_DEFAULTS = {
    "deep-emotion": {"lr": 0.004, "batch_size": 64, "optimizer": "adam", "augment": False},
    "deep-emotion-nostn": {"lr": 0.004, "batch_size": 64, "optimizer": "adam", "augment": False},
    "deep-emotion-c50": {"lr": 0.004, "batch_size": 64, "optimizer": "adam", "augment": False},
    "compact-cnn": {"lr": 0.004, "batch_size": 128, "optimizer": "adamw", "augment": True},
    "mini-xception": {"lr": 0.003, "batch_size": 128, "optimizer": "adamw", "augment": True},
    "resnet18": {"lr": 0.002, "batch_size": 128, "optimizer": "adamw", "augment": True},
}


@MODELS.register("deep-emotion", MODEL_DOCS["deep-emotion"])
def deep_emotion(classes: int) -> nn.Module:
    return DeepEmotion(classes)


@MODELS.register("deep-emotion-nostn", MODEL_DOCS["deep-emotion-nostn"])
def deep_emotion_nostn(classes: int) -> nn.Module:
    return DeepEmotion(classes, stn=False)


@MODELS.register("deep-emotion-c50", MODEL_DOCS["deep-emotion-c50"])
def deep_emotion_c50(classes: int) -> nn.Module:
    return DeepEmotion(classes, channels=50)


@MODELS.register("compact-cnn", MODEL_DOCS["compact-cnn"])
def compact_cnn(classes: int) -> nn.Module:
    return CompactCNN(classes)


@MODELS.register("mini-xception", MODEL_DOCS["mini-xception"])
def mini_xception(classes: int) -> nn.Module:
    return MiniXception(classes)


@MODELS.register("resnet18", MODEL_DOCS["resnet18"])
def resnet18(classes: int) -> nn.Module:
    return ResNet18(classes)


# -- classical baselines ------------------------------------------------------------------------------
def hog_features(x: np.ndarray) -> np.ndarray:
    """HOG descriptors of (N, 48, 48) uint8 faces (scikit-image)."""
    from skimage.feature import hog

    return np.stack([hog(im, orientations=9, pixels_per_cell=(6, 6), cells_per_block=(2, 2)) for im in x])


def _sklearn(name: str):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if name == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    if name == "svm":
        # probabilities by Platt scaling on 5-fold predictions (what SVC(probability=True) did; deprecated in 1.9)
        return make_pipeline(StandardScaler(), CalibratedClassifierCV(SVC(C=3.0), ensemble=False))
    return RandomForestClassifier(n_estimators=300, n_jobs=-1)


CLASSICAL = ("logreg", "svm", "random-forest")
for _n in CLASSICAL:
    MODELS.register(_n, MODEL_DOCS[_n])(lambda classes, _n=_n: _sklearn(_n))
