"""transformers integration: loss for ``compute_loss_func``, epoch/column callback, Trainer subclass, timm adapter.

``DistillationTrainer`` computes the loss itself on unpacked batches (``labels`` (B,), ``topk_ids``, ``topk_probs``);
the stock ``Trainer`` with ``DistillationCallback`` hands ``compute_loss_func`` only ``labels``, so there the top-k
travels packed inside them (``DistillationCollator()``). Both say when ``dataloader_num_workers=0`` leaves every
image to the training process.
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.modeling_outputs import ImageClassifierOutput

from ..errors import ConfigError
from ..storage.format import TOPK_IDS, TOPK_PROBS
from ..validation import as_logits, check_int, check_split
from .collate import DistillationCollator, unpack_labels
from .loss import LossParts, check_hyperparameters, distillation_loss_parts

logger = logging.getLogger(__name__)


class EpochTransform(Protocol):
    """What the callback needs from a transform: ``set_epoch`` picks the stored augmentation cycle."""

    def set_epoch(self, epoch: int) -> None: ...


class DistillationLoss:
    """``compute_loss_func`` for the stock Trainer: distillation from packed labels (see ``collate``).

    With ``num_items_in_batch`` (the Trainer's count over the whole accumulated batch) the per-sample sum is
    divided by the number of samples in that batch, so gradient accumulation matches the larger batch exactly.
    Plain (B,) labels (an evaluation split without top-k) give cross-entropy. Keeps running kd/ce averages of
    training steps for logging (``pop_parts``). With ``num_classes`` (the dataset's, from its run record; set by
    ``DistillationTrainer`` and ``DistillationCallback(transform, loss)``), a student with another number of outputs
    is refused: the residual probability would be spread over the wrong classes without a word.
    """

    def __init__(
        self,
        temperature: float = 1.0,
        ce_weight: float = 0.0,
        label_smoothing: float = 0.0,
        num_classes: int | None = None,
    ) -> None:
        check_hyperparameters(temperature, ce_weight, label_smoothing)
        self.num_classes = None if num_classes is None else check_int(num_classes, "num_classes", minimum=1)
        self.temperature = temperature
        self.ce_weight = ce_weight
        self.label_smoothing = label_smoothing
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0

    def __call__(
        self,
        outputs: Any,
        labels: torch.Tensor,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """Loss of one micro-batch, normalized by the accumulated batch's sample count (packed or plain labels)."""
        if labels.ndim == 1:
            return self.unpacked(outputs, labels, num_items_in_batch=num_items_in_batch)
        hard, topk_ids, topk_probs = unpack_labels(labels)
        samples = None if num_items_in_batch is None else num_items_in_batch / labels.shape[1]
        return self.unpacked(outputs, hard, topk_ids, topk_probs, samples)

    def unpacked(
        self,
        outputs: Any,
        labels: torch.Tensor,
        topk_ids: torch.Tensor | None = None,
        topk_probs: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | float | None = None,
    ) -> torch.Tensor:
        """Loss of one micro-batch from ``labels`` (B,) and the top-k (B, K), summed over it and divided by
        ``num_items_in_batch`` (the accumulated batch's sample count; default: this batch's). Without top-k
        (an evaluation split): cross-entropy, ``-100`` labels ignored."""
        logits = as_logits(outputs, "the student")
        if topk_ids is None or topk_probs is None:
            count = labels.ne(-100).sum() if num_items_in_batch is None else num_items_in_batch
            return F.cross_entropy(logits.float(), labels.long(), reduction="sum") / count
        if self.num_classes is not None and logits.shape[-1] != self.num_classes:
            raise ConfigError(
                f"the student outputs {logits.shape[-1]} classes but the dataset's teachers labelled "
                f"{self.num_classes} (its run record's num_classes): give the student a head of {self.num_classes} "
                "outputs (timm.create_model(..., num_classes=...))"
            )
        parts = distillation_loss_parts(
            logits,
            topk_ids,
            topk_probs,
            temperature=self.temperature,
            labels=labels,
            ce_weight=self.ce_weight,
            label_smoothing=self.label_smoothing,
            reduction="sum",
        )
        if torch.is_grad_enabled():
            self._record(parts, len(labels))
        return parts.loss / (len(labels) if num_items_in_batch is None else num_items_in_batch)

    def _record(self, parts: LossParts, count: int) -> None:
        """Accumulate per-sample sums on device (no host sync until ``pop_parts``)."""
        for name, value in (("kd_loss", parts.kd), ("ce_loss", parts.ce)):
            if value is not None:
                self._sums[name] = self._sums.get(name, 0.0) + value.detach()
        self._count += count

    def pop_parts(self) -> dict[str, float]:
        """Mean kd/ce per sample over training steps since the last call (empty if none), then reset."""
        parts = {name: float(total) / self._count for name, total in self._sums.items()} if self._count else {}
        self._sums, self._count = {}, 0
        return parts


def check_student(model: Any) -> None:
    """Refuse a model the Trainer cannot call: it calls ``model(pixel_values=..., labels=...)``, which a raw timm
    model (``forward(x)``) does not take."""
    if not isinstance(model, nn.Module):
        return
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return
    if "pixel_values" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    raise ConfigError(
        f"model: {type(model).__name__}.forward({', '.join(parameters)}) does not take pixel_values=, which the "
        "Trainer passes; wrap a timm (or any images → logits) model in hfr.TimmStudent(model)"
    )


def check_train_dataset(dataset: Any) -> None:
    """Refuse raw reinforced rows: the train dataset needs the transform (``transform.apply`` or ``set_transform``)."""
    import datasets

    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        check_split(dataset, "train_dataset")
    if not isinstance(dataset, datasets.Dataset) or dataset.format["type"] is not None:
        return
    if "pixel_values" not in dataset.column_names:
        raise ConfigError(
            f"train_dataset has no transform (its columns are raw: {dataset.column_names}): pass "
            "train_dataset=transform.apply(train_dataset), or call train_dataset.set_transform(transform) first"
        )


def data_workers_advice(args: TrainingArguments) -> str | None:
    """What to say when ``dataloader_num_workers=0`` leaves decoding and replay to the training process (a worker
    would run them beside it), naming a value for this machine; None when there is nothing to say."""
    if args.dataloader_num_workers > 0:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    per_process = cores // processes
    if per_process < 2:
        return None
    return (
        "dataloader_num_workers=0 (the TrainingArguments default): every image is decoded and its stored "
        "augmentation replayed in the training process, between optimizer steps, so the data path adds its whole "
        f"time to each step (about 2.5 ms a 224-px row on one CPU core). Set TrainingArguments("
        f"dataloader_num_workers={min(per_process - 1, 8)}) (this machine: {per_process} cores for each of "
        f"{processes} training process(es), one left to the training loop)"
    )


class DistillationCallback(TrainerCallback):
    """Keeps ``transform.set_epoch`` in step with the Trainer, keeps raw columns, logs ``loss``'s kd/ce parts.

    Pass it in ``Trainer(callbacks=[...])``: at ``on_init_end`` it sets ``remove_unused_columns=False`` (the
    Trainer would drop the raw columns the transform reads before it runs). The parts land in
    ``state.log_history`` and in callbacks after this one (progress bar, printer); ``report_to`` integrations
    run before user callbacks, so for them use ``DistillationTrainer``.
    """

    def __init__(self, transform: EpochTransform, loss: DistillationLoss | None = None) -> None:
        if not callable(getattr(transform, "set_epoch", None)):
            raise TypeError(f"transform must have set_epoch(epoch), got {type(transform).__name__}")
        self.transform = transform
        self.loss = loss
        record = getattr(transform, "record", None)
        if loss is not None and loss.num_classes is None and record is not None:
            loss.num_classes = record.num_classes
        self._epoch = 0

    def on_init_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ):
        """Turn off ``remove_unused_columns`` before any dataloader is built."""
        if args.remove_unused_columns:
            args.remove_unused_columns = False
            logger.warning(
                "DistillationCallback set TrainingArguments.remove_unused_columns=False: the transform needs the "
                "dataset's raw columns (image, augmentation parameters, top-k), which the Trainer would drop."
            )

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ):
        """Check the arguments, model and data, and start counting epochs where the (possibly resumed) state is."""
        if args.remove_unused_columns:
            raise ConfigError(
                "remove_unused_columns=True drops the raw columns the transform reads before it runs: set "
                "TrainingArguments(remove_unused_columns=False), or pass DistillationCallback in "
                "Trainer(callbacks=[...]) so it can set it"
            )
        check_student(kwargs.get("model"))
        dataset = getattr(kwargs.get("train_dataloader"), "dataset", None)
        check_train_dataset(dataset)
        advice = data_workers_advice(args)
        if advice and state.is_local_process_zero:
            logger.warning(advice)
        shared = getattr(self.transform, "epoch_shared_with_workers", False)
        if args.dataloader_persistent_workers and args.dataloader_num_workers > 0 and not shared:
            raise ConfigError(
                "dataloader_persistent_workers=True keeps worker copies of the transform, so set_epoch never "
                "reaches them and every epoch would replay the same augmentations; set it to False"
            )
        self._epoch = int(state.epoch)
        if self.loss is not None:
            self.loss.pop_parts()  # drop parts left over from a previous train() call

    def on_epoch_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ):
        """Runs before the epoch's dataloader iterator (and its workers) are created."""
        self.transform.set_epoch(self._epoch)
        self._epoch += 1

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ):
        """Add the kd/ce means since the last training log to this training log."""
        if self.loss is None or logs is None or "loss" not in logs:
            return
        parts = self.loss.pop_parts()
        logs.update(parts)
        if state.log_history:
            state.log_history[-1].update(parts)


