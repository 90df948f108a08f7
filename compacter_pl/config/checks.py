"""A run's options checked before any work, through the checks the libraries would apply later (after the data
is set up, or after a whole epoch): each mistake is one line naming the option, never a traceback mid-run.

`check_run_options` runs on the parsed config, before anything is built: the seed (numpy's bounds, which
Lightning enforces), the optimizer's arguments (torch's AdamW builds once on a stand-in parameter), the trainer's
arguments Lightning accepts and then misuses (a negative clip value reverses every gradient), the monitored metric
(it must be one the task logs, in the direction that metric improves). `check_batches` runs once the training data
is known (`compacter_pl.training.callbacks.OptionChecks`), before the first step: what Lightning would check when
the epoch starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from compacter_pl.errors import UserError, first_line
from compacter_pl.files import check_output_file

SEED_BOUNDS = (0, 2**32 - 1)  # numpy's, which Lightning's seed_everything enforces
TRAIN_LOSS = "train/loss"


def logged_metrics(task_name: str) -> dict[str, str]:
    """What a run of the task logs that a checkpoint may monitor, with the mode in which it improves."""
    from compacter_pl.tasks import get_task

    task = get_task(task_name)
    return {"val/score": "max", **{f"val/{m}": "max" for m in task.metrics}, TRAIN_LOSS: "min"}


def check_run_options(config: Any) -> None:
    """Refuse, in one line naming the option, a run option that would fail or mislead only once work has begun."""
    seed = config.get("seed_everything")
    if isinstance(seed, int) and not isinstance(seed, bool) and not SEED_BOUNDS[0] <= seed <= SEED_BOUNDS[1]:
        raise UserError(f"--seed_everything {seed} is out of bounds: numpy's seeds go from 0 to {SEED_BOUNDS[1]}")
    model, trainer = config.get("model") or {}, config.get("trainer") or {}
    _check_optimizer(model)
    max_new_tokens = model.get("max_new_tokens")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise UserError(
            f"--model.max_new_tokens {max_new_tokens} generates nothing, so every output would be wrong: pass a "
            f"positive number, or leave it unset for the task's longest label"
        )
    clip = trainer.get("gradient_clip_val")
    if clip is not None and clip < 0:
        raise UserError(
            f"--trainer.gradient_clip_val {clip} is negative (clipping to it reverses every gradient): pass a "
            f"positive value, or leave it unset for no clipping"
        )
    accumulate = trainer.get("accumulate_grad_batches")
    if accumulate is not None and accumulate < 1:
        raise UserError(f"--trainer.accumulate_grad_batches {accumulate} must be 1 or more (1: no accumulation)")
    _check_outputs(config)
    checkpoint = config.get("checkpoint") or {}
    monitor, task = checkpoint.get("monitor"), (config.get("data") or {}).get("task")
    if monitor is not None and task is not None:
        metrics = logged_metrics(task)
        if monitor not in metrics:
            raise UserError(
                f"--checkpoint.monitor {monitor} is not logged by a run of {task}; it logs {', '.join(metrics)}"
            )
        mode = checkpoint.get("mode")
        if mode is not None and mode != metrics[monitor]:
            raise UserError(
                f"--checkpoint.mode {mode} with --checkpoint.monitor {monitor} would keep the worst checkpoint as "
                f"the best: {monitor} improves when it goes {'up' if metrics[monitor] == 'max' else 'down'}, "
                f"pass --checkpoint.mode {metrics[monitor]}"
            )


def _check_outputs(config: Any) -> None:
    """The file `predict` writes is none of the files the command reads (`compacter_pl.files`)."""
    output = (config.get("predictions") or {}).get("output")
    if not output:
        return
    data = config.get("data") or {}
    reads: dict[str, Any] = {
        "--data.predict_file": data.get("predict_file"),
        "--ckpt_path": config.get("ckpt_path") if config.get("ckpt_path") != "last" else None,
    }
    for i, path in enumerate(config.get("config") or []):
        reads[f"--config ({i + 1})"] = str(path)
    if data.get("data_dir") and Path(data["data_dir"]).is_dir():
        for path in Path(data["data_dir"]).iterdir():
            reads[f"--data.data_dir ({path.name})"] = path
    check_output_file(output, "--predictions.output", reads)


def _check_optimizer(model: Any) -> None:
    """torch's AdamW argument checks, on one stand-in parameter, each option alone so the line names it."""
    options = {"learning_rate": "lr", "adam_epsilon": "eps", "weight_decay": "weight_decay"}
    stand_in = [torch.zeros(1, requires_grad=True)]
    for option, argument in options.items():
        value = model.get(option)
        if value is None:
            continue
        try:
            torch.optim.AdamW(stand_in, **{argument: value})
        except (ValueError, TypeError) as error:
            raise UserError(f"--model.{option} {value}: AdamW refuses it ({first_line(error)})") from None
