"""On-the-fly masking: every input kind, DataLoader workers, seeding, the face cache, HF datasets, examples."""

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import maskgen as mg
from maskgen.errors import BadParameter, UnknownName
from maskgen.transforms import HFMask, MaskFaces

from .conftest import EXAMPLES, REPO, SHARED

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def crop():
    return mg.read_image(EXAMPLES / "happy" / "astronaut_48.png")


def test_p_and_the_type_choice_follow_their_settings(crop):
    from collections import Counter

    tf = MaskFaces(p=0.3, types=["surgical", "cloth", "n95"], seed=0, faces=mg.precompute_faces([crop]))
    drawn = [tf._draw(crop, tf._next_seed()) for _ in range(900)]
    masked = [d for d in drawn if d is not None]
    assert 0.25 < len(masked) / len(drawn) < 0.35
    counts = Counter(d[1]["type"] for d in masked)
    assert set(counts) == {"surgical", "cloth", "n95"} and min(counts.values()) > 0.25 * len(masked), counts


def test_every_input_kind_comes_back_the_same(crop, astronaut):
    tf = MaskFaces(seed=0, return_occlusion=True)
    for img in (Image.fromarray(crop), Image.fromarray(astronaut)):
        out, occ = tf(img)
        assert isinstance(out, Image.Image) and out.mode == img.mode and out.size == img.size and occ.any()
    out, occ = tf(astronaut)
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    assert np.array_equal(out[occ == 0], astronaut[occ == 0])
    t = torch.from_numpy(crop.copy())[None].float() / 255
    out, occ = tf(t)
    assert out.shape == t.shape and out.dtype == torch.float32 and 0 <= float(out.min()) <= float(out.max()) <= 1
    unchanged = torch.from_numpy(occ == 0)[None]
    assert torch.equal(out[unchanged], t[unchanged])  # no float->uint8 round trip outside the mask
    t8 = torch.from_numpy(astronaut.copy()).permute(2, 0, 1)
    assert tf(t8)[0].dtype == torch.uint8


def test_p_and_seeds(crop):
    assert np.array_equal(MaskFaces(p=0.0, seed=0)(crop), crop)
    a, b = MaskFaces(seed=3), MaskFaces(seed=3)
    first = [a(crop) for _ in range(4)]
    assert all(np.array_equal(x, y) for x, y in zip(first, [b(crop) for _ in range(4)], strict=True))
    assert not all(np.array_equal(first[0], x) for x in first[1:])  # calls differ
    a.set_epoch(1)
    assert not np.array_equal(a(crop), first[0])


class Crops(torch.utils.data.Dataset):
    def __init__(self, img, tf):
        self.img, self.tf = img, tf

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.from_numpy(np.ascontiguousarray(self.tf(self.img), dtype=np.float32))


def run_loader(crop, seed):
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        Crops(crop, MaskFaces(seed=0, types="random", color="random")), batch_size=4, num_workers=2
    )
    return [torch.cat(list(loader)) for _ in range(2)]


def test_dataloader_two_workers_reproducible(crop):
    e1 = run_loader(crop, 5)
    assert e1[0].shape == (8, 48, 48)
    assert not torch.equal(e1[0], e1[1])  # two epochs differ
    assert (e1[0] != torch.from_numpy(crop.astype(np.float32))).any()  # masked
    e2 = run_loader(crop, 5)
    assert all(torch.equal(a, b) for a, b in zip(e1, e2, strict=True))  # a fixed seed reproduces the run


def test_pickle_and_cache(tmp_path, crop, monkeypatch):
    cache = mg.precompute_faces(EXAMPLES, tmp_path / "faces.npz")
    assert len(cache) == 6 and (tmp_path / "faces.npz").exists()
    loaded = mg.FaceCache.load(tmp_path / "faces.npz")
    tf = pickle.loads(pickle.dumps(MaskFaces(seed=0, faces=tmp_path / "faces.npz")))
    import maskgen.transforms as mod

    monkeypatch.setattr(mod, "detect", lambda *a, **k: pytest.fail("detection should come from the cache"))
    out = tf(crop)
    assert not np.array_equal(out, crop) and tf.faces.hits == 1
    # the same picture as a float tensor finds the same entry
    assert loaded.get(torch.from_numpy(crop.copy())[None].float().div(255).permute(1, 2, 0).numpy()) is not None


