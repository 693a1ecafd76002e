"""The ensemble: the mean over teachers of softmax(logits / temperature), each teacher fed its own view."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..augment import single_thread
from ..errors import ConfigError
from ..validation import check_temperature
from .teacher import Teacher, ViewSpec


class Ensemble:
    """Mean over teachers of softmax(logits / temperature), each teacher fed the view at its own resolution.

    Args:
        teachers: the :class:`Teacher` objects (see :func:`~hf_reinforce.load_teacher`), all with the same class count.
        temperature: the softmax temperature.

    Raises:
        ConfigError: no teachers, teachers that disagree on the class count, or a temperature that is not positive.
        TypeError: an element is not a :class:`Teacher`.
    """

    def __init__(self, teachers: Sequence[Teacher], temperature: float = 1.0) -> None:
        self.teachers = list(teachers)
        if not self.teachers:
            raise ConfigError("teachers: an Ensemble needs at least one teacher")
        for teacher in self.teachers:
            if not isinstance(teacher, Teacher):
                raise TypeError(f"Ensemble takes Teacher objects (see load_teacher), got {type(teacher).__name__}")
        self.temperature = check_temperature(temperature)
        counts = {t.name: t.num_classes for t in self.teachers}
        if len(set(counts.values())) > 1:
            raise ConfigError(f"teachers disagree on the number of classes: {counts}; use class_mapping to align them")

    @property
    def num_classes(self) -> int:
        """Number of classes of the ensemble's probabilities."""
        return self.teachers[0].num_classes

    @property
    def device(self) -> torch.device:
        """Device of the returned probabilities (the first teacher's)."""
        return self.teachers[0].device

    def view_specs(self) -> list[ViewSpec]:
        """Distinct (resolution, interpolation) views the teachers need, in teacher order."""
        return list(dict.fromkeys(t.view_spec for t in self.teachers))

    @torch.inference_mode()
    def teacher_probs(
        self, views: Mapping[ViewSpec, torch.Tensor], progress: Callable[[float], None] | None = None
    ) -> list[torch.Tensor]:
        """Each teacher's float32 (B, C) tempered softmax on the ensemble's device, in teacher order; `views` maps
        each view spec to uint8 (B, 3, R, R). `progress` is called after every teacher micro-batch with the views
        done, each teacher counting 1/T."""
        out: list[torch.Tensor] = []
        for teacher in self.teachers:
            if teacher.view_spec not in views:
                raise ValueError(
                    f"no view {tuple(teacher.view_spec)} for teacher {teacher.name!r}; "
                    f"the ensemble needs {[tuple(v) for v in self.view_specs()]}"
                )
            share = None if progress is None else (lambda n: progress(n / len(self.teachers)))
            logits = teacher.logits(views[teacher.view_spec], share)
            with single_thread():  # (B, C): a (256, 10) softmax took 26 ms on 2 threads beside a worker (loaded)
                probs = torch.softmax(logits / self.temperature, dim=1).to(self.device)
            if out and probs.shape != out[0].shape:
                raise ValueError(
                    f"teacher {teacher.name!r} got a batch of {probs.shape[0]} images, other teachers {out[0].shape[0]}"
                )
            out.append(probs)
        return out

    @torch.inference_mode()
    def probs(
        self, views: Mapping[ViewSpec, torch.Tensor], progress: Callable[[float], None] | None = None
    ) -> torch.Tensor:
        """float32 (B, C) mean of the teachers' tempered softmaxes; `views` maps each view spec to uint8 (B,3,R,R)."""
        probs = self.teacher_probs(views, progress)
        with single_thread():
            return self.average(probs)

    @staticmethod
    def average(teacher_probs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The ensemble's probabilities from :meth:`teacher_probs`' output (the mean, summed in teacher order)."""
        total = teacher_probs[0]
        for probs in teacher_probs[1:]:
            total = total + probs
        return total / len(teacher_probs)

    def describe(self) -> str:
        """One line per teacher: spec, resolution, interpolation, mean, std and parameter count (printed when a
        pass starts, so a wrong preprocessing shows before hours of compute)."""
        lines = [f"teachers ({len(self.teachers)}), each sees its own view:"]
        for t in self.teachers:
            params = sum(p.numel() for p in t.module.parameters())
            stats = "mean ({}), std ({})".format(*(", ".join(f"{v:.4g}" for v in vs) for vs in (t.mean, t.std)))
            lines.append(f"  {t.name}: {t.resolution} px {t.interpolation}, {stats}, {params:,} parameters")
        return "\n".join(lines)

    def to_config(self) -> dict[str, Any]:
        """JSON-able description of the ensemble: temperature and each teacher's config."""
        return {"temperature": self.temperature, "teachers": [t.to_config() for t in self.teachers]}
