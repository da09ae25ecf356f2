"""Pack FER-2013's Training and PublicTest rows small enough to travel to a lent GPU machine, and unpack them there.

The device tool carries at most 64 MiB with the repository; the Kaggle CSV is 84 MB gzipped. Pixels are stored as
uint8 with a horizontal delta filter (PNG's "Sub") and xz compression: about 52 MB. The packed file lives in an
ignored folder and is never committed (the data is not ours to redistribute).

    python training/device/pack_data.py pack ../shared/data/fer2013.csv.gz .devdata/fer.npz.xz
    python training/device/pack_data.py unpack .devdata/fer.npz.xz /tmp/fer2013.csv
"""

from __future__ import annotations

import csv
import gzip
import io
import lzma
import sys

import numpy as np

USAGES = ("Training", "PublicTest")


def pack(src: str, dst: str) -> None:
    xs, ys, us = [], [], []
    with gzip.open(src, "rt") if src.endswith(".gz") else open(src) as f:
        reader = csv.reader(f)
        next(reader)
        for emotion, pixels, usage in reader:
            if usage not in USAGES:
                continue  # PrivateTest, were it present, never leaves the machine
            xs.append(np.array(pixels.split(), dtype=np.uint8))
            ys.append(int(emotion))
            us.append(USAGES.index(usage))
    x = np.stack(xs).reshape(-1, 48, 48)
    delta = x.copy()
    delta[:, :, 1:] = (x[:, :, 1:].astype(np.int16) - x[:, :, :-1]).astype(np.uint8)
    buf = io.BytesIO()
    np.savez(buf, xf=delta.reshape(-1, 2304), y=np.array(ys, np.uint8), u=np.array(us, np.uint8))
    with open(dst, "wb") as f:
        f.write(lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME))


def unpack(src: str, dst: str) -> None:
    with open(src, "rb") as f:
        data = np.load(io.BytesIO(lzma.decompress(f.read())))
    x = np.cumsum(data["xf"].reshape(-1, 48, 48).astype(np.uint32), axis=2) % 256
    x = x.reshape(-1, 2304)
    from multiprocessing import Pool

    with Pool() as pool:
        lines = pool.map(_line, zip(x, data["y"], data["u"]), chunksize=512)
    with open(dst, "w") as f:
        f.write("emotion,pixels,Usage\n")
        f.writelines(lines)


def _line(item) -> str:
    row, y, u = item
    return f"{y},{' '.join(map(str, row))},{USAGES[u]}\n"


if __name__ == "__main__":
    verb, a, b = sys.argv[1:4]
    if verb == "pack":
        pack(a, b)
    elif verb == "unpack":
        unpack(a, b)
    else:
        raise SystemExit(f"unknown verb {verb!r}; use pack or unpack")
