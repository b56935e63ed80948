"""One place that turns ftlab's training knobs into a trainer's arguments (every trainer:
the engine's supervised and GRPO parts, and the reward model of ``ftlab.rlhf``).

transformers' ``TrainingArguments`` and TRL's configs (``GRPOConfig``, ``RewardConfig``, the
preference trainers' configs) are subclasses of one class; every trainer ftlab drives gets
the same settings from here and adds only its own (``more``). The trainer never saves by
itself, and reports only where ``train.report_to`` asks: the run folder and ftlab's events
are the record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .tracking import trackers


def trainer_arguments(cls: type, *, output_dir: str, max_steps: int, batch_size: int,
                      learning_rate: float, seed: int, placement, report_to: str = "none",
                      **more: Any):
    """``cls(...)`` with ftlab's fixed choices: log every step, save nothing, report only to
    the trackers of ``report_to`` (``train.report_to``: ``"none"``, ``"tensorboard"``,
    ``"mlflow"`` or both, comma-separated; ``ftlab.tracking`` says where they write, and the
    run is named as its folder), no progress bar of the trainer's own, data in this process,
    the device of ``placement``, and PyTorch's fused AdamW (one kernel for every tensor: on
    2 CPU cores a full fine-tuning step of SmolLM2 updates in 0.07 s instead of 0.42 s; the
    same update to within 1.2e-7 after three steps).

    A float16 placement always gets ``fp16=True``: its weights were loaded as fp32 masters
    (``Placement.weight_dtype``), so without autocast and loss scaling the run would train in
    fp32 while its record says float16.
    """
    args: dict[str, Any] = dict(
        output_dir=output_dir, max_steps=max_steps, per_device_train_batch_size=batch_size,
        learning_rate=learning_rate, optim="adamw_torch_fused", logging_steps=1,
        save_strategy="no", report_to=trackers(report_to), seed=seed, data_seed=seed,
        disable_tqdm=True, dataloader_num_workers=0, use_cpu=placement.device == "cpu",
        fp16=fp16(placement))
    if args["report_to"]:
        args["run_name"] = Path(output_dir).name
    args.update(more)
    return cls(**args)


def bf16(placement) -> bool:
    """Mixed precision in bf16 where the placement chose bf16 weights."""
    import torch

    return placement.dtype == torch.bfloat16


def fp16(placement) -> bool:
    """Mixed precision in fp16 with loss scaling where the placement chose float16 (GPUs
    that only emulate bf16: T4, V100); the weights stay fp32."""
    import torch

    return placement.dtype == torch.float16


def schedule(train) -> dict[str, Any]:
    """The optimisation knobs of a ``TrainConfig`` (schedule, warm-up, decay, clipping)."""
    return dict(lr_scheduler_type=train.lr_scheduler, warmup_steps=train.warmup_steps,
                weight_decay=train.weight_decay, max_grad_norm=train.max_grad_norm)
