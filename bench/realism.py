"""How real maskgen's masks look, measured against real photos of masked people (../shared/data/realism-dev).

Two measures per mask type and for `random` (random type and colour), with the same sample sizes and
seeds for every row:
- two-sample test: eye-aligned 64x64 face crops (brows to chin) from real masked photos and from
  maskgen-masked photos of unmasked people; a small CNN learns to tell them apart on one half and is
  tested on the other; the mean over seeds. 50% means indistinguishable.
- the same test on framing-matched pairs: the unmasked photos are tighter crops than the masked ones, so
  more of their aligned crops reach past the photo's edge (replicated border pixels); each real crop is
  paired with a synthetic one whose crop leaves the photo on the same sides by about as much. The floor
  row runs the test on the eye band alone (the top 38% of the crops, no mask in it): how far the two
  photo collections differ with no mask to see.
- sim-to-real transfer: a mask/no-mask CNN trained only on maskgen's masks (positives) and the same faces
  unmasked (negatives), tested on held-out real masked vs real unmasked photos: balanced accuracy and
  recall on real masks, beside a control trained on real masked photos with the same sample size.
- spread: how much the luminance varies within the masks (below the nose), real beside synthetic.
It also writes a contact sheet: real masked crops in the first row, maskgen's below, one row per type.

Usage: python bench/realism.py [--seeds 3] [--epochs 12] [--sheet build/realism.png] [--types all]
       [--param shade=0 --param soften=0 --param grain=0]   (the flat, crisp, clean look, for comparison)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

import maskgen as mg

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "realism-dev"
SIZE = 64


EYE_BAND = 0.38  # the crops' top 38%: brows and eyes, above any mask


def _crop_map(lm: np.ndarray, size: int) -> np.ndarray:
    left, right = lm[36:42].mean(0), lm[42:48].mean(0)
    d = np.linalg.norm(right - left)
    angle = np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))
    k = 0.4 * size / max(d, 1e-6)
    centre = (left + right) / 2
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, k)
    m[:, 2] += np.array([size / 2, 0.32 * size]) - centre
    return m


def aligned_crop(img: np.ndarray, lm: np.ndarray, size: int = SIZE) -> np.ndarray:
    """A size x size RGB crop with the eyes level at 32% of the height and 40% of the width apart."""
    rgb = img if img.ndim == 3 else np.dstack([img] * 3)
    return cv2.warpAffine(rgb, _crop_map(lm, size), (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def framing(img: np.ndarray, lm: np.ndarray, size: int = SIZE) -> np.ndarray:
    """How much of the aligned crop lies outside the photo at its bottom, left, right and top quarters."""
    inside = np.full(img.shape[:2], 255, np.uint8)
    out = cv2.warpAffine(inside, _crop_map(lm, size), (size, size), flags=cv2.INTER_NEAREST) == 0
    q = size // 4
    return np.array([out[-q:].mean(), out[:, :q].mean(), out[:, -q:].mean(), out[:q].mean()])


def matched_pairs(real: np.ndarray, synth: np.ndarray, tol: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j): real crop i paired with synthetic crop j of about the same framing (greedy, most
    cut-off first, each used once; pairs further apart than `tol` are left out)."""
    used = np.zeros(len(synth), bool)
    pairs = []
    for i in np.argsort(-real.sum(1), kind="stable"):
        d = np.abs(synth - real[i]).sum(1)
        d[used] = np.inf
        j = int(d.argmin())
        if d[j] < tol:
            used[j] = True
            pairs.append((int(i), j))
    a, b = zip(*pairs, strict=True) if pairs else ((), ())
    return np.array(a, int), np.array(b, int)


def spread(crops: np.ndarray) -> float:
    """How much the luminance varies within the mask: its standard deviation below the nose (rows 40-60,
    columns 16-48 of the 64x64 crops), the median over crops. Flat, drawn masks score low."""
    lum = crops[:, 40:60, 16:48].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return float(np.median(lum.reshape(len(crops), -1).std(1)))


def eye_band(crops: np.ndarray) -> np.ndarray:
    out = crops.copy()
    out[:, int(EYE_BAND * out.shape[1]) :] = 128
    return out


def load(kind: str) -> tuple[list[np.ndarray], list[mg.Faces]]:
    images, faces = [], []
    for p in sorted((DATA / kind).glob("*.jpg")):
        img = mg.read_image(p)
        f = mg.detect(img)
        if len(f):
            images.append(img)
            faces.append(f.largest())
    return images, faces


