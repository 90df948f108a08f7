"""What a run shows in TensorBoard: its curves, and one row of the HParams tab.

A run's folder (`lightning_logs/version_N`, a sweep's `runs/<name>`) holds its curves: `train/loss`, `train/lr`,
`val/*` and `test/*` (Lightning's `epoch` scalar is left out, so the Scalars tab opens on the train and val
groups). Its HParams row lives in the sub-run `hparams/`: the session record, written when `fit` starts (task,
method by its registry key and its arguments, base model, training size, seed, learning rate), and the row's
metrics, which are the
only scalars there: the best validation score so far (`hp/best_val_score`) and the test metrics (`test/*`, also
among the curves). TensorBoard makes the table's metric columns from a session's scalars, so a row carries no training
curve, and runs of different tasks and methods compare in one table (no experiment record fixes the columns).

`validate`, `test` and `predict` of a checkpoint in a run's folder log into that run (`cli.default_logger`), so their
scores join its row instead of starting a run of their own.
"""

from collections.abc import Mapping
from pathlib import Path

from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

HPARAMS_RUN = "hparams"  # the sub-run of a run's folder that holds its HParams row
SESSION_SUFFIX = ".session"  # the event file of the row's session record
BEST_VAL = "hp/best_val_score"  # the best validation score so far (the run's summary logs it): a row metric, no curve
DROPPED = ("epoch", BEST_VAL)  # from the curves; Lightning adds the epoch to every logged dict (the step is the x axis)


def is_row_metric(tag: str) -> bool:
    return tag == BEST_VAL or tag.startswith("test/")


def method_column(method) -> str:
    """The method as the row's `method` column names it: its registry key, as configs, sweeps and reports name it
    (the key of its class and arguments: PromptTuning with init vocab is prompt_vocab), else its class path."""
    from compacter_pl.methods.base import class_path_of
    from compacter_pl.methods.registry import entry_of_config

    entry = entry_of_config(type(method), method.init_args())
    return class_path_of(type(method)) if entry is None else entry.key


def tensorboard_value(value):
    """TensorBoard's hparams take numbers and strings (a bool would show as 0 / 1, None not at all)."""
    return value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else str(value)


def write_row(run_dir: str | Path, params: dict) -> None:
    """The session record of the run's HParams row, unless it has one (a resumed fit keeps its row)."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    directory = Path(run_dir) / HPARAMS_RUN
    if directory.is_dir() and any(p.name.endswith(SESSION_SUFFIX) for p in directory.iterdir()):
        return
    _, session_start, session_end = hparams({k: tensorboard_value(v) for k, v in params.items()}, {})
    writer = SummaryWriter(log_dir=str(directory), filename_suffix=SESSION_SUFFIX)
    try:
        writer._get_file_writer().add_summary(session_start)
        writer._get_file_writer().add_summary(session_end)
    finally:
        writer.close()


def write_row_metrics(run_dir: str | Path, metrics: dict[str, float], step: int) -> None:
    """Scalars of the run's HParams row (its metric columns), from outside a logger (a sweep's test)."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(Path(run_dir) / HPARAMS_RUN))
    try:
        for tag, value in metrics.items():
            writer.add_scalar(tag, float(value), step)
    finally:
        writer.close()


class TensorBoardLogger(LightningTensorBoardLogger):
    """Lightning's TensorBoard logger with the layout above (the CLI's default logger; every argument is
    Lightning's). No `hp_metric`: Lightning's hyper-parameter record (every init argument, LightningCLI's
    `_instantiator` too) goes to hparams.yaml only, and the HParams row is `log_row`'s."""

    def __init__(self, save_dir, *args, default_hp_metric: bool = False, row: dict | None = None, **kwargs) -> None:
        """`row`: more columns of the run's HParams row (a sweep's name for the run's configuration)."""
        super().__init__(save_dir, *args, default_hp_metric=default_hp_metric, **kwargs)  # type: ignore[misc]
        self.row = dict(row or {})
        self._row_writer = None

    @property
    def row_writer(self):
        """The writer of the row's scalars, made on first use (rank zero only, like the experiment)."""
        if self._row_writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._row_writer = SummaryWriter(log_dir=str(Path(self.log_dir) / HPARAMS_RUN))
        return self._row_writer

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        curves = {k: v for k, v in metrics.items() if k not in DROPPED}
        if curves:
            super().log_metrics(curves, step)
        for tag, value in metrics.items():
            if is_row_metric(tag):
                self.row_writer.add_scalar(tag, float(value), step)

    @rank_zero_only
    def log_row(self, params: dict) -> None:
        """The run's HParams row (at the start of `fit`; a resumed run keeps the one it has)."""
        write_row(self.log_dir, {**params, **self.row})

    @rank_zero_only
    def save(self) -> None:
        super().save()
        if self._row_writer is not None:
            self._row_writer.flush()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        if self._row_writer is not None:
            self._row_writer.close()
            self._row_writer = None