def test_content_key_agrees_across_kinds(crop, astronaut):
    from maskgen.facecache import content_key

    gray = crop if crop.ndim == 2 else crop[..., 0]
    as_rgb = np.repeat(gray[..., None], 3, axis=2)
    assert content_key(gray) == content_key(as_rgb) == content_key(gray[..., None]) == content_key(gray / 255.0)
    assert content_key(Image.fromarray(as_rgb).convert("RGBA")) == content_key(gray)
    assert content_key(astronaut) != content_key(np.asarray(Image.fromarray(astronaut).convert("L")))
    assert content_key(gray) != content_key(gray.T.copy())  # same pixels, another picture


def test_bad_arguments():
    with pytest.raises(UnknownName, match="choose one of"):
        MaskFaces(types=["surgical", "bandana"])
    with pytest.raises(BadParameter, match="p must be"):
        MaskFaces(p=2)
    with pytest.raises(BadParameter, match="PIL image, a numpy array or a CHW torch tensor"):
        MaskFaces()("face.jpg")


def test_hf_with_transform_and_map(crop, astronaut):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(crop), Image.fromarray(astronaut)], "label": [0, 1]})
    ds = ds.cast_column("image", datasets.Image())
    live = ds.with_transform(HFMask(seed=0, occlusion_column="occlusion"))
    row = live[1]
    assert row["image"].size == (512, 512) and np.asarray(row["occlusion"]).any() and row["label"] == 1
    m1 = ds.map(HFMask(seed=0, types="kn95"), batched=True, with_indices=True)
    m2 = ds.map(HFMask(seed=0, types="kn95"), batched=True, with_indices=True)
    for a, b, orig in zip(m1, m2, ds, strict=True):
        assert np.array_equal(np.asarray(a["image"]), np.asarray(b["image"]))
        assert not np.array_equal(np.asarray(a["image"]), np.asarray(orig["image"]))


