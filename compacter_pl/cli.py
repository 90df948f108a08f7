"""The command line: LightningCLI for fit / validate / test / predict with what a run does around Lightning's loop,
the other commands dispatched from `compacter_pl.tools.commands`, the overview `--help` prints, and the library output
the command line silences. What the arguments are and how they parse lives below, in `compacter_pl.config`;
nothing in the package imports this module (`cli.py`, `python -m compacter_pl` and `compacter-pl` run `main`).

Best checkpoints are chosen on the validation score (the mean of the task's metrics); the learning rate is
logged; freed host memory is kept for the next step (`host_memory`); the data module's task and tokenizer are
linked to the model's so a YAML names each once (`config.run`).
"""

import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path

from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.exceptions import SIGTERMException

from compacter_pl.checkpoint_io import os_error_in
from compacter_pl.config import identity, program
from compacter_pl.config.run import (
    LIGHTNING_COMMANDS,
    RunConfigCLI,
    cli_settings,
    method_and_model,
    method_help,
    newest_last_checkpoint,
)
from compacter_pl.errors import Interrupted, UserError, did_you_mean, file_error, first_line
from compacter_pl.tools.commands import COMMANDS, run_command
from compacter_pl.training.checkpoints import LastCheckpoint
from compacter_pl.training.summary import run_summary
from compacter_pl.training.trainer import LOGGER, with_progress_bar

FLOAT16_PRECISIONS = {"16", "16-mixed", "16-true", "transformer-engine-float16"}


def default_logger(config, subcommand: str | None) -> None:
    """The default logger (`trainer.logger` unset or true; a configured one is kept) is the project's TensorBoard
    logger (`compacter_pl.training.tensorboard`) in `default_root_dir/lightning_logs`, a new `version_N` per fit,
    except:

    - a fit resumed from `ROOT/lightning_logs/version_N/checkpoints/last.ckpt` logs on into version_N, so its curves
      continue the killed run's (a new fit started from another checkpoint, a best one, gets a folder of its own);
    - validate, test and predict of a checkpoint in `ROOT/lightning_logs/version_N/checkpoints/` log into
      version_N: test scores join that run's curves and HParams row, and no run of their own clutters the tab;
      with `--eval_other_task` (another task's scores) they get a folder of their own."""
    if config.trainer.get("logger") not in (None, True):
        return
    init_args = {"save_dir": config.trainer.get("default_root_dir") or ".", "version": SLURMEnvironment.job_id()}
    run_dir = None if config.get("eval_other_task") else _run_folder(config.get("ckpt_path"), subcommand == "fit")
    if run_dir is not None:
        init_args = {"save_dir": str(run_dir.parent.parent), "version": run_dir.name}
    config.trainer.logger = {"class_path": LOGGER, "init_args": init_args}


def _run_folder(ckpt_path, last_only: bool) -> Path | None:
    """`ROOT/lightning_logs/version_N` of a checkpoint in its `checkpoints/` (for a fit: only its last.ckpt)."""
    if not ckpt_path or "://" in str(ckpt_path):
        return None
    path = Path(ckpt_path).resolve()
    if (last_only and path.name != "last.ckpt") or path.parent.name != "checkpoints":
        return None
    run_dir = path.parent.parent
    if run_dir.parent.name != "lightning_logs" or not run_dir.name.startswith("version_"):
        return None
    return run_dir


