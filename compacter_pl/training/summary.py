"""What a run did, recorded once: the `RunSummary` callback, which the command line prints, a sweep records and the
tests read.

It records the best validation as the run's ModelCheckpoint decided it (its `best_model_score` and
`best_model_path`: the checkpoint `cli.py` keeps as best, the first strictly better `val/score`) with the step,
epoch and `val/*` metrics of the validation that gave it; the trainable and total parameters; the training examples
seen (over all ranks); the task, training size and subsample seed the data module used; and the model, learning rate
and every argument of the method (defaults included) the module was built with. It writes the run's row of
TensorBoard's HParams tab (`compacter_pl.training.tensorboard`) and the best score as that row's metric. Its state
is saved in checkpoints, so a resumed fit continues the record.

With `out_dir` it also writes `fit.json` (at the end of fit) and `test.json` (the test metrics, at the end of test):
what a sweep records of a run. Each file is written to a temporary name and renamed, so it is whole or absent.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

from compacter_pl.architectures import count_parameters
from compacter_pl.files import write_atomically
from compacter_pl.training.checkpoints import monitored_checkpoint
from compacter_pl.training.tensorboard import BEST_VAL, TensorBoardLogger, method_column

FIT_SUMMARY = "fit.json"
TEST_SUMMARY = "test.json"


@dataclass(frozen=True)
class BestValidation:
    """The best validation of a run: ModelCheckpoint's score and checkpoint, and the step, epoch and metrics (without
    their `val/` prefix) of the validation that gave them (None and {} where unknown: a checkpoint's ModelCheckpoint
    state restored without this callback's)."""

    score: float
    checkpoint: str
    step: int | None
    epoch: int | None
    metrics: dict[str, float]


def _metrics(trainer: L.Trainer, stage: str) -> dict[str, float]:
    prefix = f"{stage}/"
    return {
        name[len(prefix) :]: float(value)
        for name, value in trainer.callback_metrics.items()
        if name.startswith(prefix) and isinstance(value, (torch.Tensor, float, int))
    }


def _write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(content, indent=1, default=str))  # a method argument JSON lacks: its text


