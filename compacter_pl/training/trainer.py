"""The project's Trainer, defined once: its settings (`TRAINER_DEFAULTS`), the callbacks of every run with their
defaults (`RUN_CALLBACKS`), its logger (`LOGGER`), and `make_trainer`, which builds it. The command line's parser
reads the same definitions (`compacter_pl.config.run`), so a Trainer built in Python (a test's, bench's) and the
one `cli.py fit` builds are alike."""

from typing import Any, NamedTuple

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import instantiate_class

from compacter_pl.host_memory import HostMemory
from compacter_pl.training.callbacks import OptionChecks, PredictionWriter, default_progress_bar
from compacter_pl.training.checkpoints import AtomicCheckpointIO, LastCheckpoint
from compacter_pl.training.summary import RunSummary
from compacter_pl.training.tensorboard import TensorBoardLogger


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


TRAINER_DEFAULTS = {  # the Trainer arguments every run sets (the command line's trainer_defaults)
    "plugins": [{"class_path": class_path(AtomicCheckpointIO)}],
    "use_distributed_sampler": False,  # the data module shards batches itself (no repeats in evaluation)
}
LOGGER = class_path(TensorBoardLogger)  # the default logger (`trainer.logger` unset or true)


class RunCallback(NamedTuple):
    """A callback every run has: its class, its defaults, and the Trainer flag without which it is left out (Lightning
    refuses a checkpoint callback with checkpointing off, a learning-rate monitor without a logger)."""

    cls: type[L.Callback]
    defaults: dict
    needs: str | None = None


RUN_CALLBACKS = {  # by the name of its option group on the command line (--checkpoint.monitor, ...)
    "checkpoint": RunCallback(
        ModelCheckpoint,
        {
            "monitor": "val/score",
            "mode": "max",
            "save_last": False,
            "filename": "best-{epoch}-{step}",
            "auto_insert_metric_name": False,
        },
        needs="enable_checkpointing",
    ),
    # last.ckpt: where the run stopped (each epoch's end, and every_n_train_steps if set), whatever the score;
    # `--ckpt_path last` resumes from it. (Lightning's save_last writes it only when a best checkpoint is saved.)
    "last_checkpoint": RunCallback(LastCheckpoint, {}, needs="enable_checkpointing"),
    "lr_monitor": RunCallback(LearningRateMonitor, {"logging_interval": "step"}, needs="logger"),
    "predictions": RunCallback(PredictionWriter, {}),
    "host_memory": RunCallback(HostMemory, {}),
    "summary": RunCallback(RunSummary, {}),
}


def with_progress_bar(callbacks: list, enable_progress_bar: bool | None) -> list:
    """`callbacks`, the checks of the options that need the training data (`OptionChecks`), and the project's
    progress bar, unless the bar is off or `callbacks` hold one."""
    if not any(isinstance(c, OptionChecks) for c in callbacks):
        callbacks = [*callbacks, OptionChecks()]
    if enable_progress_bar is False or any(isinstance(c, ProgressBar) for c in callbacks):
        return callbacks
    return [*callbacks, default_progress_bar()]


def make_trainer(**overrides: Any) -> L.Trainer:
    """A Lightning Trainer built as `cli.py fit` builds it by default: `TRAINER_DEFAULTS`, the project's TensorBoard
    logger in `default_root_dir` (`logger` unset or true), the callbacks of `RUN_CALLBACKS` with their defaults and
    the progress bar. `overrides` are Trainer arguments and win over the defaults; `callbacks` among them are added
    to the run's, and one of the class of a run's callback replaces it. A callback whose flag is off is left out (see
    `RunCallback`); `barebones=True` (Lightning's raw-speed mode) turns off checkpointing, logging and the bar."""
    barebones = bool(overrides.get("barebones", False))
    settings = {**TRAINER_DEFAULTS, **overrides}
    plugins = settings["plugins"] if isinstance(settings["plugins"], list) else [settings["plugins"]]
    settings["plugins"] = [instantiate_class((), p) if isinstance(p, dict) else p for p in plugins]
    if not barebones and settings.get("logger") in (None, True):
        settings["logger"] = TensorBoardLogger(save_dir=settings.get("default_root_dir") or ".")
    flags = {
        "enable_checkpointing": not barebones and settings.get("enable_checkpointing") is not False,
        "logger": not barebones and settings.get("logger") is not False,
    }
    given = overrides.get("callbacks") or []
    given = given if isinstance(given, list) else [given]
    replaced = {type(c) for c in given}
    callbacks = [
        c.cls(**c.defaults)
        for c in RUN_CALLBACKS.values()
        if c.cls not in replaced and (c.needs is None or flags[c.needs])
    ]
    settings["callbacks"] = with_progress_bar(
        [*callbacks, *given], False if barebones else settings.get("enable_progress_bar")
    )
    return L.Trainer(**settings)