class CompacterCLI(RunConfigCLI):
    def __init__(self, *args, **kwargs) -> None:
        # LightningCLI parses, builds and runs the subcommand all in its constructor, and its public hooks only
        # bracket the run (before_fit, after_fit): a run's errors are translated around the constructor.
        with self._file_errors():
            try:
                super().__init__(*args, **kwargs)
            except SIGTERMException:
                raise self._terminated(self.subcommand) from None

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if self.subcommand in UNTRAINED_VERBS and not config.get("ckpt_path") and not config.get("adapter"):
            method, model = method_and_model(config.model)
            print(
                f"warning: no --ckpt_path: {UNTRAINED_VERBS[self.subcommand]} the untrained model ({model} with "
                f"{method} as initialised, nothing fine-tuned); pass --ckpt_path the checkpoint that fit printed",
                file=sys.stderr,
            )
        default_logger(config, self.subcommand)
        if self.subcommand not in (None, "fit"):  # in a fit's folder: its config.yaml stays the fit's
            self.save_config_kwargs = {**self.save_config_kwargs, "config_filename": f"{self.subcommand}.config.yaml"}
        precision = str(config.trainer.get("precision"))
        if precision in FLOAT16_PRECISIONS and not config.get("allow_fp16"):
            raise UserError(
                f"precision {precision} overflows with T5 (inf/NaN activations); use "
                f"--trainer.precision bf16-mixed, or pass --allow_fp16 true to run it anyway"
            )

    def instantiate_trainer(self, **kwargs):
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer = config.get("trainer") or {}
        callbacks = trainer.get("callbacks") or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        kwargs.setdefault("callbacks", with_progress_bar(callbacks, trainer.get("enable_progress_bar")))
        try:
            return super().instantiate_trainer(**kwargs)
        except (ValueError, MisconfigurationException) as error:  # e.g. FSDP asked for on a CPU
            raise UserError(f"the trainer settings cannot work: {first_line(error)}") from None

    def _terminated(self, subcommand: str | None) -> Interrupted:
        """Lightning stops at the end of the step a SIGTERM arrived in (LastCheckpoint then writes last.ckpt):
        where to resume from."""
        trainer = self.trainer
        if subcommand != "fit":
            return Interrupted(f"{subcommand} stopped by SIGTERM; it wrote nothing to resume from: run it again")
        last = next((c for c in trainer.checkpoint_callbacks if isinstance(c, LastCheckpoint)), None)
        path = Path(last.best_model_path) if last is not None and last.best_model_path else None
        where = f"at step {trainer.global_step} (epoch {trainer.current_epoch})"
        if path is None or not path.is_file():
            return Interrupted(f"fit stopped by SIGTERM {where}; no last.ckpt was written: start it again")
        config = self.config[subcommand]
        root = config.trainer.get("default_root_dir") or "."
        with contextlib.suppress(UserError):  # what `--ckpt_path last` of the same command would resume
            newest, _ = newest_last_checkpoint(root, identity.of_config(config))
            if newest.resolve() == path.resolve():
                return Interrupted(
                    f"fit stopped by SIGTERM {where}; saved {path}: resume with the same command and "
                    f"--ckpt_path last (or --ckpt_path {path})"
                )
        return Interrupted(f"fit stopped by SIGTERM {where}; saved {path}: resume with --ckpt_path {path}")

    @contextlib.contextmanager
    def _file_errors(self):
        """A file that cannot be read or written, as one line naming the option that gave its path."""
        try:
            yield
        except Exception as error:
            os_error = os_error_in(error)
            if os_error is None or os_error.filename is None or isinstance(error, UserError):
                raise
            option, writing = self._option_of(os_error.filename)
            raise file_error(os_error, option, writing) from error

    def _option_of(self, filename) -> tuple[str | None, bool | None]:
        """The option whose path holds `filename` (the most specific), else the one whose path lies under it (a
        folder made for it), and whether the run writes there."""
        config = getattr(self, "config", None)
        if config is None:  # before the arguments parsed: no option names a path yet
            return None, None
        config = config[config.subcommand] if config.get("subcommand") else config
        paths = {  # option: (its path, written)
            "--trainer.default_root_dir": (config.trainer.get("default_root_dir") or "lightning_logs", True),
            "--checkpoint.dirpath": (config.checkpoint.get("dirpath"), True),
            "--last_checkpoint.dirpath": (config.last_checkpoint.get("dirpath"), True),
            "--predictions.output": (config.predictions.get("output"), True),
            "--data.cache_dir": (config.data.get("cache_dir"), True),
            "--data.data_dir": (config.data.get("data_dir"), False),
            "--data.predict_file": (config.data.get("predict_file"), False),
            "--ckpt_path": (config.get("ckpt_path"), False),
            "--adapter": (config.get("adapter"), False),
        }
        target = Path(os.path.abspath(filename))
        ranked = []
        for option, (path, written) in paths.items():
            if not path or "://" in str(path):
                continue
            path = Path(os.path.abspath(path))
            if target.is_relative_to(path):
                ranked.append(((0, -len(path.parts)), option, written))
            elif path.is_relative_to(target):
                ranked.append(((1, len(path.parts)), option, written))
        if not ranked:
            return None, None
        _, option, written = min(ranked)
        return option, written

    def after_fit(self) -> None:
        summary = run_summary(self.trainer)
        if summary is None or not self.trainer.is_global_zero:
            return
        print(summary.describe())
        best = summary.best
        if best is not None and best.checkpoint:
            path = best.checkpoint
            print(f"best checkpoint: {path}\ntest it with: {program()} test --config CONFIG --ckpt_path {path}")