class RunSummary(L.Callback):
    """Records what a run did (see the module's docstring); `best`, `fit_summary()` and `describe()` read it.

    Args:
        out_dir: Also write fit.json and test.json into this directory (a sweep's run directory); None writes
            neither.
    """

    def __init__(self, out_dir: str | None = None) -> None:
        self.out_dir = out_dir
        self.trainable_params = 0
        self.total_params = 0
        self.method: str | None = None  # the method's registry key (else its class path)
        self.settings: dict = {}  # model, learning_rate, method_init_args
        self.data: dict = {}  # task, train_size, seed
        self.steps = 0
        self.test: dict[str, float] = {}
        self._examples_seen: int | torch.Tensor = 0  # a tensor under DDP: summed over ranks without a sync per step
        self._judge: ModelCheckpoint | None = None  # the one that decides the best
        self._known: BestValidation | None = None
        self._pending: dict | None = None  # the last validation, until the ModelCheckpoint (run after this) judged it

    # --- what it records --------------------------------------------------------------------------------------------

    @property
    def examples_seen(self) -> int:
        return int(self._examples_seen)

    @property
    def best(self) -> BestValidation | None:
        """The run's best validation as its ModelCheckpoint has decided it so far; None before any (or without a
        ModelCheckpoint that monitors a metric)."""
        decided = self._decided()
        if decided is None:
            return None
        pending = self._pending
        if pending is not None and decided != pending["before"]:  # the last validation made a new best
            return BestValidation(decided[1], decided[0], pending["step"], pending["epoch"], pending["metrics"])
        known = self._known
        if known is not None and (known.checkpoint, known.score) == decided:
            return known
        return BestValidation(decided[1], decided[0], None, None, {})

    def _decided(self) -> tuple[str, float] | None:
        judge = self._judge
        if judge is None or judge.best_model_score is None:
            return None
        return judge.best_model_path, float(judge.best_model_score)

    def fit_summary(self) -> dict:
        """What `fit.json` holds (its fields are what sweeps and their reports read)."""
        best = self.best
        return {
            "best_val": best.metrics if best else {},
            "best_step": best.step if best else None,
            "best_epoch": best.epoch if best else None,
            "best_checkpoint": best.checkpoint if best else "",
            "steps": self.steps,
            "data": self.data,
            **self.settings,
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
            "examples_seen": self.examples_seen,
        }

    def describe(self) -> str:
        """The run in one line, as `fit` prints it."""
        best = self.best
        judged = f"best {self._judge.monitor} {best.score:.4f}" if best and self._judge else "no best validation"
        where = f" at step {best.step} (epoch {best.epoch})" if best and best.step is not None else ""
        share = 100 * self.trainable_params / self.total_params if self.total_params else 0.0
        return (
            f"{judged}{where}; trained {self.trainable_params:,} of {self.total_params:,} parameters ({share:.3g}%) "
            f"on {self.examples_seen:,} examples in {self.steps:,} steps"
        )

    def hparams_row(self) -> dict:
        """The run's hyper-parameters in TensorBoard's HParams tab: what tells runs apart, no more."""
        train_size = self.data.get("train_size")
        row = {
            "task": self.data.get("task"),
            "method": self.method,
            "model": self.settings.get("model"),
            "train_size": "full" if train_size is None else train_size,
            "seed": self.data.get("seed"),
            "learning_rate": self.settings.get("learning_rate"),
        }
        init_args = self.settings.get("method_init_args") or {}
        row.update({f"method.{name}": value for name, value in init_args.items() if value is not None})
        return {name: value for name, value in row.items() if value is not None}

    # --- Lightning's hooks ------------------------------------------------------------------------------------------

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._judge = monitored_checkpoint(trainer)
        self._pending = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.trainable_params = count_parameters(pl_module, trainable_only=True)
        self.total_params = count_parameters(pl_module)
        hparams = pl_module.hparams  # what the run really was, for a report to match it to the paper's rows
        method = hparams.get("method") or {}
        module_method = getattr(pl_module, "method", None)  # the row names it by its registry key
        self.method = method_column(module_method) if module_method is not None else None
        self.settings = {
            "model": hparams.get("model_name_or_path"),
            "learning_rate": hparams.get("learning_rate"),
            "method_init_args": method.get("init_args"),  # every argument, defaults too
        }
        datamodule = getattr(trainer, "datamodule", None)  # what the run trained on, for a sweep to check
        self.data = {
            "task": getattr(getattr(datamodule, "task", None), "name", None) or hparams.get("task"),
            "train_size": getattr(datamodule, "train_size", None),
            "seed": getattr(datamodule, "seed", None),
        }
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_row(self.hparams_row())

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self._settle(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        examples = int(batch["input_ids"].shape[0])  # the project's batches (data.collate)
        if trainer.world_size > 1:  # each rank trains its own batches: their sum, read back only when asked
            total = torch.tensor(examples, device=pl_module.device)
            self._examples_seen = self._examples_seen + trainer.strategy.reduce(total, reduce_op="sum")
        else:
            self._examples_seen = self._examples_seen + examples

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        self._settle(trainer)
        self._pending = {
            "before": self._decided(),
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "metrics": _metrics(trainer, "val"),
        }

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._settle(trainer)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.steps = trainer.global_step
        if self.out_dir is not None and trainer.is_global_zero:
            _write_json(Path(self.out_dir) / FIT_SUMMARY, self.fit_summary())

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.test = _metrics(trainer, "test")
        if self.out_dir is not None and trainer.is_global_zero:
            _write_json(Path(self.out_dir) / TEST_SUMMARY, {"test": self.test})

    def _settle(self, trainer: L.Trainer) -> None:
        """Once ModelCheckpoint has judged the last validation (its hooks run after this callback's): keep what it
        decided, and show the best so far in the HParams row at that validation's step."""
        if self._pending is None:
            return
        self._known, step, self._pending = self.best, self._pending["step"], None
        if self._known is not None:
            for logger in trainer.loggers:
                logger.log_metrics({BEST_VAL: self._known.score}, step=step)

    def state_dict(self) -> dict:
        best = self.best
        return {"best": None if best is None else asdict(best), "examples_seen": self.examples_seen}

    def load_state_dict(self, state_dict: dict) -> None:
        best = state_dict.get("best")
        self._known = None if best is None else BestValidation(**best)
        self._examples_seen = int(state_dict.get("examples_seen", 0))


def run_summary(trainer: L.Trainer) -> RunSummary | None:
    """The trainer's RunSummary (`make_trainer` and the command line give every run one)."""
    callbacks = trainer.callbacks  # type: ignore[attr-defined]  # Lightning sets it in the Trainer's constructor
    return next((c for c in callbacks if isinstance(c, RunSummary)), None)
