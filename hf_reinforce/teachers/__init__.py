"""Teachers: timm / transformers / checkpoint / module teachers with their own preprocessing, and their ensemble."""

from .ensemble import Ensemble
from .loading import load_teacher, parse_teacher_spec, spec_with_options, split_spec_options
from .teacher import Preprocessing, Teacher, TeacherSource, ViewSpec, teacher_key, weights_sha256

__all__ = [
    "Ensemble",
    "Preprocessing",
    "Teacher",
    "TeacherSource",
    "ViewSpec",
    "load_teacher",
    "parse_teacher_spec",
    "spec_with_options",
    "split_spec_options",
    "teacher_key",
    "weights_sha256",
]
