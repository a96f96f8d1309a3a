"""How real maskgen's masks look, measured against real photos of masked people (../shared/data/realism-dev).

Measures per mask type and for `random` (random type and colour), with the same sample sizes and
seeds for every row:
- two-sample test: eye-aligned 64x64 face crops (brows to chin) from real masked photos and from
  maskgen-masked photos of unmasked people; a small CNN learns to tell them apart on one half and is
  tested on the other; the mean over seeds. 50% means indistinguishable.
- the same test on pairs alike in the eye band ("alike eyes"): each photo's eye band is scored by a CNN
  that did not see it (two folds) for how "real masked" it looks, and real and unmasked photos are paired
  within 0.05 of that probability. On those pairs the eye band alone tells nothing (about 50%), so what
  the test finds is the mask.
- sim-to-real transfer: a mask/no-mask CNN trained only on maskgen's masks (positives) and the same faces
  unmasked (negatives), tested on half of the pairs alike in the eye band (held out of every training
  set), real masked vs real unmasked: balanced accuracy and recall on real masks (mean over seeds),
  beside a control trained on real masked photos with the same sample size.
- spread: how much the luminance varies within the masks (below the nose), real beside synthetic.
- with --regions, the two-sample test on the pairs alike in the eye band, each region of the crops alone
  (the mask's top edge, its centre, the sides): where the difference lies.

The two photo collections are framed and sized differently: the unmasked photos are tight crops (more of
their aligned crops reach past the photo's edge) and all sharp (58 px between the eyes, median), while
the masked ones range from 11 to 90 px. Left as they are, a classifier can tell the collections apart by
that alone, with no mask in view. So every crop is made the same way from both: each photo is paired once
with a random photo of the other collection; the crop is blank (mid gray) wherever either photo's crop
leaves its photo, and is made at the lower of the two photos' resolutions (then enlarged to 64x64). Both
collections then draw framing and sharpness from one distribution. The floor row runs the two-sample
test on the eye band alone (the top 38% of the crops, no mask in it): how far the collections still
differ with no mask to see (faces, light, cameras). `--as-framed` turns the equalising off.
It also writes a contact sheet: real masked crops in the first row, maskgen's below, one row per type.

Usage: python bench/realism.py [--seeds 3] [--epochs 15] [--sheet build/realism.png] [--types all] [--regions]
       [--param shade=1 --param soften=2 ...] (overlay options for every row) [--as-framed]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

import maskgen as mg
from maskgen.landmarks import inter_ocular

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "realism-dev"
SIZE = 64
GRAY = 128  # outside the photo


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


def aligned_crop(
    img: np.ndarray, lm: np.ndarray, size: int = SIZE, iod: float | None = None, fill: bool = True
) -> np.ndarray:
    """A size x size RGB crop with the eyes level at 32% of the height and 40% of the width apart: mid gray
    outside the photo (`fill`, else its edge pixels repeated); made at `iod` pixels between the eyes when
    that is fewer than the crop's, then enlarged, as a photo of that resolution would give."""
    rgb = img if img.ndim == 3 else np.dstack([img] * 3)
    k = size if iod is None else int(round(min(size, max(8.0, iod / 0.4))))
    border = (
        {"borderMode": cv2.BORDER_CONSTANT, "borderValue": (GRAY,) * 3}
        if fill
        else {"borderMode": cv2.BORDER_REPLICATE}
    )
    out = cv2.warpAffine(rgb, _crop_map(lm, k), (k, k), flags=cv2.INTER_AREA, **border)
    return out if k == size else cv2.resize(out, (size, size), interpolation=cv2.INTER_LINEAR)


