"""One run: the LightningModule (`module`, its maths in `steps`) and the callbacks, logger and checkpoint plugin
of a run (`callbacks`, `checkpoints`, `tensorboard`)."""

from compacter_pl.training.module import TextToTextModule

__all__ = ["TextToTextModule"]
