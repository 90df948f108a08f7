"""The command line: LightningCLI for fit / validate / test / predict, with the project's defaults, and the parser
of the other commands (`compacter_pl.commands`), so that every command takes its options the same way.

Best checkpoints are chosen on the validation score (the mean of the task's metrics); the learning rate is
logged; freed host memory is kept for the next step (`host_memory`); the data module's task and tokenizer are
linked to the model's so a YAML names each once.
"""

import contextlib
import dataclasses
import inspect
import logging
import os
import re
import sys
import typing
import warnings
from collections.abc import Callable
from pathlib import Path

import docstring_parser
import yaml
from jsonargparse import ActionConfigFile, get_loader
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from compacter_pl.checkpoint_io import LastCheckpoint, os_error_in, read_checkpoint
from compacter_pl.commands import COMMANDS, run_command
from compacter_pl.data import TextToTextDataModule
from compacter_pl.errors import Interrupted, UserError, did_you_mean, file_error
from compacter_pl.host_memory import HostMemory
from compacter_pl.module import TextToTextModule
from compacter_pl.prediction_writer import PredictionWriter
from compacter_pl.progress import default_progress_bar


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
        raise UserError(
            f"--ckpt_path last: no last.ckpt under {Path(root) / 'lightning_logs'}; pass a checkpoint "
            f"path, or start without --ckpt_path"
        )
    return candidates[-1]


LOGGER = "compacter_pl.tensorboard.TensorBoardLogger"


def default_logger(config, subcommand: str | None) -> None:
    """The default logger (`trainer.logger` unset or true; a configured one is kept) is the project's TensorBoard
    logger (`compacter_pl.tensorboard`) in `default_root_dir/lightning_logs`, a new `version_N` per fit, except:

    - a fit resumed from `ROOT/lightning_logs/version_N/checkpoints/last.ckpt` logs on into version_N, so its curves
      continue the killed run's (a new fit started from another checkpoint, a best one, gets a folder of its own);
    - validate, test and predict of a checkpoint in `ROOT/lightning_logs/version_N/checkpoints/` log into
      version_N: test scores join that run's curves and HParams row, and no run of their own clutters the tab."""
    if config.trainer.get("logger") not in (None, True):
        return
    init_args = {"save_dir": config.trainer.get("default_root_dir") or ".", "version": SLURMEnvironment.job_id()}
    run_dir = _run_folder(config.get("ckpt_path"), last_only=subcommand == "fit")
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


load_yaml = get_loader("yaml")  # jsonargparse's, as it reads every --config (YAML 1.2 numbers: `3e-4` is a float)