class DistillationTrainer(Trainer):
    """``transformers.Trainer`` for reinforced datasets: sets collator, loss and callback from ``transform``.

    Computes the distillation loss itself (:meth:`compute_loss`) on unpacked batches (``DistillationCollator(
    pack=False)``), so ``compute_metrics`` and evaluation see real (B,) labels. Puts a ``set_transform(transform)``
    dataset on the fast path (``transform.apply``). Needs no ``remove_unused_columns`` change from the user; kd/ce
    parts reach every logger, integrations too.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        args: TrainingArguments | None = None,
        *,
        transform: EpochTransform,
        temperature: float = 1.0,
        ce_weight: float = 0.0,
        label_smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        if "compute_loss_func" in kwargs:
            raise TypeError(
                "DistillationTrainer computes the loss itself; for a custom loss use transformers.Trainer "
                "with DistillationCollator and DistillationCallback"
            )
        check_student(model)
        check_train_dataset(kwargs.get("train_dataset"))
        if args is None:
            args = TrainingArguments(output_dir="tmp_trainer")  # what Trainer itself would use
        args.remove_unused_columns = False  # this class owns it: the transform reads the raw columns
        self.distillation_loss = DistillationLoss(temperature, ce_weight, label_smoothing)
        if kwargs.get("data_collator") is None:
            kwargs["data_collator"] = DistillationCollator(pack=False)
        callbacks = [
            *(kwargs.pop("callbacks", None) or []),
            DistillationCallback(transform, self.distillation_loss),
        ]
        # compute_loss_func is what makes the Trainer count num_items_in_batch (samples: labels are (B,)) and take
        # the loss as normalized over the accumulated batch; compute_loss below is what uses it.
        super().__init__(model, args, compute_loss_func=self.distillation_loss, callbacks=callbacks, **kwargs)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Distillation loss of the student on a batch: ``labels`` (B,) with ``topk_ids``/``topk_probs``, or plain
        labels alone (cross-entropy: an evaluation split), or packed labels (``DistillationCollator()``).

        Divided by ``num_items_in_batch`` (the accumulated batch's sample count), so gradient accumulation matches the
        larger batch exactly; across processes scaled as ``Trainer.compute_loss`` does (the count is global).
        """
        labels = inputs.pop("labels")
        topk_ids, topk_probs = inputs.pop(TOPK_IDS, None), inputs.pop(TOPK_PROBS, None)
        outputs = model(**inputs)
        if topk_ids is None:
            loss = self.distillation_loss(outputs, labels, num_items_in_batch)
        else:
            loss = self.distillation_loss.unpacked(outputs, labels, topk_ids, topk_probs, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes if self.args.n_gpu <= 1 else self.args.n_gpu)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the kd/ce parts to training logs before any callback or integration sees them."""
        if "loss" in logs:
            logs.update(self.distillation_loss.pop_parts())
        super().log(logs, start_time)


class TimmStudent(nn.Module):
    """Lets the Trainer drive a timm (or any images → logits) model: ``forward(pixel_values)`` returns ``.logits``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> ImageClassifierOutput:
        """``labels`` is accepted and ignored so the Trainer treats it as the label field (the loss uses it)."""
        return ImageClassifierOutput(logits=self.model(pixel_values))
