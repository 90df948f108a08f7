"""The command line: LightningCLI for fit / validate / test / predict, with the project's defaults.

Best checkpoints are chosen on the validation score (the mean of the task's metrics); the learning rate is
logged; the data module's task and tokenizer are linked to the model's so a YAML names each once.
"""

import sys

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from compacter_pl.commands import COMMANDS, run_command
from compacter_pl.data import TextToTextDataModule
from compacter_pl.errors import UserError
from compacter_pl.module import TextToTextModule


class CompacterCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.task", "model.task")
        parser.link_arguments("model.model_name_or_path", "data.tokenizer")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.monitor": "val/score", "checkpoint.mode": "max",
                             "checkpoint.save_last": True, "checkpoint.filename": "best-{epoch}-{step}",
                             "checkpoint.auto_insert_metric_name": False})
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})

    def after_fit(self) -> None:
        best = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else ""
        if best and self.trainer.is_global_zero:
            print(f"best checkpoint: {best}\ntest it with: python cli.py test --config CONFIG --ckpt_path {best}")


def main(args: list[str] | None = None) -> None:
    args = sys.argv[1:] if args is None else args
    try:
        if args and args[0] in COMMANDS:
            run_command(args[0], args[1:])
            return
        CompacterCLI(TextToTextModule, TextToTextDataModule, seed_everything_default=42,
                     save_config_kwargs={"overwrite": True}, args=args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