@pytest.mark.parametrize("script", ["dataloader.py", "hf_datasets.py", "deploy_zeroing.py"])
def test_python_examples_run(tmp_path, script):
    out = subprocess.run(
        [sys.executable, REPO / "examples" / script], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    if script == "dataloader.py":
        assert "reproducible with the same seed: True" in out.stdout
    if script == "hf_datasets.py":
        assert "identical when run again: True" in out.stdout


@pytest.mark.parametrize(
    "script, product",
    [("convert_folder.sh", "masked/metadata.csv"), ("train_and_evaluate.sh", "experiment/report.html")],
)
def test_shell_examples_run(tmp_path, script, product):
    pytest.importorskip("sklearn")
    env_path = f"{Path(sys.executable).parent}:/usr/bin:/bin"  # the maskgen console script beside this Python
    out = subprocess.run(
        ["bash", REPO / "examples" / script, EXAMPLES, tmp_path / "o"],
        capture_output=True,
        text=True,
        timeout=300,  # a hang guard: a loaded 2-core machine runs the example 2-3x slower
        env={"PATH": env_path},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "o" / product).exists()


def small_batch() -> tuple[np.ndarray, mg.FaceCache]:
    """48x48 gray crops of real faces: the shipped ones, their mirror images and shifted copies, and
    FER2013 crops when the shared data is present."""
    crops = [
        mg.read_image(EXAMPLES / d / f) for d, f in (("happy", "astronaut_48.png"), ("neutral", "grace_hopper_48.png"))
    ]
    crops = [c if c.ndim == 2 else c.mean(2).astype(np.uint8) for c in crops]
    crops += [c[:, ::-1].copy() for c in crops] + [np.roll(c, 2, axis=1) for c in crops]
    fer = sorted((SHARED / "fer2013-dev").glob("*/*"))[:40]
    crops += [mg.read_image(p) for p in fer]
    x = np.stack(crops)
    return x, mg.precompute_faces(list(x))


def test_batch_draws_and_keys_equal_the_one_by_one_ones(astronaut):
    from maskgen.facecache import content_key, content_keys
    from maskgen.seeds import _splitmix64, splitmix_number, splitmix_stream, unit_draws, unit_draws_array

    seeds = [0, 1, 2**63 - 1, *np.random.default_rng(0).integers(0, 2**63, 200).tolist()]
    many = unit_draws_array(np.array(seeds, np.uint64), 3)
    assert all([int(v) for v in many[:, i]] == unit_draws(s, 3) for i, s in enumerate(seeds))
    for s in seeds[:20]:  # number k of splitmix64 from s: its state s + k * golden, mixed
        expected = [_splitmix64((s + (k - 1) * 0x9E3779B97F4A7C15) % 2**64) for k in range(5, 15)]
        assert splitmix_stream(s, 5, 10).tolist() == expected == splitmix_stream(s, 1, 14)[4:].tolist()
        assert [splitmix_number(s, k) for k in range(5, 15)] == expected
    x, _ = small_batch()
    rgb = np.repeat(x[..., None], 3, axis=3)
    rgb[1] = astronaut[:48, :48]  # one colour crop among gray-as-RGB ones
    rgba = np.concatenate([rgb, np.full(rgb.shape[:3] + (1,), 7, np.uint8)], axis=3)
    for stack in (x, x[..., None], rgb, rgba):
        assert content_keys(stack) == [content_key(im) for im in stack]
    assert content_keys(rgb)[0] == content_key(x[0]) and content_keys(rgb)[1] != content_key(x[1])


def test_get_many_answers_as_get_does_also_from_its_memo(monkeypatch):
    import pickle

    import maskgen.facecache as fc
    from maskgen.facecache import content_key

    x, cache = small_batch()
    twin = x[:4].copy()
    twin[:, 1, 2] ^= 1  # differs from x[:4] in one pixel the sampled pixels skip: a memo candidate, not a match
    assert (1 * x.shape[2] + 2) % (x[0].size // 61) != 0
    stack = np.concatenate([x, twin, x[:3]])
    expected = [cache.get_key(content_key(im)) for im in stack]  # by the hash alone
    assert sum(f is None for f in expected) == 4 and sum(f is not None for f in expected) == len(x) + 3
    for limit in (fc.MEMO_BYTES, 3 * x[0].size):  # the memo full after three images: the rest are hashed
        monkeypatch.setattr(fc, "MEMO_BYTES", limit)
        fresh = pickle.loads(pickle.dumps(cache))  # as a DataLoader worker gets it: entries without a memo
        assert fresh._seen == {} and fresh.hits == cache.hits
        answers = [fresh.get_key(content_key(im)) for im in stack]
        fresh.hits = fresh.misses = 0
        for _ in range(3):  # first from the hashes, then from the memo
            assert [f is e for f, e in zip(fresh.get_many(stack), answers, strict=True)] == [True] * len(stack)
            assert all(fresh.get(im) is e for im, e in zip(stack, answers, strict=True))
        assert (fresh.hits, fresh.misses) == (6 * (len(x) + 3), 6 * 4)
        assert fresh._seen_bytes == min(len(x) + 4, limit // x[0].size) * x[0].size  # each image once
    rgba = np.concatenate([np.repeat(x[..., None], 3, 3), np.full(x.shape + (1,), 9, np.uint8)], axis=3)
    other_alpha = rgba.copy()
    other_alpha[..., 3] = 200  # alpha is not part of the key: the same faces
    got = cache.get_many(np.concatenate([rgba, other_alpha]))
    assert all(f is e for f, e in zip(got, expected[: len(x)] * 2, strict=True))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strategy": "zero"},
        {"strategy": "zero", "fill": "noise"},
        {"types": "random", "p": 0.7},
        {"types": ["kn95", "gas"], "color": "random", "jitter": 1.0},
        {"types": "random", "color": "random", "shade": 0.8, "soften": 0.6, "grain": 1.0},
        {"types": "random", "fit": 1.0},
        {"types": "random", "color": "random", "relief": 1.0},
    ],
)
def test_batch_equals_one_by_one(kwargs):
    x, cache = small_batch()
    one = MaskFaces(faces=cache, seed=3, return_occlusion=True, **kwargs)
    many = MaskFaces(faces=cache, seed=3, return_occlusion=True, **kwargs)
    singles = [one(im) for im in x]
    out, occ = many.batch(x)
    assert out.shape == x.shape and out.dtype == np.uint8 and occ.shape == x.shape
    assert all(np.array_equal(a, b) for (a, _), b in zip(singles, out, strict=True))
    assert all(np.array_equal(a, b) for (_, a), b in zip(singles, occ, strict=True))
    masked = [not np.array_equal(a, b) for a, b in zip(x, out, strict=True)]
    assert sum(masked) >= (0.5 if kwargs.get("p") else 0.9) * len(x)
    rgb = np.repeat(x[..., None], 3, axis=3)  # colour batches take the same path
    colour = MaskFaces(faces=cache, seed=3, **kwargs).batch(rgb)
    assert colour.shape == rgb.shape and not np.array_equal(colour, rgb)


def test_mask_collate_in_a_dataloader():
    from torch.utils.data import DataLoader

    from maskgen.transforms import MaskCollate

    x, cache = small_batch()
    items = [(x[i], i % 3) for i in range(len(x))]
    collate = MaskCollate(MaskFaces(types="random", faces=cache, seed=0))
    batches = list(DataLoader(items, batch_size=8, num_workers=2, collate_fn=collate))
    images = torch.cat([b[0] for b in batches])
    labels = torch.cat([b[1] for b in batches])
    assert images.dtype == torch.uint8 and images.shape == x.shape
    assert labels.tolist() == [i % 3 for i in range(len(x))]
    assert (images.numpy() != x).any(axis=(1, 2)).mean() > 0.9
    with pytest.raises(BadParameter, match="uint8"):
        collate([(x[0].astype(np.float32), 0)])
    rows = [{"image": x[i], "label": i} for i in range(4)]  # dict items, as Hugging Face datasets give
    out = MaskCollate(MaskFaces(strategy="zero", faces=cache, seed=0), key="image")(rows)
    assert out["label"].tolist() == [0, 1, 2, 3] and out["image"].shape == (4, 48, 48)
    assert (out["image"].numpy() != x[:4]).any(axis=(1, 2)).all()


def test_opencv_runs_serially_in_dataloader_workers_only():
    """Workers fill the cores; OpenCV's own pool threads would only contend with them. Set in forked
    workers after the parent's pool has run (where setNumThreads(1) hangs: the loader's timeout fails
    the test rather than hanging it)."""
    import cv2
    from torch.utils.data import DataLoader

    from maskgen.transforms import MaskCollate

    x, cache = small_batch()
    cv2.setNumThreads(2)
    cv2.multiply(np.ones((512, 512), np.float32), np.ones((512, 512), np.float32))  # the parent's pool runs
    collate = MaskCollate(MaskFaces(types="random", faces=cache, seed=0))

    def masked_then_threads(items):
        return collate(items), cv2.getNumThreads()

    items = [(x[i], 0) for i in range(16)]
    out = list(DataLoader(items, batch_size=8, num_workers=2, collate_fn=masked_then_threads, timeout=120))
    assert [threads for _, threads in out] == [1, 1]
    assert all((batch[0].numpy() != x[i * 8 : i * 8 + 8]).any() for i, (batch, _) in enumerate(out))
    MaskFaces(types="random", faces=cache, seed=0).batch(x[:4])  # outside a worker: left as it was
    assert cv2.getNumThreads() == 2


def test_mask_collate_masks_its_own_batch_never_the_items():
    """The default collate's fresh batch is masked in place (the bytes of `batch`), a custom collate's
    output is copied first: the dataset's own arrays are never written."""
    from maskgen.transforms import MaskCollate

    x, cache = small_batch()
    before = x.copy()
    items = [(torch.from_numpy(x[i]), i) for i in range(8)]  # views of the dataset's memory
    images, _ = MaskCollate(MaskFaces(types="random", faces=cache, seed=0))(items)
    assert np.array_equal(images.numpy(), MaskFaces(types="random", faces=cache, seed=0).batch(x[:8]))
    views = MaskCollate(MaskFaces(types="random", faces=cache, seed=0), collate=lambda b: (torch.from_numpy(x[:8]), 0))
    out, _ = views(items)
    assert np.array_equal(x, before) and np.array_equal(out.numpy(), images.numpy())
    arr = x[:8].copy()
    assert MaskFaces(types="random", faces=cache, seed=0).batch(arr, inplace=True) is arr
    assert np.array_equal(arr, images.numpy())
    with pytest.raises(BadParameter, match="writable"):
        MaskFaces(seed=0, faces=cache).batch(np.broadcast_to(x[:1], (2, 48, 48)), inplace=True)


def test_hf_map_without_batched_works_per_example(crop, astronaut):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(crop), Image.fromarray(astronaut)], "label": [0, 1]})
    ds = ds.cast_column("image", datasets.Image())
    one = ds.map(HFMask(seed=0, types="kn95"), with_indices=True)  # the default: one example per call
    many = ds.map(HFMask(seed=0, types="kn95"), batched=True, with_indices=True)
    for a, b, orig in zip(one, many, ds, strict=True):
        assert np.array_equal(np.asarray(a["image"]), np.asarray(b["image"]))  # the same masks either way
        assert not np.array_equal(np.asarray(a["image"]), np.asarray(orig["image"]))
    assert one["label"] == [0, 1]


