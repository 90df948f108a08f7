"""The command line: LightningCLI for fit / validate / test / predict, with the project's defaults.

Best checkpoints are chosen on the validation score (the mean of the task's metrics); the learning rate is
logged; freed host memory is kept for the next step (`host_memory`); the data module's task and tokenizer are
linked to the model's so a YAML names each once.
"""

import difflib
import re
import sys
import warnings
from pathlib import Path

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from compacter_pl.commands import COMMANDS, run_command
from compacter_pl.data import TextToTextDataModule
from compacter_pl.errors import UserError
from compacter_pl.host_memory import HostMemory
from compacter_pl.module import TextToTextModule
from compacter_pl.prediction_writer import PredictionWriter


def run_seed(seed_everything) -> int:
    """The run's seed for the data module (seed_everything may be true/false for a random or no seed)."""
    return 42 if isinstance(seed_everything, bool) or seed_everything is None else int(seed_everything)


def _known_keys(parser) -> list[str]:
    keys = [a.dest for a in parser._actions if a.dest and a.dest != "help"]
    subcommands = getattr(parser, "_subcommands_action", None)
    for subparser in getattr(subcommands, "_name_parser_map", {}).values():
        keys += _known_keys(subparser)
    return keys


TRAINER_DEFAULTS = {
    "plugins": [{"class_path": "compacter_pl.checkpoint_io.AtomicCheckpointIO"}],
    "use_distributed_sampler": False,  # the data module shards batches itself (no repeats in evaluation)
}
FLOAT16_PRECISIONS = {"16", "16-mixed", "16-true", "transformer-engine-float16"}


def newest_last_checkpoint(root: str) -> Path:
    """The most recent `last.ckpt` of the runs under `root/lightning_logs` (what `--ckpt_path last` means)."""
    candidates = sorted(Path(root).glob("lightning_logs/*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise UserError(f"--ckpt_path last: no last.ckpt under {Path(root) / 'lightning_logs'}; pass a checkpoint "
                        f"path, or start without --ckpt_path")
    return candidates[-1]


class OneLineErrorParser(LightningArgumentParser):
    """Turns jsonargparse's usage-plus-message exits into a one-line UserError, with the closest key for a typo."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)  # a typo must never match a longer option

    def error(self, message: str, ex: Exception | None = None):
        text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
        bad_class = re.search(r"Problem with given class_path '([^']+)'", text)
        if bad_class:
            from compacter_pl import methods

            raise UserError(f"unknown method class_path '{bad_class.group(1)}'; known methods: "
                            f"{', '.join(n for n in methods.__all__ if isinstance(getattr(methods, n), type))}")
        union = re.search(r'Parser key "([^"]+)": Does not validate against any of the Union subtypes.*?Errors: - (.*?)'
                          r'(?: \(see `python cli.py [^)]*\))? - Expected a <class .NoneType.>', text)
        if union:  # an optional class argument (model.method): the class's own error, not the None branch's
            text = f"{union.group(1)}: {union.group(2)}"
        choice = re.search(r'Parser key "([^"]+)": Expected a (?:typing\.)?Literal\[(.*?)\]\. Got value: (\S+)', text)
        if choice:  # a value outside a closed set (--data.task, --model.eval_mode): the set, and the closest one
            key, allowed, value = choice.group(1), re.findall(r"'([^']*)'", choice.group(2)), choice.group(3)
            text = f"unknown {key.rsplit('.', 1)[-1]} '{value}' (--{key}); choose one of {', '.join(allowed)}"
            close = difflib.get_close_matches(value, allowed, n=1)
            if close:
                text += f"; did you mean '{close[0]}'?"
            raise UserError(f"{text} (see `python cli.py fit --help`)")
        unknown = re.search(r"(?:does not accept option|unrecognized arguments:|Key) '?-*([\w.\-]+)'?", text, re.I)
        if unknown:
            key = unknown.group(1).lstrip("-")
            close = difflib.get_close_matches(key, _known_keys(self), n=1)
            if close:
                text += f"; did you mean '{close[0]}'?"
        raise UserError(f"{text} (see `python cli.py fit --help`)")


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
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.add_lightning_class_args(HostMemory, "host_memory")
        parser.link_arguments("seed_everything", "data.seed", compute_fn=run_seed)
        parser.add_argument("--allow_fp16", type=bool, default=False,
                            help="Run float16 precision although T5 is known to overflow in it (bf16 is safe).")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("ckpt_path") == "last":  # Lightning looks only in the new run's folder: find the real one
            config.ckpt_path = str(newest_last_checkpoint(config.trainer.get("default_root_dir") or "."))
            print(f"resuming from {config.ckpt_path}")
        precision = str(config.trainer.get("precision"))
        if precision in FLOAT16_PRECISIONS and not config.get("allow_fp16"):
            raise UserError(f"precision {precision} overflows with T5 (inf/NaN activations); use "
                            f"--trainer.precision bf16-mixed, or pass --allow_fp16 true to run it anyway")

    def instantiate_trainer(self, **kwargs):
        try:
            return super().instantiate_trainer(**kwargs)
        except (ValueError, MisconfigurationException) as error:  # e.g. FSDP asked for on a CPU
            raise UserError(f"the trainer settings cannot work: {str(error).splitlines()[0]}") from None

    def after_fit(self) -> None:
        best = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else ""
        if best and self.trainer.is_global_zero:
            print(f"best checkpoint: {best}\ntest it with: python cli.py test --config CONFIG --ckpt_path {best}")


def _find_user_error(error: BaseException | None) -> UserError | None:
    """The UserError behind an exception (an OSError naming a file counts as one), or None for a bug."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        if isinstance(error, OSError) and error.filename is not None:  # a read-only or full disk, a bad path
            return UserError(f"cannot write {error.filename}: {error.strerror}; choose a writable directory "
                             f"with --trainer.default_root_dir DIR")
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
)


def configure_runtime() -> None:
    """What the command line sets for its process (never at import, so a library user keeps their own settings):
    Hugging Face progress bars and info logging off, the warnings above silenced."""
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def build_cli(args: list[str] | None = None, run: bool = True) -> CompacterCLI:
    """The project's LightningCLI on `args`. With `run=False` the arguments take no subcommand: it parses them,
    seeds, and builds the model, data module and trainer as `fit` would, without running anything."""
    return CompacterCLI(TextToTextModule, TextToTextDataModule, seed_everything_default=42,
                        save_config_kwargs={"overwrite": True}, parser_class=OneLineErrorParser,
                        auto_configure_optimizers=False, trainer_defaults=TRAINER_DEFAULTS, args=args, run=run)


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else args
    configure_runtime()
    try:
        if argv and argv[0] in COMMANDS:
            run_command(argv[0], argv[1:])
            return
        build_cli(args)
    except Exception as error:  # a UserError may arrive wrapped, e.g. by jsonargparse building a class argument
        user_error = _find_user_error(error)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        sys.exit(2)