UNTRAINED_VERBS = {"validate": "validating", "test": "testing", "predict": "predicting with"}


def _find_user_error(error: BaseException | None) -> UserError | None:
    """The UserError behind an exception (an OSError naming a file counts as one), or None for a bug."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        if isinstance(error, OSError) and error.filename is not None:  # of no option the CLI knows (see _file_errors)
            return file_error(error, None, None)
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


# Warnings that say nothing a user of this CLI can act on, each for a reason.
QUIET_WARNINGS = (
    # epoch metrics come from torchmetrics, which synced their states across devices before computing
    "It is recommended to use `self.log\\(",
    # the training batch sampler resumes mid-epoch exactly (data.samplers), which Lightning cannot know
    "You're resuming from a checkpoint that ended before the epoch ended",
    "You are using a custom batch sampler",
    # Lightning's own call into torch's pytree (lightning.pytorch.utilities._pytree), not ours
    "`isinstance\\(treespec, LeafSpec\\)` is deprecated",
)

# Lightning's info lines that are not about the run: its tips (adverts for its cloud products, "💡 Tip: ..."), and
# the note that configure_optimizers's schedule asked for the number of training steps.
QUIET_INFO = ("💡", "Loading `train_dataloader` to estimate number of stepping batches")
LIGHTNING_INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


def _not_quiet_info(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(QUIET_INFO)


def configure_runtime() -> None:
    """What the command line sets for its process (never at import, so a library user keeps their own settings):
    Hugging Face progress bars and info logging off, the warnings and Lightning's info lines above silenced."""
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in LIGHTNING_INFO_LOGGERS:
        if _not_quiet_info not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_not_quiet_info)


PAPER = "Karimi Mahabadi, Henderson and Ruder: Compacter: Efficient Low-Rank Hypercomplex Adapter Layers, NeurIPS 2021"


def command_summaries() -> dict[str, str]:
    return {**LIGHTNING_COMMANDS, **{name: command.summary for name, command in COMMANDS.items()}}


def overview() -> str:
    """The overview `--help` prints: every command with its line, and where to read more."""
    summaries = command_summaries()
    width = max(map(len, summaries))
    return "\n".join(
        [
            f"usage: {program()} COMMAND [OPTIONS]",
            "",
            "Fine-tune T5 on GLUE and SuperGLUE with Compacter and the baselines of its paper",
            f"({PAPER}).",
            "",
            "commands:",
            *(f"  {name:<{width}}  {summary}" for name, summary in summaries.items()),
            "",
            f"{program()} COMMAND --help documents a command's options (--key value, or from --config FILE.yaml);",
            f"{method_help()} (or any method's class name) a method's own arguments.",
        ]
    )


def build_cli(args: list[str] | None = None, run: bool = True) -> CompacterCLI:
    """The project's LightningCLI on `args`. With `run=False` the arguments take no subcommand: it parses them,
    seeds, and builds the model, data module and trainer as `fit` would, without running anything."""
    return CompacterCLI(**cli_settings(), args=args, run=run)


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else args
    if not argv or argv[0] in ("-h", "--help"):
        print(overview())
        if not argv:
            print(f"error: choose a command (see `{program()} --help`)", file=sys.stderr)
            sys.exit(2)
        return
    configure_runtime()
    try:
        if not argv[0].startswith("-") and argv[0] not in command_summaries():  # options come before a command
            raise UserError(
                f"unknown command {argv[0]!r}{did_you_mean(argv[0], command_summaries())} (commands: "
                f"{', '.join(command_summaries())}; see `{program()} --help`)"
            )
        if argv[0] in COMMANDS:
            run_command(argv[0], argv[1:])
            return
        build_cli(args)
    except Exception as error:  # a UserError may arrive wrapped, e.g. by jsonargparse building a class argument
        user_error = _find_user_error(error)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        sys.exit(getattr(user_error, "exit_code", 2))
