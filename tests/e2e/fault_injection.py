"""Callbacks that inject faults into real runs from outside the product (passed with --trainer.callbacks)."""

import math

import torch
from lightning.pytorch.callbacks import Callback


class PoisonWeightsAt(Callback):
    """Writes NaN into one trainable weight just before training step `step`, as an overflow would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            parameter = next(p for p in pl_module.parameters() if p.requires_grad)
            with torch.no_grad():
                parameter.fill_(math.nan)


class _SignalAt(Callback):
    """Sends `signal_name` to its own process at the start of training step `step`."""

    signal_name = ""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            import os
            import signal

            os.kill(os.getpid(), getattr(signal, self.signal_name))


class KillAt(_SignalAt):
    """SIGKILL at the start of training step `step` (a crash mid-epoch)."""

    signal_name = "SIGKILL"


class TerminateAt(_SignalAt):
    """SIGTERM at the start of training step `step`, as SLURM sends before a kill."""

    signal_name = "SIGTERM"