class Net(nn.Module):
    """A small CNN: three conv blocks, global pooling, two outputs."""

    def __init__(self) -> None:
        super().__init__()

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(3, 16), block(16, 32), block(32, 64), block(64, 64))
        self.head = nn.Linear(64, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def to_tensor(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def fit_predict(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, seed: int, epochs: int) -> np.ndarray:
    """Train the small CNN on (xtr, ytr) with flips; predicted classes of xte."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net, xt, yt = Net(), to_tensor(xtr), torch.from_numpy(ytr).long()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(epochs):
        net.train()
        for idx in np.array_split(rng.permutation(len(xt)), max(1, len(xt) // 32)):
            xb = xt[idx]
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = nn.functional.cross_entropy(net(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        logits = net(to_tensor(xte)) + net(to_tensor(xte[..., ::-1, :].copy()))
    return logits.argmax(1).numpy()


def two_sample(real: np.ndarray, synth: np.ndarray, seeds: int, epochs: int) -> float:
    """Mean held-out accuracy of telling real from synthetic masked crops (n of each, halves)."""
    n = min(len(real), len(synth))
    accs = []
    for s in range(seeds):
        rng = np.random.default_rng(100 + s)
        r, f = real[rng.permutation(len(real))[:n]], synth[rng.permutation(len(synth))[:n]]
        h = n // 2
        xtr, ytr = np.concatenate([r[:h], f[:h]]), np.r_[np.zeros(h), np.ones(h)]
        xte, yte = np.concatenate([r[h:], f[h:]]), np.r_[np.zeros(n - h), np.ones(n - h)]
        accs.append(float((fit_predict(xtr, ytr, xte, s, epochs) == yte).mean()))
    return float(np.mean(accs))


def transfer(pos: np.ndarray, neg: np.ndarray, test_pos: np.ndarray, test_neg: np.ndarray, epochs: int):
    """(balanced accuracy, recall on real masks) of a mask/no-mask CNN trained on pos/neg."""
    xtr, ytr = np.concatenate([neg, pos]), np.r_[np.zeros(len(neg)), np.ones(len(pos))]
    pred = fit_predict(xtr, ytr, np.concatenate([test_neg, test_pos]), 7, epochs)
    spec = float((pred[: len(test_neg)] == 0).mean())
    recall = float((pred[len(test_neg) :] == 1).mean())
    return (spec + recall) / 2, recall


def masked_crops(images, faces, mask_type: str, params: dict, seed: int = 0) -> np.ndarray:
    kw = {"type": "random", "color": "random"} if mask_type == "random" else {"type": mask_type}
    kw |= params
    out = []
    for i, (img, f) in enumerate(zip(images, faces, strict=True)):
        res = mg.mask(img, "overlay", faces=f, seed=seed * 100_000 + i, **kw)
        out.append(aligned_crop(res.image, f.landmarks[0]))
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--types", default="all", help="comma-separated mask types, or all")
    ap.add_argument("--sheet", type=Path, default=Path("build/realism.png"))
    ap.add_argument("--param", action="append", default=[], help="overlay parameter for every row, e.g. shade=0")
    ap.add_argument("--mask-seed", type=int, default=0, help="seed of the synthetic masks' draws")
    args = ap.parse_args()
    params = {k: json.loads(v) for k, _, v in (p.partition("=") for p in args.param)}
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is not present")
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    m_img, m_faces = load("masked")
    u_img, u_faces = load("unmasked")
    real = np.stack([aligned_crop(i, f.landmarks[0]) for i, f in zip(m_img, m_faces, strict=True)])
    plain = np.stack([aligned_crop(i, f.landmarks[0]) for i, f in zip(u_img, u_faces, strict=True)])
    pr, pu = matched_pairs(
        np.stack([framing(i, f.landmarks[0]) for i, f in zip(m_img, m_faces, strict=True)]),
        np.stack([framing(i, f.landmarks[0]) for i, f in zip(u_img, u_faces, strict=True)]),
    )
    # transfer: train on halves a, test on halves b; every training set has the same size
    rng = np.random.default_rng(0)
    m_perm, u_perm = rng.permutation(len(real)), rng.permutation(len(plain))
    n = min(len(real), len(plain)) // 2
    m_a, m_b, u_a, u_b = m_perm[:n], m_perm[n : 2 * n], u_perm[:n], u_perm[n : 2 * n]
    print(
        f"realism-dev: {len(real)} of 600 masked and {len(plain)} of 600 unmasked photos with a face; "
        f"transfer sets of {n} per class; {len(pr)} framing-matched pairs; {args.seeds} seeds; "
        f"{time.perf_counter() - t0:.0f} s to load"
    )
    ctrl_bal, ctrl_rec = transfer(real[m_a], plain[u_a], real[m_b], plain[u_b], args.epochs)
    types = ["random", *mg.MASK_TYPES.names()] if args.types == "all" else args.types.split(",")
    print(
        f"{'masks':<12} {'two-sample acc':>15} {'matched pairs':>14} {'transfer bal. acc':>18} "
        f"{'recall real masks':>18} {'vs control':>11} {'spread':>7}"
    )
    floor = two_sample(eye_band(real), eye_band(plain), args.seeds, args.epochs)
    floor_m = two_sample(eye_band(real[pr]), eye_band(plain[pu]), args.seeds, args.epochs)
    print(f"{'floor (eyes)':<12} {floor:>15.1%} {floor_m:>14.1%} {'':>18} {'':>18} {'':>11}")
    print(f"{'real (ctrl)':<12} {'':>15} {'':>14} {ctrl_bal:>18.1%} {ctrl_rec:>18.1%} {'':>11} {spread(real):>7.1f}")
    rows = [real[:10]]
    for t in types:
        synth = masked_crops(u_img, u_faces, t, params, args.mask_seed)
        acc = two_sample(real, synth, args.seeds, args.epochs)
        acc_m = two_sample(real[pr], synth[pu], args.seeds, args.epochs)
        bal, rec = transfer(synth[u_a], plain[u_a], real[m_b], plain[u_b], args.epochs)
        print(
            f"{t:<12} {acc:>15.1%} {acc_m:>14.1%} {bal:>18.1%} {rec:>18.1%} {100 * (rec - ctrl_rec):>+10.1f}p "
            f"{spread(synth):>7.1f}"
        )
        rows.append(synth[:10])
    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    mg.write_image(args.sheet, np.vstack([np.hstack(list(r)) for r in rows]))
    print(f"contact sheet: {args.sheet} (first row real, then {', '.join(types)}); {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
