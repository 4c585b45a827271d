#!/usr/bin/python3
# tifffile-crosscheck.py — our TIFF reader and writer against an independent implementation:
# Debian's python3-tifffile (Christoph Gohlke's tifffile, not libtiff). Suite 'data'.
#
# Stacks written by tifffile in the layouts a lab meets (strips, tiles, Deflate, BigTIFF,
# ImageJ; Debian's tifffile writes LZW and PackBits only with imagecodecs, which Debian
# lacks: the C tests cover those through libtiff) go through `emseg export-isbi
# --probabilities`, which reads them with app/io and writes the ISBI submission with our
# writer; tifffile then reads the submission back. Every value must survive exactly, and
# the submission must be what the challenge asks for: one 32-bit IEEE float page per
# slice. Also: what `emseg synth` writes reads back in tifffile as 8-bit pages; a label
# stack survives the project store; a probability outside [0, 1] is refused with its slice.
#
# Usage: tifffile-crosscheck.py PATH-TO-EMSEG. Prints TAP.
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import tifffile

EMSEG = sys.argv[1]
N, H, W = 4, 48, 40
results = []


def check(name, ok, detail=""):
    results.append((name, ok, detail))


def emseg(*args):
    return subprocess.run([EMSEG, *args], capture_output=True, text=True)


def imagej_view(path):
    # What ImageJ (and so Fiji, which scores ISBI submissions) reads: its TiffDecoder stops
    # after page 0 when page 0's "ImageJ=" description says images=N (N > 1, uncompressed)
    # and reads N images back to back from page 0's first pixel; otherwise every page.
    with tifffile.TiffFile(path) as tf:
        p = tf.pages[0]
        desc = p.description or ""
        m = re.search(r"\nimages=(\d+)", desc) if desc.startswith("ImageJ=") else None
        if m is None or int(m.group(1)) < 2 or p.compression != 1:
            return np.stack([pg.asarray() for pg in tf.pages])
        n = int(m.group(1))
        dtype = p.dtype.newbyteorder("<" if tf.byteorder == "<" else ">")
        with open(path, "rb") as f:
            raw = f.read()
        count = n * p.shape[0] * p.shape[1]
        if p.dataoffsets[0] + count * dtype.itemsize > len(raw):
            return None
        return np.frombuffer(raw, dtype=dtype, count=count,
                             offset=p.dataoffsets[0]).reshape(n, *p.shape)


def write(path, data, **kw):
    # photometric given: tifffile would store a stack of 3 or 4 slices as one RGB(A) page
    tifffile.imwrite(path, data, photometric="minisblack", **kw)


def pages_of(path):
    with tifffile.TiffFile(path) as tf:
        return [(p.dtype, p.bitspersample, int(p.sampleformat), p.shape) for p in tf.pages]


with tempfile.TemporaryDirectory(prefix="emseg-tifffile-") as d:
    images = os.path.join(d, "images.tif")
    labels = os.path.join(d, "labels.tif")
    r = emseg("synth", "--images", images, "--labels", labels, "--size", "48", "--slices", str(N))
    check("emseg synth runs", r.returncode == 0, r.stderr)
    # synth writes square slices; what tifffile sees must be 8-bit pages of that size
    img = tifffile.imread(images)
    lab = tifffile.imread(labels)
    check("synth images read by tifffile as uint8 N x 48 x 48",
          img.dtype == np.uint8 and img.shape == (N, 48, 48), f"{img.dtype} {img.shape}")
    check("synth labels are 0 / 255 only", set(np.unique(lab)) <= {0, 255},
          str(np.unique(lab)))

    # The images used for shape checks below: written by tifffile, 16-bit, tiled.
    imgs = os.path.join(d, "images16.tif")
    write(imgs, (np.arange(N * H * W, dtype=np.uint16) * 7).reshape(N, H, W),
                     tile=(16, 16), compression="zlib")

    rng = np.random.default_rng(7)
    prob = rng.random((N, H, W), dtype=np.float32)
    prob[0, 0, 0], prob[1, 5, 5] = 0.0, 1.0  # both ends of the range
    layouts = {
        "one strip": {},
        "strips of 7 rows": {"rowsperstrip": 7},
        "tiles 16x16, Deflate": {"tile": (16, 16), "compression": "zlib"},
        "BigTIFF": {"bigtiff": True},
        "ImageJ hyperstack": {"imagej": True},
    }
    for name, kw in layouts.items():
        src = os.path.join(d, "prob.tif")
        out = os.path.join(d, "submission.tif")
        write(src, prob, **kw)
        r = emseg("export-isbi", "--images", imgs, "--probabilities", src, "--out", out)
        if r.returncode != 0:
            check(f"{name}: export-isbi reads it", False, r.stderr.strip())
            continue
        back = tifffile.imread(out)
        pages = pages_of(out)
        check(f"{name}: submission has {N} float32 pages of {H}x{W}",
              len(pages) == N and all(p == (np.float32, 32, 3, (H, W)) for p in pages),
              str(pages[:2]))
        check(f"{name}: every value survives exactly",
              back.shape == prob.shape and np.array_equal(back, prob),
              f"max |diff| {np.max(np.abs(back.astype(np.float64) - prob)) if back.shape == prob.shape else back.shape}")
        ij = imagej_view(out)
        check(f"{name}: ImageJ's reading of the submission is every slice too",
              ij is not None and ij.shape == prob.shape and np.array_equal(ij, prob),
              "ImageJ would read other values" if ij is not None else "past the end")

    # Labels through the project store: tifffile writes 8-bit labels (horizontal-difference
    # predictor with Deflate, tiled; and plain), `emseg project create` imports them and
    # `emseg project export-labels` writes them back with our writer.
    lab_in = np.where(rng.random((N, H, W)) < 0.3, 0, 255).astype(np.uint8)
    for name, kw in {"plain": {}, "predictor + Deflate, tiles 16x16":
                     {"predictor": True, "compression": "zlib", "tile": (16, 16)}}.items():
        src = os.path.join(d, "labels-in.tif")
        proj = os.path.join(d, f"p{len(results)}.emseg")
        out = os.path.join(d, "labels-out.tif")
        write(src, lab_in, **kw)
        r = emseg("project", "create", proj, "--images", imgs, "--labels", src)
        if r.returncode == 0:
            r = emseg("project", "export-labels", proj, "--out", out)
        if r.returncode != 0:
            check(f"labels, {name}: project create / export-labels", False, r.stderr.strip())
            continue
        back = tifffile.imread(out)
        check(f"labels, {name}: exported labels equal the imported ones",
              back.dtype == np.uint8 and np.array_equal(back, lab_in),
              f"{back.dtype} {back.shape}")

    # Out of range: refused, the slice named, nothing written.
    bad = prob.copy()
    bad[2, 10, 10] = 1.5
    src = os.path.join(d, "prob-bad.tif")
    out = os.path.join(d, "submission-bad.tif")
    write(src, bad)
    r = emseg("export-isbi", "--images", imgs, "--probabilities", src, "--out", out)
    check("a probability of 1.5 is refused, naming slice 2",
          r.returncode != 0 and "slice 2" in r.stderr and not os.path.exists(out), r.stderr.strip())

print("TAP version 13")
print(f"1..{len(results)}")
for i, (name, ok, detail) in enumerate(results, 1):
    print(f"{'ok' if ok else 'not ok'} {i} {name}")
    if not ok and detail:
        for line in str(detail).splitlines():
            print(f"# {line}")
sys.exit(0 if all(ok for _, ok, _ in results) else 1)