def outside(img: np.ndarray, lm: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Where the aligned crop lies outside the photo (size x size, bool)."""
    inside = np.full(img.shape[:2], 255, np.uint8)
    return cv2.warpAffine(inside, _crop_map(lm, size), (size, size), flags=cv2.INTER_NEAREST) < 128


def frame_facts(images: list[np.ndarray], faces: list[mg.Faces]) -> tuple[np.ndarray, np.ndarray]:
    """Each photo's crop: where it lies outside the photo, and the photo's pixels between the eyes."""
    lms = [f.landmarks[0] for f in faces]
    return np.stack([outside(i, lm) for i, lm in zip(images, lms, strict=True)]), np.array(
        [inter_ocular(lm) for lm in lms]
    )


class Framing:
    """How every crop of one collection is made: blank where its photo or its partner's (a random photo of
    the other collection) ends, at the lower of the two resolutions. None: as framed, native resolution."""

    def __init__(self, own: tuple[np.ndarray, np.ndarray] | None, other: tuple[np.ndarray, np.ndarray], seed: int):
        self.blank, self.iod = None, None
        if own is not None:
            partner = np.random.default_rng(seed).integers(len(other[0]), size=len(own[0]))
            self.blank = own[0] | other[0][partner]
            self.iod = np.minimum(own[1], other[1][partner])

    def crops(self, images: list[np.ndarray], faces: list[mg.Faces]) -> np.ndarray:
        out = np.stack(
            [
                aligned_crop(
                    img, f.landmarks[0], iod=None if self.iod is None else self.iod[i], fill=self.blank is not None
                )
                for i, (img, f) in enumerate(zip(images, faces, strict=True))
            ]
        )
        if self.blank is not None:
            out[self.blank] = GRAY
        return out


def spread(crops: np.ndarray, blank: np.ndarray | None = None) -> float:
    """How much the luminance varies within the mask: its standard deviation below the nose (rows 40-60,
    columns 16-48 of the 64x64 crops, blank pixels left out), the median over crops. Flat masks score low."""
    lum = crops[:, 40:60, 16:48].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if blank is not None:
        lum[blank[:, 40:60, 16:48]] = np.nan
    with warnings.catch_warnings():  # a crop blank there altogether has no spread
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmedian(np.nanstd(lum.reshape(len(crops), -1), 1)))


# --regions: where the two-sample test finds the difference, each region alone (rows, columns of the crops)
REGIONS = {"top edge": (22, 36, 0, 64), "centre": (40, 60, 16, 48), "sides": (30, 64, 0, 12)}


def region(crops: np.ndarray, rows_cols: tuple[int, int, int, int]) -> np.ndarray:
    """The crops with everything outside one region mid gray."""
    r0, r1, c0, c1 = rows_cols
    out = np.full_like(crops, GRAY)
    out[:, r0:r1, c0:c1] = crops[:, r0:r1, c0:c1]
    return out


def eye_band(crops: np.ndarray) -> np.ndarray:
    """The crops' brows and eyes alone (the top EYE_BAND of each), the rest mid gray."""
    return region(crops, (0, int(EYE_BAND * crops.shape[1]), 0, crops.shape[2]))


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
    """A small CNN: four conv blocks, global pooling, two outputs."""

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


