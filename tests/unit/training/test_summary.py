"""The run's summary (compacter_pl.training.summary) on demo fits: its best validation is ModelCheckpoint's, the best
score TensorBoard's HParams row shows is the same, and a resumed fit keeps the record."""

import json

import lightning as L
import pytest
from lightning.pytorch.loggers import Logger

from compacter_pl.architectures import count_parameters
from compacter_pl.data import TextToTextDataModule
from compacter_pl.export import export_checkpoint
from compacter_pl.methods import Compacter
from compacter_pl.training import RunSummary, TextToTextModule, run_summary
from compacter_pl.training.summary import FIT_SUMMARY, TEST_SUMMARY
from compacter_pl.training.tensorboard import BEST_VAL
from tests.helpers import DEMO_DATA, DEMO_MODEL, quiet_trainer

BATCH = 8
FIT_FIELDS = {  # what sweeps and their reports read of fit.json
    "best_val",
    "best_step",
    "best_epoch",
    "best_checkpoint",
    "steps",
    "data",
    "model",
    "learning_rate",
    "method_init_args",
    "trainable_params",
    "total_params",
    "examples_seen",
}


class Recorded(Logger):
    """Every metric a logger is given, with its step."""

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[tuple[int | None, dict]] = []

    @property
    def name(self) -> str:
        return "recorded"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.logged.append((step, dict(metrics)))

    def values(self, tag: str) -> list[float]:
        return [metrics[tag] for _, metrics in self.logged if tag in metrics]


def module() -> TextToTextModule:
    return TextToTextModule(str(DEMO_MODEL), method=Compacter(n=2, bottleneck=8), task="rte", learning_rate=3e-2)


def data(tmp_path) -> TextToTextDataModule:
    return TextToTextDataModule(
        "rte", str(DEMO_MODEL), data_dir=str(DEMO_DATA / "rte"), batch_size=BATCH, cache_dir=str(tmp_path / "cache")
    )


def fit(tmp_path, max_steps: int, ckpt_path=None, **overrides) -> tuple[L.Trainer, Recorded]:
    L.seed_everything(0)
    logger = Recorded()
    trainer = quiet_trainer(
        max_steps=max_steps,
        val_check_interval=2,
        limit_val_batches=1,
        limit_test_batches=1,
        logger=logger,
        default_root_dir=tmp_path,
        **overrides,
    )
    trainer.fit(module(), data(tmp_path), ckpt_path=ckpt_path)
    return trainer, logger


def test_the_best_validation_is_model_checkpoints_and_the_hparams_row_shows_it(tmp_path):
    trainer, logger = fit(tmp_path, max_steps=6, callbacks=[RunSummary(out_dir=str(tmp_path / "run"))])
    summary, checkpoint = run_summary(trainer), trainer.checkpoint_callback
    assert [type(c) for c in trainer.callbacks].count(RunSummary) == 1  # the one given replaces the default
    best = summary.best
    assert best is not None and best.score == float(checkpoint.best_model_score)
    assert best.checkpoint == checkpoint.best_model_path
    assert checkpoint.best_model_path.endswith(f"best-{best.epoch}-{best.step}.ckpt")  # the validation that gave it
    assert best.metrics["score"] == best.score and set(best.metrics) == {"score", "accuracy"}
    scores = logger.values("val/score")
    assert len(scores) == 3
    running_best = [max(scores[: i + 1]) for i in range(len(scores))]
    assert logger.values(BEST_VAL) == pytest.approx(running_best)  # the row's metric, once per validation

    module_ = trainer.lightning_module
    assert summary.trainable_params == count_parameters(module_, trainable_only=True) > 0
    assert summary.total_params == count_parameters(module_) > summary.trainable_params
    assert summary.examples_seen == 6 * BATCH and summary.steps == 6
    assert summary.data == {"task": "rte", "train_size": None, "seed": 42}
    assert summary.settings["learning_rate"] == 3e-2 and summary.settings["method_init_args"]["n"] == 2

    written = json.loads((tmp_path / "run" / FIT_SUMMARY).read_text())
    assert set(written) == FIT_FIELDS
    assert written == json.loads(json.dumps(summary.fit_summary()))
    assert (written["best_val"], written["best_step"], written["best_checkpoint"]) == (
        best.metrics,
        best.step,
        best.checkpoint,
    )
    trainer.test(trainer.lightning_module, data(tmp_path), verbose=False)
    assert json.loads((tmp_path / "run" / TEST_SUMMARY).read_text())["test"] == summary.test
    assert set(summary.test) == {"score", "accuracy"}


def test_a_resumed_fit_keeps_the_best_and_counts_on(tmp_path):
    first, _ = fit(tmp_path, max_steps=4)
    before = run_summary(first).best
    saved = tmp_path / "at4.ckpt"
    first.save_checkpoint(saved)
    exported = json.loads((export_checkpoint(saved, tmp_path / "export") / "adapter_config.json").read_text())
    assert exported["metrics"]["best_val_score"] == pytest.approx(before.score)  # ModelCheckpoint's, in the checkpoint

    same, _ = fit(tmp_path, max_steps=4, ckpt_path=str(saved))  # nothing left to train: the record as saved
    assert run_summary(same).best == before and run_summary(same).examples_seen == 4 * BATCH
    assert float(same.checkpoint_callback.best_model_score) == before.score

    resumed, logger = fit(tmp_path, max_steps=6, ckpt_path=str(saved))
    after, checkpoint = run_summary(resumed).best, resumed.checkpoint_callback
    assert (after.score, after.checkpoint) == (float(checkpoint.best_model_score), checkpoint.best_model_path)
    assert after.score >= before.score and (after == before or after.step == 6)
    assert logger.values(BEST_VAL) == [after.score]  # one validation after the resume: the best of all so far
    assert run_summary(resumed).examples_seen == 6 * BATCH