def test_mask_collate_takes_chw_tensors_as_read_image_gives():
    from maskgen.transforms import MaskCollate

    x, cache = small_batch()
    rgb = np.repeat(x[:6, ..., None], 3, axis=3)
    chw = [(torch.from_numpy(im).permute(2, 0, 1).contiguous(), 0) for im in rgb]
    images, _ = MaskCollate(MaskFaces(strategy="zero", faces=cache, seed=0))(chw)
    hwc = MaskFaces(strategy="zero", faces=cache, seed=0).batch(rgb)
    assert images.shape == (6, 3, 48, 48)
    assert np.array_equal(images.permute(0, 2, 3, 1).numpy(), hwc)  # the same masks as channels-last
    gray = [(torch.from_numpy(im)[None], 0) for im in x[:6]]
    images, _ = MaskCollate(MaskFaces(strategy="zero", faces=cache, seed=0))(gray)
    assert images.shape == (6, 1, 48, 48) and (images[:, 0].numpy() != x[:6]).any(axis=(1, 2)).all()


def test_float_and_16_bit_inputs_keep_their_range(crop):
    faces = mg.detect(crop, fallback="aligned")
    ref = mg.mask(crop, faces=faces, seed=1)
    occ = ref.occlusion > 0
    for arr, top in ((crop.astype(np.float32), 255.0), (crop / 255.0, 1.0), (crop.astype(np.uint16) * 257, 65535)):
        res = mg.mask(arr, faces=faces, seed=1)
        assert res.image.dtype == arr.dtype and np.array_equal(res.image[~occ], arr[~occ])
        scaled = res.image[occ].astype(np.float64) * (255.0 / top)
        assert np.abs(scaled - ref.image[occ]).max() <= 1.0  # the same mask, in the input's own range
    with pytest.raises(BadParameter, match="0-1 or 0-255"):
        mg.mask(crop.astype(np.float32) * 2, faces=faces)
    with pytest.raises(BadParameter, match="empty"):
        mg.mask(np.zeros((0, 0, 3), np.uint8), faces=faces)
    tf = MaskFaces(seed=0, faces=mg.precompute_faces([crop]))
    out = tf(torch.from_numpy(crop).float()[None])  # a float CHW tensor 0-255
    assert out.dtype == torch.float32 and out.max() > 1 and not torch.equal(out[0], torch.from_numpy(crop).float())
    pil16 = Image.fromarray(crop.astype(np.uint16) * 257)
    assert pil16.mode == "I;16"
    out16 = MaskFaces(seed=0, fallback="aligned")(pil16)
    assert out16.mode == "I;16" and np.asarray(out16).max() > 255
    with pytest.raises(BadParameter, match="HWC use tensor.permute"):
        tf(torch.zeros(48, 48, 3))


def test_dataloader_bench_runs_small_and_prints_its_tables():
    """bench/dataloader.py on 128 crops, one round: both tables, with a figure in every row."""
    out = subprocess.run(
        [sys.executable, REPO / "bench" / "dataloader.py", "--n", "128", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line[:44].strip(): line[44:].split() for line in out.stdout.splitlines() if len(line) > 44}
    for label in ("overlay random", "overlay random, shade=1", "zero"):
        assert float(rows[label][0]) > 0, label  # us per crop
    for label in ("per batch: MaskCollate overlay random", "per item: MaskFaces zero"):
        seconds, ratio = (float(x) for x in rows[label])
        assert seconds > 0 and ratio > 0.5, label
    assert float(rows["per batch: no masking"][1]) == 1.0
