import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import maskgen as mg
from maskgen import errors
from maskgen.io import MAX_PIXELS, image_info

from .conftest import SHARED


def test_round_trip_keeps_gray_and_rgb(tmp_path, astronaut):
    gray = astronaut[..., 0]
    for name, img in (("g.png", gray), ("c.png", astronaut)):
        p = mg.write_image(tmp_path / name, img)
        back = mg.read_image(p)
        assert back.dtype == np.uint8 and back.shape == img.shape
        assert np.array_equal(back, img)


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path, astronaut):
    mg.write_image(tmp_path / "a.jpg", astronaut)
    mg.write_image(tmp_path / "a.jpg", astronaut[::2, ::2])  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"]
    assert mg.read_image(tmp_path / "a.jpg").shape == (256, 256, 3)


def test_jpeg_quality_is_estimated_and_kept(tmp_path, astronaut):
    Image.fromarray(astronaut).save(tmp_path / "q70.jpg", quality=70)
    info = image_info(tmp_path / "q70.jpg")
    assert info.format == "JPEG" and abs(info.quality - 70) <= 2
    mg.write_image(tmp_path / "copy.jpg", mg.read_image(tmp_path / "q70.jpg"), quality=info.quality)
    assert abs(image_info(tmp_path / "copy.jpg").quality - 70) <= 2


def test_sixteen_bit_png_is_scaled(tmp_path):
    arr = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "d.png")
    img = mg.read_image(tmp_path / "d.png")
    assert img.dtype == np.uint8 and img.ndim == 2
    assert img.min() == 0 and img.max() == 255


def test_cmyk_jpeg_reads_as_rgb(tmp_path, astronaut):
    Image.fromarray(astronaut).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    img = mg.read_image(tmp_path / "c.jpg")
    assert img.shape == astronaut.shape
    assert np.abs(img.astype(int) - astronaut).mean() < 12


def test_exif_rotated_jpeg_is_upright(tmp_path, astronaut):
    tall = astronaut[:, :300]
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise
    Image.fromarray(np.rot90(tall, 1).copy()).save(tmp_path / "r.jpg", exif=exif, quality=95)
    img = mg.read_image(tmp_path / "r.jpg")
    assert img.shape == tall.shape
    assert np.abs(img.astype(int) - tall).mean() < 8


def test_palette_and_alpha(tmp_path, astronaut):
    Image.fromarray(astronaut).convert("P").save(tmp_path / "p.png")
    assert mg.read_image(tmp_path / "p.png").shape == astronaut.shape
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "a.png")
    img = mg.read_image(tmp_path / "a.png")
    assert img.shape == astronaut.shape and (img[:10, :10] == 255).all()  # transparent over white
    assert np.array_equal(img[20:, 20:], astronaut[20:, 20:])


