"""One run: the LightningModule (`module`, its maths in `steps`), the Trainer with the project's defaults
(`trainer.make_trainer`), the record of what a run did (`summary.RunSummary`), and the run's other callbacks, logger
and checkpoint plugin (`callbacks`, `checkpoints`, `tensorboard`)."""

from compacter_pl.training.module import TextToTextModule
from compacter_pl.training.summary import BestValidation, RunSummary, run_summary
from compacter_pl.training.trainer import RUN_CALLBACKS, TRAINER_DEFAULTS, make_trainer

__all__ = [
    "RUN_CALLBACKS",
    "TRAINER_DEFAULTS",
    "BestValidation",
    "RunSummary",
    "TextToTextModule",
    "make_trainer",
    "run_summary",
]