def fit_scores(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, seed: int, epochs: int) -> np.ndarray:
    """Train the small CNN on (xtr, ytr) with flips (AdamW, one-cycle schedule: the same result within a
    point or two from any seed); each xte crop's probability of class 1 (mean with its mirror image)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net, xt, yt = Net(), to_tensor(xtr), torch.from_numpy(ytr).long()
    steps = max(1, len(xt) // 32)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * steps)
    for _ in range(epochs):
        net.train()
        for idx in np.array_split(rng.permutation(len(xt)), steps):
            xb = xt[idx]
            flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = nn.functional.cross_entropy(net(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    net.eval()
    with torch.no_grad():
        p = net(to_tensor(xte)).softmax(1) + net(to_tensor(xte[..., ::-1, :].copy())).softmax(1)
    return (p[:, 1] / 2).numpy()


def two_sample(real: np.ndarray, synth: np.ndarray, seeds: int, epochs: int) -> tuple[float, float]:
    """Held-out accuracy of telling real from synthetic crops (n of each): trained on half of each,
    tested on the other half; (mean, standard deviation) over seeds."""
    n = min(len(real), len(synth))
    accs = []
    for s in range(seeds):
        rng = np.random.default_rng(100 + s)
        r, f = real[rng.permutation(len(real))[:n]], synth[rng.permutation(len(synth))[:n]]
        h = n // 2
        xtr, ytr = np.concatenate([r[:h], f[:h]]), np.r_[np.zeros(h), np.ones(h)]
        xte, yte = np.concatenate([r[h:], f[h:]]), np.r_[np.zeros(n - h), np.ones(n - h)]
        accs.append(float(((fit_scores(xtr, ytr, xte, s, epochs) > 0.5) == yte).mean()))
    return float(np.mean(accs)), float(np.std(accs))


def propensity(real: np.ndarray, plain: np.ndarray, epochs: int) -> tuple[np.ndarray, np.ndarray]:
    """How "real masked" each crop's eye band looks (probability), each scored by a CNN that did not see
    it (two folds): the photo collections' own difference, with no mask in view."""
    sr, su = np.zeros(len(real)), np.zeros(len(plain))
    rng = np.random.default_rng(11)
    fr, fu = rng.permutation(len(real)) % 2, rng.permutation(len(plain)) % 2
    real, plain = eye_band(real), eye_band(plain)
    for k in (0, 1):
        xtr = np.concatenate([plain[fu != k], real[fr != k]])
        ytr = np.r_[np.zeros((fu != k).sum()), np.ones((fr != k).sum())]
        out = fit_scores(xtr, ytr, np.concatenate([real[fr == k], plain[fu == k]]), 20 + k, epochs)
        sr[fr == k], su[fu == k] = out[: (fr == k).sum()], out[(fr == k).sum() :]
    return sr, su