@pytest.mark.parametrize(
    "content, error",
    [
        (b"", errors.NotAnImage),
        (b"this is a text file, not a jpeg\n", errors.NotAnImage),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, content, error):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(error) as e:
        mg.read_image(p)
    assert "\n" not in str(e.value) and "bad.jpg" in str(e.value)


def test_truncated_png(tmp_path, astronaut):
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, format="PNG")
    (tmp_path / "t.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(errors.TruncatedImage, match="truncated"):
        mg.read_image(tmp_path / "t.png")


def test_missing_and_directory(tmp_path):
    with pytest.raises(errors.ImageNotFound):
        mg.read_image(tmp_path / "nope.png")
    with pytest.raises(errors.NotAnImage, match="directory"):
        mg.read_image(tmp_path)


def test_huge_dimensions_are_refused_before_decoding(tmp_path):
    side = int(MAX_PIXELS**0.5) + 100
    Image.new("1", (side, side)).save(tmp_path / "huge.png")  # 1-bit: small file, huge image
    with pytest.raises(errors.TooManyPixels, match="too many pixels"):
        mg.read_image(tmp_path / "huge.png")


def test_unsupported_suffix(tmp_path, astronaut):
    with pytest.raises(errors.UnsupportedImage, match="cannot write"):
        mg.write_image(tmp_path / "x.gifx", astronaut)


def _pillow_pixels(path) -> np.ndarray:
    """What the Pillow-only path returns (the reference the OpenCV fast path must equal)."""
    from maskgen.io import _decode, _open

    return _decode(_open(path), path)  # no bytes given: Pillow decodes


def test_fast_decode_equals_pillow_on_real_faces(tmp_path, samples, astronaut):
    paths = []
    for name, img in samples.items():
        for suffix, q in ((".png", None), (".jpg", 90), (".jpg", 60)):
            p = mg.write_image(tmp_path / f"{name}{q}{suffix}", img, quality=q)
            paths.append(p)
    for sub in ("fer2013-dev", "ckplus48-dev", "jaffe-dev", "maskedreal-dev"):
        paths += sorted(p for p in (SHARED / sub).rglob("*") if p.suffix.lower() in (".jpg", ".png"))[:40]
    for p in paths:
        assert np.array_equal(mg.read_image(p), _pillow_pixels(p)), p


def test_fast_decode_leaves_hard_cases_to_pillow(tmp_path, astronaut):
    from maskgen.io import _fast_read, read_bytes

    small = astronaut[:64, :64]
    Image.fromarray(small[..., 0]).convert("1").save(tmp_path / "bits.png")
    Image.fromarray(small[..., 0] // 16).convert("L").save(tmp_path / "g.png")
    exif = Image.Exif()
    exif[0x0112] = 3
    Image.fromarray(small).save(tmp_path / "rot.jpg", exif=exif)
    Image.fromarray(small).save(tmp_path / "plain.jpg")
    Image.fromarray(small).save(tmp_path / "rot.png", exif=exif)
    full = (tmp_path / "plain.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(full[: len(full) * 2 // 3])
    verdict = {
        name: _fast_read(read_bytes(tmp_path / name)) is not None
        for name in ("bits.png", "g.png", "rot.jpg", "rot.png", "plain.jpg", "cut.jpg")
    }
    assert verdict == {
        "bits.png": False,
        "g.png": True,
        "rot.jpg": False,
        "rot.png": False,
        "plain.jpg": True,
        "cut.jpg": False,
    }
    for name in ("rot.jpg", "rot.png"):
        assert np.array_equal(mg.read_image(tmp_path / name), _pillow_pixels(tmp_path / name))
    assert np.array_equal(mg.read_image(tmp_path / "rot.png"), small[::-1, ::-1])  # orientation 3: turned 180
    with pytest.raises(errors.TruncatedImage, match="truncated"):
        mg.read_image(tmp_path / "cut.jpg")  # OpenCV would have filled the missing half with gray


def test_header_info_equals_pillows(tmp_path, samples):
    """The fast path reads format, mode, size and JPEG quality from the headers: as Pillow does."""
    from maskgen.io import _info, _open, _sniff, read_bytes

    img = samples["astronaut"][:96, :80]
    Image.fromarray(img).save(tmp_path / "prog.jpg", quality=55, progressive=True)
    Image.fromarray(img).save(tmp_path / "opt.jpg", quality=88, optimize=True, subsampling=2)
    Image.fromarray(img[..., 1]).save(tmp_path / "gray.jpg", quality=97)
    Image.fromarray(img).save(tmp_path / "rgb.png")
    Image.fromarray(img[..., 0]).save(tmp_path / "gray.png")
    for q in (5, 30, 75, 100):
        mg.write_image(tmp_path / f"q{q}.jpg", img, quality=q)
    paths = sorted(tmp_path.iterdir())
    for sub in ("fer2013-dev", "ckplus48-dev", "jaffe-dev", "maskedreal-dev"):
        paths += sorted(p for p in (SHARED / sub).rglob("*") if p.suffix.lower() in (".jpg", ".png"))[:60]
    for p in paths:
        sniffed, pil = _sniff(read_bytes(p)), _open(p)
        assert sniffed == (_info(pil), pil.width, pil.height), p
    Image.fromarray(img).convert("P").save(tmp_path / "pal.png")
    Image.fromarray(img).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(img[..., 0].astype(np.uint16) * 257).save(tmp_path / "deep.png")
    assert [_sniff(read_bytes(tmp_path / n)) for n in ("pal.png", "cmyk.jpg", "deep.png")] == [None] * 3


def test_encoded_jpeg_keeps_quality_and_chroma(tmp_path, astronaut):
    for q, sub in ((95, (1, 1)), (75, (2, 2))):
        p = mg.write_image(tmp_path / f"{q}.jpg", astronaut, quality=q)
        im = Image.open(p)
        assert image_info(p).quality == q and im.mode == "RGB"
        assert im.layer[0][1:3] == sub  # luma sampling factors: 1x1 is 4:4:4, 2x2 is 4:2:0
        assert np.abs(mg.read_image(p).astype(int) - astronaut).mean() < (3 if q == 95 else 6)
    assert Image.open(mg.write_image(tmp_path / "g.jpg", astronaut[..., 1])).mode == "L"


def test_unreadable_path_is_a_one_line_error(tmp_path):
    with pytest.raises(errors.NotAnImage, match="cannot read .*too long") as e:
        mg.read_image(tmp_path / ("x" * 300 + ".png"))  # the OS refuses the name itself
    assert "\n" not in str(e.value)


def test_write_makes_missing_folders(tmp_path, astronaut):
    p = mg.write_image(tmp_path / "a" / "b" / "c.png", astronaut[:16, :16])
    assert np.array_equal(mg.read_image(p), astronaut[:16, :16])
    assert [q.name for q in p.parent.iterdir()] == ["c.png"]


def test_written_files_get_the_usual_permissions(tmp_path, astronaut):
    old = os.umask(0o022)
    try:
        p = mg.write_image(tmp_path / "a.png", astronaut[:16, :16])
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o644  # readable by a lab's other users, like any saved file


def test_a_failed_write_leaves_neither_file_nor_temp(tmp_path, monkeypatch):
    from maskgen import io as mio

    def broken(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mio.os, "write", broken)
    with pytest.raises(OSError, match="No space"):
        mio.write_bytes_atomic(tmp_path / "a.bin", b"x" * 100)
    assert list(tmp_path.iterdir()) == []


def test_damaged_headers_give_an_image_or_a_one_line_error(tmp_path, samples):
    """Bytes flipped or cut in the headers the fast path parses: never an exception other than ours."""
    img = samples["astronaut"][::8, ::8]
    originals = {}
    for suffix in (".jpg", ".png"):
        for name, arr in (("rgb", img), ("gray", img[..., 0])):
            originals[name + suffix] = mg.write_image(tmp_path / f"{name}{suffix}", arr, quality=80).read_bytes()
    rng = np.random.default_rng(0)
    outcomes = {"image": 0, "error": 0}
    for i in range(200):
        name, data = list(originals.items())[i % len(originals)]
        data = bytearray(data)
        for pos in rng.integers(0, min(len(data), 700), size=rng.integers(1, 4)):
            if not (name.endswith(".png") and 16 <= pos < 24):  # a PNG claiming 80 MP takes Pillow seconds to refuse
                data[pos] = rng.integers(256)
        if i % 3 == 0:
            data = data[: rng.integers(2, len(data))]
        p = tmp_path / f"bad{i}{os.path.splitext(name)[1]}"
        p.write_bytes(bytes(data))
        try:
            got = mg.read_image(p)
        except errors.MaskgenError as e:
            assert "\n" not in str(e)
            outcomes["error"] += 1
        else:
            assert got.dtype == np.uint8 and got.ndim in (2, 3)
            outcomes["image"] += 1
    assert outcomes["image"] > 0 and outcomes["error"] > 0, outcomes
    jpeg = bytearray(originals["rgb.jpg"])
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 2 : sof + 4] = b"\x00\x02"  # a frame header that claims no content
    (tmp_path / "short_sof.jpg").write_bytes(bytes(jpeg))
    with pytest.raises(errors.MaskgenError):
        mg.read_image(tmp_path / "short_sof.jpg")


def test_atomic_writes_with_and_without_unnamed_files(tmp_path, monkeypatch):
    """Linux writes an unnamed file and links it (no temp name ever appears); replacing a file, or a
    system without O_TMPFILE, takes a temp file and a rename. Both give the same bytes and permissions."""
    from maskgen import io as mio

    made = []
    real_open = os.open
    monkeypatch.setattr(mio.os, "open", lambda p, *a, **k: made.append(os.fspath(p)) or real_open(p, *a, **k))
    old = os.umask(0o022)
    try:
        mio.write_bytes_atomic(tmp_path / "new" / "a.bin", b"first")  # also makes the folder
        if hasattr(os, "O_TMPFILE") and Path("/proc/self/fd").is_dir():
            assert not [p for p in made if p.endswith(".part")]  # no temp name used
        mio.write_bytes_atomic(tmp_path / "new" / "a.bin", b"second")  # replace: temp + rename
        assert [p for p in made if p.endswith(".part")]
        monkeypatch.delattr(mio.os, "O_TMPFILE", raising=False)
        mio.write_bytes_atomic(tmp_path / "new" / "b.bin", b"third")
    finally:
        os.umask(old)
    assert (tmp_path / "new" / "a.bin").read_bytes() == b"second"
    assert (tmp_path / "new" / "b.bin").read_bytes() == b"third"
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["a.bin", "b.bin"]
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "new").iterdir()} == {0o644}