def read_yaml_file(path: str | Path, what: str = "config file"):
    """The data of a YAML file, or a UserError naming the file: empty (or only comments), or not YAML, with the
    line and, when a tab is on it, that YAML indents with spaces (yaml's own message names a "<unicode string>")."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{what} {path} is not UTF-8 (byte {error.start}); save it as UTF-8") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        tab = "; it holds a tab: indent YAML with spaces only" if "\t" in line else ""
        raise UserError(f"cannot parse {what} {path}{where}: {getattr(error, 'problem', None) or error}{tab}") from None
    if data is None:
        raise UserError(f"{what} {path} is empty: it should hold options as YAML `key: value` lines")
    return data


class OneLineErrorParser(LightningArgumentParser):
    """Turns jsonargparse's usage-plus-message exits into a one-line UserError, with the closest key for a typo
    (among the keys of the value it is in, when the message names one) and the help to read (`see`)."""

    def __init__(self, *args, see: str | None = "python cli.py fit --help", **kwargs) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)  # a typo must never match a longer option
        self.see = see

    def parse_path(self, path, *args, **kwargs):
        """A `--config` file, after `read_yaml_file` has said in one line why one that is empty or not YAML cannot
        be read (jsonargparse's own messages name no file)."""
        read_yaml_file(path)
        return super().parse_path(path, *args, **kwargs)

    def error(self, message: str, ex: Exception | None = None):
        text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
        text = re.sub(r" \(see `[^`]*`\)", "", text)  # a nested parser's own pointer to the help
        text = re.sub(r"(Expected a )?<class '(?:\w+\.)*(\w+)'>", lambda m: ("expected " if m[1] else "") + m[2], text)
        bad_class = re.search(r"Problem with given class_path '([^']+)'", text)
        abstract = re.search(
            r'Parser key "model\.method".*?Expected an instantiatable class, but (\S+) is abstract', text
        )
        if bad_class or abstract:
            from compacter_pl.methods import registry

            known = registry.method_class_names()
            if abstract:  # Method, AdapterMethod: bases to subclass, not methods to train
                raise UserError(
                    f"method class_path '{abstract[1]}' is abstract (a base to subclass, not a method); choose one "
                    f"of {', '.join(known)}"
                )
            close = did_you_mean(bad_class.group(1).rpartition(".")[2], known)
            raise UserError(
                f"unknown method class_path '{bad_class.group(1)}'{close} (known methods: {', '.join(known)})"
            )
        given = re.search(r"Given value: (\S+)$", text)
        text = re.sub(  # a PositiveInt's "Not of type PositiveInt: 0 does not conform to restriction v>0"
            r"Not of type (\w+): (?:(\S+) )?does not conform to restriction v([<>=]+)(\S+)",
            lambda m: f"must be {m[3]} {m[4]} ({m[1]}), got {m[2] or (given[1] if given else '')}",
            text,
        )
        union = re.search(
            r'Parser key "([^"]+)": (?:- Expected a path but .*? - )?Does not validate against any of '
            r"the Union subtypes.*?Errors: - (.*?) - expected NoneType",
            text,
        )
        if union:  # an optional class argument (model.method): the class's own error, not the None branch's
            text = f"{union.group(1)}: {union.group(2)}"
        text = re.sub(
            r"Does not validate against any of the Union subtypes Subtypes: \[(.*)\] Errors: .*? Given "
            r"value: ",
            lambda m: f"expected one of {m[1].replace('typing.', '')}; got ",
            text,
        )
        text = re.sub(r"Option ('[^']+') is not accepted", r"unknown key \1", text)
        text = re.sub(r"Unexpected keys: \{('[^']+')[^}]*\}\. Got value: ", r"unknown key \1 in ", text)
        unknown = re.search(
            r"(?:does not accept option|unrecognized arguments:|Key|unknown key) '?-*([\w.\-]+)", text, re.I
        )
        if unknown and "did you mean" not in text:  # not already said by a class argument's own parser
            text += did_you_mean(unknown.group(1), self._keys_around(message), negation=True)
        literal = re.search(r"Expected a typing\.Literal\[(.*?)\]\. Got value: (\S+)", text)
        if literal:
            choices = re.findall(r"'([^']*)'", literal.group(1))
            text = (
                f"{text[: literal.start()]}expected one of {', '.join(choices)}, got {literal.group(2)!r}"
                f"{did_you_mean(literal.group(2), choices)}"
            )
        text = re.sub(r'Parser key "([^"]+)"(?: element \d+)?:', r"\1:", text)
        raise UserError(f"{text} (see `{self.see}`)" if self.see else text)

    def _keys_around(self, message: str) -> list[str]:
        """The keys a misspelt key was meant to be among: those of the typed mapping (a TypedDict) under the parser
        key the message names, else every key of this parser (a class's own arguments have a parser of their own)."""
        key = re.search(r'Parser key "([^"]+)"', message)
        action = next((a for a in self._actions if key and a.dest == key.group(1)), None)
        return _typed_keys(getattr(action, "_typehint", None)) or _known_keys(self)


def _typed_keys(hint) -> list[str]:
    """The keys of the TypedDicts and dataclasses in a type hint (dict[str, Entry] -> Entry's keys)."""
    if isinstance(hint, type) and (typing.is_typeddict(hint) or dataclasses.is_dataclass(hint)):
        return list(typing.get_type_hints(hint))
    return [key for arg in typing.get_args(hint) for key in _typed_keys(arg)]


def command_parser(component, command: str, positional: tuple[str, ...] = ()) -> OneLineErrorParser:
    """The parser of `python cli.py COMMAND`: the typed parameters of `component` (a function, or a dataclass of
    options) as options, `--help` from its docstring, parsed as `fit` is (underscores, no abbreviations, one-line
    errors naming the closest key, `--config` YAML unless a parameter is named config). As these commands always
    took them, a list takes space-separated values (`--methods a b`), a bool may stand alone (`--compile`)."""
    doc = docstring_parser.parse_from_object(component)
    parser = OneLineErrorParser(
        prog=f"python cli.py {command}",
        see=f"python cli.py {command} --help",
        description=" ".join(filter(None, [doc.short_description, doc.long_description])),
    )
    helps = {param.arg_name: " ".join(param.description.split()) for param in doc.params if param.description}
    hints = typing.get_type_hints(component)
    parameters = inspect.signature(component).parameters
    if "config" not in parameters:
        parser.add_argument("--config", action=ActionConfigFile, help="A YAML file of these options.")
    for name, parameter in parameters.items():
        hint, kwargs = hints[name], {"help": helps.get(name)}
        listed = [arg for arg in (hint, *typing.get_args(hint)) if typing.get_origin(arg) is list]
        if listed:
            kwargs.update(type=typing.get_args(listed[0])[0], nargs="+", metavar=name.upper())
        else:
            kwargs.update(type=hint, **({"nargs": "?", "const": True} if hint is bool else {}))
        if parameter.default is not parameter.empty:
            kwargs["default"] = parameter.default
        elif name not in positional:
            kwargs["required"] = True
        parser.add_argument(name if name in positional else f"--{name}", **kwargs)
    return parser


def run_command_line(component, argv: list[str], command: str, positional: tuple[str, ...] = ()):
    """`component` called with `python cli.py COMMAND ARGV` parsed by its `command_parser` (a dataclass: made)."""
    options = command_parser(component, command, positional).parse_args(argv).as_dict()
    return component(**{name: options[name] for name in inspect.signature(component).parameters})


class CompacterCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.task", "model.task")
        parser.link_arguments("model.model_name_or_path", "data.tokenizer")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/score",
                "checkpoint.mode": "max",
                "checkpoint.save_last": False,
                "checkpoint.filename": "best-{epoch}-{step}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        # last.ckpt: where the run stopped (each epoch's end, and every_n_train_steps if set), whatever the score;
        # `--ckpt_path last` resumes from it. (Lightning's save_last writes it only when a best checkpoint is saved.)
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.add_lightning_class_args(HostMemory, "host_memory")
        parser.link_arguments("seed_everything", "data.seed", compute_fn=run_seed)
        parser.add_argument(
            "--allow_fp16",
            type=bool,
            default=False,
            help="Run float16 precision although T5 is known to overflow in it (bf16 is safe).",
        )

    def _parse_ckpt_path(self) -> None:
        """LightningCLI takes the model's hyper-parameters from `--ckpt_path` (as `load_from_checkpoint` would): the
        method and model a checkpoint was trained with replace the config's, and a line says so when they differ.
        Lightning reads the file here, before any of our code, so this is where a file that is no checkpoint is
        refused in one line (read with weights_only, its tensors mapped, not read). `last` is resolved first, so the
        newest last.ckpt is read the same way."""
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        if config is None or not config.get("ckpt_path"):
            return
        if config.ckpt_path == "last":  # Lightning looks only in the new run's folder: find the real one
            config.ckpt_path = str(newest_last_checkpoint(config.trainer.get("default_root_dir") or "."))
            print(f"resuming from {config.ckpt_path}")
        if "://" in str(config.ckpt_path):  # remote: Lightning's own reading (with weights_only)
            return super()._parse_ckpt_path()
        hparams = dict(read_checkpoint(config.ckpt_path, mmap=True).get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        named = _method_and_model(config.model)
        try:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
        except UserError as error:  # e.g. a method class_path that is no registered method
            raise UserError(f"checkpoint {config.ckpt_path} holds hyper-parameters this CLI refuses: {error}") from None
        loaded = _method_and_model(self.config[subcommand].model)
        if loaded != named:
            print(
                f"warning: loaded {loaded[0]} on {loaded[1]} from {config.ckpt_path}, the method and model it was "
                f"trained with, in place of the config's {named[0]} on {named[1]}",
                file=sys.stderr,
            )

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if self.subcommand in UNTRAINED_VERBS and not config.get("ckpt_path"):
            method, model = _method_and_model(config.model)
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
        if trainer.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            kwargs.setdefault("callbacks", [*callbacks, default_progress_bar()])  # the user's callbacks, and the bar
        try:
            return super().instantiate_trainer(**kwargs)
        except (ValueError, MisconfigurationException) as error:  # e.g. FSDP asked for on a CPU
            raise UserError(f"the trainer settings cannot work: {str(error).splitlines()[0]}") from None

    def instantiate_classes(self) -> None:
        with self._file_errors():
            super().instantiate_classes()

    def _run_subcommand(self, subcommand: str) -> None:
        with self._file_errors():
            try:
                super()._run_subcommand(subcommand)
            except SIGTERMException:
                raise self._terminated(subcommand) from None

    def _terminated(self, subcommand: str) -> Interrupted:
        """Lightning stops at the end of the step a SIGTERM arrived in (LastCheckpoint then writes last.ckpt):
        where to resume from."""
        trainer = self.trainer
        if subcommand != "fit":
            return Interrupted(f"{subcommand} stopped by SIGTERM; it wrote nothing to resume from: run it again")
        last = next((c for c in trainer.callbacks if isinstance(c, LastCheckpoint)), None)
        path = Path(last.best_model_path) if last is not None and last.best_model_path else None
        where = f"at step {trainer.global_step} (epoch {trainer.current_epoch})"
        if path is None or not path.is_file():
            return Interrupted(f"fit stopped by SIGTERM {where}; no last.ckpt was written: start it again")
        root = self.config[subcommand].trainer.get("default_root_dir") or "."
        with contextlib.suppress(UserError):
            if newest_last_checkpoint(root).resolve() == path.resolve():
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
        config = self.config[self.subcommand] if self.subcommand else self.config
        paths = {  # option: (its path, written)
            "--trainer.default_root_dir": (config.trainer.get("default_root_dir") or "lightning_logs", True),
            "--checkpoint.dirpath": (config.checkpoint.get("dirpath"), True),
            "--last_checkpoint.dirpath": (config.last_checkpoint.get("dirpath"), True),
            "--predictions.output": (config.predictions.get("output"), True),
            "--data.cache_dir": (config.data.get("cache_dir"), True),
            "--data.data_dir": (config.data.get("data_dir"), False),
            "--data.predict_file": (config.data.get("predict_file"), False),
            "--ckpt_path": (config.get("ckpt_path"), False),
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
        best = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else ""
        if best and self.trainer.is_global_zero:
            print(f"best checkpoint: {best}\ntest it with: python cli.py test --config CONFIG --ckpt_path {best}")


UNTRAINED_VERBS = {"validate": "validating", "test": "testing", "predict": "predicting with"}


def _method_and_model(model) -> tuple[str, str]:
    """The method's class name and the model a (parsed) model config names."""
    method = model.get("method")
    class_path = method.get("class_path", "") if hasattr(method, "get") else ""
    return (str(class_path).rpartition(".")[2] or "the default method", str(model.get("model_name_or_path")))


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
METHOD_HELP = "python cli.py fit --model.method.help Compacter"
LIGHTNING_COMMANDS = {  # LightningCLI's own, with the project's one-line summaries
    "fit": "Train a method on a task (resume a run with --ckpt_path).",
    "validate": "Score a checkpoint (--ckpt_path) on the validation split.",
    "test": "Score a checkpoint (--ckpt_path) on the test split.",
    "predict": "Write a checkpoint's predictions as JSON lines (--predictions.output FILE).",
}


def command_summaries() -> dict[str, str]:
    return {**LIGHTNING_COMMANDS, **{name: command.summary for name, command in COMMANDS.items()}}


def overview() -> str:
    """`python cli.py --help`: every command with its line, and where to read more."""
    summaries = command_summaries()
    width = max(map(len, summaries))
    return "\n".join(
        [
            "usage: python cli.py COMMAND [OPTIONS]",
            "",
            "Fine-tune T5 on GLUE and SuperGLUE with Compacter and the baselines of its paper",
            f"({PAPER}).",
            "",
            "commands:",
            *(f"  {name:<{width}}  {summary}" for name, summary in summaries.items()),
            "",
            "python cli.py COMMAND --help documents a command's options (--key value, or from --config FILE.yaml);",
            f"{METHOD_HELP} (or any method's class name) a method's own arguments.",
        ]
    )


def _subcommand_descriptions() -> dict[str, dict]:
    pointer = f"A method's own arguments (its init_args): {METHOD_HELP} (or any method's class name)."
    return {name: {"description": f"{summary} {pointer}"} for name, summary in LIGHTNING_COMMANDS.items()}


CLI_SETTINGS = {
    "model_class": TextToTextModule,
    "datamodule_class": TextToTextDataModule,
    "seed_everything_default": 42,
    "save_config_kwargs": {"overwrite": True},
    "parser_class": OneLineErrorParser,
    "auto_configure_optimizers": False,
    "trainer_defaults": TRAINER_DEFAULTS,
    "parser_kwargs": _subcommand_descriptions(),
}


class _Built(Exception):
    """Stops a `_ParseOnlyCLI` once its parser is built, carrying the parser."""


class _ParseOnlyCLI(CompacterCLI):
    def parse_arguments(self, parser, args) -> None:
        raise _Built(parser)


def run_parser() -> Callable[[list[str]], dict]:
    """cli.py's own parser, built once (building it is most of the cost of a parse): call the result on `cli.py
    ARGS` (e.g. `fit --config C --trainer.max_epochs=3`) as often as needed. Each call parses in this process,
    nothing built or run, and returns the subcommand's config, or raises a UserError saying in one line why the
    arguments do not parse."""
    try:
        _ParseOnlyCLI(**CLI_SETTINGS, args=[])
    except _Built as built:
        parser = built.args[0]
    else:
        raise AssertionError("the CLI did not stop before parsing")

    def parse(args: list[str]) -> dict:
        config = parser.parse_args(args)
        return config[config.subcommand].as_dict()

    return parse


def parse_run(args: list[str]) -> dict:
    """`cli.py ARGS` parsed in this process by the CLI's own parser, nothing built or run (see `run_parser`)."""
    return run_parser()(args)


def build_cli(args: list[str] | None = None, run: bool = True) -> CompacterCLI:
    """The project's LightningCLI on `args`. With `run=False` the arguments take no subcommand: it parses them,
    seeds, and builds the model, data module and trainer as `fit` would, without running anything."""
    return CompacterCLI(**CLI_SETTINGS, args=args, run=run)


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else args
    if not argv or argv[0] in ("-h", "--help"):
        print(overview())
        if not argv:
            print("error: choose a command (see `python cli.py --help`)", file=sys.stderr)
            sys.exit(2)
        return
    configure_runtime()
    try:
        if not argv[0].startswith("-") and argv[0] not in command_summaries():  # options come before a command
            raise UserError(
                f"unknown command {argv[0]!r}{did_you_mean(argv[0], command_summaries())} (commands: "
                f"{', '.join(command_summaries())}; see `python cli.py --help`)"
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