def match(sr: np.ndarray, su: np.ndarray, caliper: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) of a real and an unmasked photo whose eye bands look alike (propensities within
    `caliper`), greedy from the least common propensities, each photo used once."""
    used, pairs = np.zeros(len(su), bool), []
    for i in np.argsort(-sr, kind="stable"):
        d = np.abs(su - sr[i])
        d[used] = np.inf
        j = int(d.argmin())
        if d[j] <= caliper:
            used[j] = True
            pairs.append((int(i), j))
    pairs = np.array(pairs, int).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def transfer(pos: np.ndarray, neg: np.ndarray, test_pos: np.ndarray, test_neg: np.ndarray, seeds: int, epochs: int):
    """(balanced accuracy, recall on real masks) of a mask/no-mask CNN trained on pos/neg, mean over seeds."""
    xtr, ytr = np.concatenate([neg, pos]), np.r_[np.zeros(len(neg)), np.ones(len(pos))]
    scores = []
    for s in range(seeds):
        pred = fit_scores(xtr, ytr, np.concatenate([test_neg, test_pos]), 7 + s, epochs) > 0.5
        spec, recall = float((pred[: len(test_neg)] == 0).mean()), float((pred[len(test_neg) :] == 1).mean())
        scores.append(((spec + recall) / 2, recall))
    bal, recall = np.mean(scores, 0)
    return float(bal), float(recall)


def masked_photos(
    images: list[np.ndarray], faces: list[mg.Faces], mask_type: str, params: dict, seed: int = 0
) -> list[np.ndarray]:
    kw = {"type": "random", "color": "random"} if mask_type == "random" else {"type": mask_type}
    kw |= params
    return [
        mg.mask(img, "overlay", faces=f, seed=seed * 100_000 + i, **kw).image
        for i, (img, f) in enumerate(zip(images, faces, strict=True))
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--types", default="all", help="comma-separated mask types, or all")
    ap.add_argument("--sheet", type=Path, default=Path("build/realism.png"))
    ap.add_argument("--param", action="append", default=[], help="overlay parameter for every row, e.g. shade=0")
    ap.add_argument("--mask-seed", type=int, default=0, help="seed of the synthetic masks' draws")
    ap.add_argument("--as-framed", action="store_true", help="crops as each photo frames them, at its resolution")
    ap.add_argument("--regions", action="store_true", help="also the two-sample test (alike eyes) per region")
    args = ap.parse_args()
    params = {k: json.loads(v) for k, _, v in (p.partition("=") for p in args.param)}
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is not present")
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    m_img, m_faces = load("masked")
    u_img, u_faces = load("unmasked")
    m_frame, u_frame = frame_facts(m_img, m_faces), frame_facts(u_img, u_faces)
    m_how = Framing(None if args.as_framed else m_frame, u_frame, 1)
    u_how = Framing(None if args.as_framed else u_frame, m_frame, 2)  # the same for a photo masked or not
    real, plain = m_how.crops(m_img, m_faces), u_how.crops(u_img, u_faces)
    mi, mj = match(*propensity(real, plain, args.epochs))
    # transfer: tested on half of the pairs alike in the eye band; trained on photos outside them, n per class
    rng = np.random.default_rng(0)
    test = rng.permutation(len(mi))[: len(mi) // 2]
    t_r, t_u = mi[test], mj[test]
    free_r, free_u = np.setdiff1d(np.arange(len(real)), t_r), np.setdiff1d(np.arange(len(plain)), t_u)
    n = min(len(free_r), len(free_u))
    tr_r, tr_u = rng.permutation(free_r)[:n], rng.permutation(free_u)[:n]
    blank = "as framed" if args.as_framed else f"{np.mean(m_how.blank):.0%} and {np.mean(u_how.blank):.0%} blank"
    print(
        f"realism-dev: {len(real)} of 600 masked and {len(plain)} of 600 unmasked photos with a face; crops "
        f"{blank}; {len(mi)} pairs alike in the eye band; transfer: {n} training photos per class, tested on "
        f"{len(test)} of the pairs; {args.seeds} seeds; {time.perf_counter() - t0:.0f} s to load"
    )

    def pm(a: tuple[float, float]) -> str:
        return f"{a[0]:.1%} +-{100 * a[1]:.1f}"

    types = ["random", *mg.MASK_TYPES.names()] if args.types == "all" else args.types.split(",")
    print(
        f"{'masks':<12} {'two-sample':>14} {'alike eyes':>14} {'transfer bal. acc':>18} {'recall real masks':>18} "
        f"{'vs control':>11} {'spread':>7}"
    )
    floor = two_sample(eye_band(real), eye_band(plain), args.seeds, args.epochs)
    floor_m = two_sample(eye_band(real[mi]), eye_band(plain[mj]), args.seeds, args.epochs)
    print(f"{'floor (eyes)':<12} {pm(floor):>14} {pm(floor_m):>14}")
    ctrl_bal, ctrl_rec = transfer(real[tr_r], plain[tr_u], real[t_r], plain[t_u], args.seeds, args.epochs)
    print(
        f"{'real (ctrl)':<12} {'':>14} {'':>14} {ctrl_bal:>18.1%} {ctrl_rec:>18.1%} {'':>11} "
        f"{spread(real, m_how.blank):>7.1f}"
    )
    rows = [real[:10]]
    for t in types:
        synth = u_how.crops(masked_photos(u_img, u_faces, t, params, args.mask_seed), u_faces)
        acc = two_sample(real, synth, args.seeds, args.epochs)
        acc_m = two_sample(real[mi], synth[mj], args.seeds, args.epochs)
        bal, rec = transfer(synth[tr_u], plain[tr_u], real[t_r], plain[t_u], args.seeds, args.epochs)
        print(
            f"{t:<12} {pm(acc):>14} {pm(acc_m):>14} {bal:>18.1%} {rec:>18.1%} {100 * (rec - ctrl_rec):>+10.1f}p "
            f"{spread(synth, u_how.blank):>7.1f}"
        )
        rows.append(synth[:10])
        if args.regions:
            found = {
                k: two_sample(region(real[mi], v), region(synth[mj], v), args.seeds, args.epochs)
                for k, v in REGIONS.items()
            }
            print(f"{'':<12} alike eyes, each region alone: " + ", ".join(f"{k} {pm(a)}" for k, a in found.items()))
    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    mg.write_image(args.sheet, np.vstack([np.hstack(list(r)) for r in rows]))
    print(f"contact sheet: {args.sheet} (first row real, then {', '.join(types)}); {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
