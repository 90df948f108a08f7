"""The configuration of a run (fit / validate / test / predict): LightningCLI's parser with the project's trainer
defaults and callbacks (`compacter_pl.training.trainer`, which `make_trainer` reads too) and its links, the model's
hyper-parameters taken from `--ckpt_path` (or from an export, `--adapter`), and `run_parser`, which parses a run's
arguments in process, nothing built (the sweep checks every run of its grid with it).

The command line (`compacter_pl.cli`) subclasses `RunConfigCLI` with what a run does; a parse here makes the same
parser, so a sweep's check and the run it starts cannot disagree.
"""

import sys
from collections.abc import Callable
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningCLI

from compacter_pl.checkpoint_io import read_checkpoint
from compacter_pl.config import identity
from compacter_pl.config.checks import check_run_options
from compacter_pl.config.one_line import OneLineErrorParser
from compacter_pl.config.program import program
from compacter_pl.data import TextToTextDataModule
from compacter_pl.errors import UserError
from compacter_pl.export import AdapterExport, load_trained, read_export, run_hyperparameters
from compacter_pl.training.module import TextToTextModule
from compacter_pl.training.trainer import RUN_CALLBACKS, TRAINER_DEFAULTS

LIGHTNING_COMMANDS = {  # LightningCLI's own, with the project's one-line summaries
    "fit": "Train a method on a task (resume a run with --ckpt_path).",
    "validate": "Score a checkpoint (--ckpt_path) on the validation split.",
    "test": "Score a checkpoint (--ckpt_path) on the test split.",
    "predict": "Write a checkpoint's predictions as JSON lines (--predictions.output FILE).",
}


def method_help() -> str:
    """The command that documents a method's own arguments."""
    return f"{program()} fit --model.method.help Compacter"


def run_seed(seed_everything) -> int:
    """The run's seed for the data module (seed_everything may be true/false for a random or no seed)."""
    return 42 if isinstance(seed_everything, bool) or seed_everything is None else int(seed_everything)


def newest_last_checkpoint(root: str, wanted: dict) -> tuple[Path, dict]:
    """The most recent `last.ckpt` under `root/lightning_logs` of a run whose identity is `wanted` (the command's:
    task, method, model, data settings), which is what `--ckpt_path last` means: never another kind of run's. Returns
    it with its content (read mapped), so the caller does not read it again."""
    candidates = sorted(Path(root).glob("lightning_logs/*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise UserError(
            f"--ckpt_path last: no last.ckpt under {Path(root) / 'lightning_logs'}; pass a checkpoint "
            f"path, or start without --ckpt_path"
        )
    newest_other = None
    for candidate in reversed(candidates):
        checkpoint = read_checkpoint(candidate, mmap=True)
        found = identity.differences(identity.of_checkpoint(checkpoint), wanted)
        if not found:
            return candidate, checkpoint
        newest_other = newest_other or (candidate, found)
    assert newest_other is not None
    raise UserError(
        f"--ckpt_path last: no run under {Path(root) / 'lightning_logs'} is of this command's kind (the newest, "
        f"{newest_other[0]}, differs: {'; '.join(newest_other[1])}); pass that run's settings, a checkpoint path, "
        f"or start without --ckpt_path"
    )


def _arguments(args) -> list[str]:
    """The command line LightningCLI parsed, as a list of tokens (a dict or Namespace given from Python: its
    dotted keys as options)."""
    if args is None:
        return sys.argv[1:]
    if isinstance(args, (list, tuple)):
        return [str(a) for a in args]
    flat = args.as_dict() if hasattr(args, "as_dict") else dict(args)
    tokens: list[str] = []

    def walk(node, prefix: str) -> None:
        for key, value in node.items():
            tokens.append(f"--{prefix}{key}")
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")

    walk(flat, "")
    return [t.replace(f"--{flat.get('subcommand')}.", "--", 1) for t in tokens]


def method_and_model(model) -> tuple[str, str]:
    """The method's class name and the model a (parsed) model config names."""
    method = model.get("method")
    class_path = method.get("class_path", "") if hasattr(method, "get") else ""
    return (str(class_path).rpartition(".")[2] or "the default method", str(model.get("model_name_or_path")))


class RunConfigCLI(LightningCLI):
    """LightningCLI's parsing of a run, with the project's arguments: the parser, and the config it makes of a
    command line and of the checkpoint `--ckpt_path` (or the export `--adapter`) names. What a run then does is
    `compacter_pl.cli`'s."""

    adapter_export: AdapterExport | None = None  # what --adapter names, once read

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.task", "model.task")
        parser.link_arguments("model.model_name_or_path", "data.tokenizer")
        for group, callback in RUN_CALLBACKS.items():  # the project's callbacks, each with an option group
            parser.add_lightning_class_args(callback.cls, group)
            parser.set_defaults({f"{group}.{name}": value for name, value in callback.defaults.items()})
        parser.link_arguments("seed_everything", "data.seed", compute_fn=run_seed)
        parser.add_argument(
            "--allow_fp16",
            type=bool,
            default=False,
            help="Run float16 precision although T5 is known to overflow in it (bf16 is safe).",
        )
        parser.add_argument(
            "--adapter",
            type=str | None,
            default=None,
            help="Validate, test or predict an export (its folder, or a Hugging Face Hub repository user/repo, "
            "from the Hub cache without a network) instead of a checkpoint: the method, its weights, the task and the "
            "data settings are the export's, the base model too unless --model.model_name_or_path names a copy of "
            "it (its architecture is checked).",
        )
        parser.add_argument(
            "--eval_other_task",
            type=bool,
            default=False,
            help="Validate, test or predict a checkpoint on another task than the one it trained on (--data.task "
            "names it); the results go to a run folder of their own, never the checkpoint's.",
        )

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        files = [*(self.config.get("config") or []), *(config.get("config") or [])]
        self.given_keys = identity.given_keys(_arguments(args), files)  # what the command names itself
        self.load_checkpoint_hyperparameters()
        check_run_options(self.config[subcommand] if subcommand else self.config)  # before LightningCLI seeds

    def load_checkpoint_hyperparameters(self) -> None:
        """LightningCLI takes the model's hyper-parameters from `--ckpt_path` (as `load_from_checkpoint` would), and
        the data settings that make a run's identity from the checkpoint's data module (`compacter_pl.config.
        identity`). Options the command gives itself are compared with the checkpoint's first: an identity that
        differs is refused in one line, evaluation and speed options are honoured, and a fit does not resume with
        another learning rate or schedule. This is the first read of the file, so a file that is no checkpoint is
        refused here in one line (read with weights_only, its tensors mapped, not read). `last` is resolved first,
        to the newest last.ckpt of a run of the command's identity."""
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        if config is not None and config.get("adapter"):
            self._load_adapter_hyperparameters(subcommand, config)
            return
        if config is None or not config.get("ckpt_path"):
            return
        other_task = bool(config.get("eval_other_task"))
        if other_task and subcommand == "fit":
            raise UserError("--eval_other_task is for validate, test and predict; a fit resumes the task it trained")
        checkpoint = None
        if config.ckpt_path == "last":  # Lightning looks only in the new run's folder: find the real one
            root = config.trainer.get("default_root_dir") or "."
            last, checkpoint = newest_last_checkpoint(root, identity.of_config(config))
            config.ckpt_path = str(last)
            print(f"resuming from {config.ckpt_path}")
        if "://" in str(config.ckpt_path):  # remote: read by the trainer alone (Lightning's own parse skips it too)
            return
        if checkpoint is None:
            checkpoint = read_checkpoint(config.ckpt_path, mmap=True)
        self._apply_run_hyperparameters(subcommand, config, checkpoint, "--ckpt_path", config.ckpt_path)

    def _load_adapter_hyperparameters(self, subcommand: str, config) -> None:
        """`--adapter`: the export's method, task and data settings, as a checkpoint's are taken (`export.
        run_hyperparameters`); its weights load into the model once it is built (`instantiate_classes`). The base
        model is the export's unless the command names one (a copy elsewhere; `TextToTextModule` checks its
        architecture)."""
        if subcommand == "fit":
            raise UserError("--adapter is for validate, test and predict; fit starts from --ckpt_path or from scratch")
        if config.get("ckpt_path"):
            raise UserError(
                f"--adapter {config.adapter} and --ckpt_path {config.ckpt_path} both name the weights to run; pass one"
            )
        self.adapter_export = read_export(config.adapter)
        self._apply_run_hyperparameters(
            subcommand, config, run_hyperparameters(self.adapter_export), "--adapter", config.adapter
        )

    def _apply_run_hyperparameters(self, subcommand: str, config, checkpoint: dict, option: str, source) -> None:
        """The model's and data's hyper-parameters of `checkpoint` (loaded with `option source`) into the config,
        compared first with what the command gives."""
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        other_task = bool(config.get("eval_other_task"))
        keys: set[str] = getattr(self, "given_keys", set())
        given = identity.given_identity(config, keys)
        if other_task:  # another task's data: its own task and data settings, compared with nothing
            given = {k: v for k, v in given.items() if k in ("method", "model")}
        kept: tuple[str, ...] = identity.HONOURED
        if option == "--adapter":  # a copy of the base model anywhere: its architecture is what must agree
            given.pop("model", None)
            kept += ("model_name_or_path",)
        honoured = identity.given_options(config, keys, "model", kept)
        training = identity.given_options(config, keys, "model", identity.TRAINING)
        named = method_and_model(config.model)
        try:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
        except UserError as error:  # e.g. a method class_path that is no registered method
            raise UserError(f"{option} {source} holds hyper-parameters this CLI refuses: {error}") from None
        recorded = identity.of_checkpoint(checkpoint)
        holder = "the export" if option == "--adapter" else "the checkpoint"
        hint = f"leave them out ({holder}'s are used) or pass the run's own"
        if subcommand != "fit" and given.get("task", recorded["task"]) != recorded["task"]:
            hint += ", or --eval_other_task true to score it on another task into a folder of its own"
        identity.refuse_differences(source, recorded, given, hint, option)
        if subcommand == "fit":
            for name, value in training.items():
                if name in hparams and value != hparams[name]:
                    raise UserError(
                        f"--model.{name} {value}: {source} resumes its optimizer and schedule with "
                        f"{hparams[name]}; leave --model.{name} out, or start a new fit without --ckpt_path"
                    )
        config = self.config[subcommand]
        for name, value in honoured.items():
            config.model[name] = value
        if not other_task:
            data = dict(checkpoint.get("datamodule_hyper_parameters") or {})
            for name in ("task", *identity.DATA_FIELDS):
                if name not in given and name in data:
                    config.data[name] = data[name]
        config.model.task = config.data.task  # the task scored is the data's
        loaded = method_and_model(config.model)
        if loaded != named:
            print(
                f"warning: loaded {loaded[0]} on {loaded[1]} from {source}, the method and model it was "
                f"trained with, in place of the config's {named[0]} on {named[1]}",
                file=sys.stderr,
            )

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        if self.adapter_export is not None:  # --adapter: its weights, into the model its method was applied to
            load_trained(self.model.model, self.adapter_export)

    def _parse_ckpt_path(self) -> None:
        """Nothing: `load_checkpoint_hyperparameters` has done it. The one private hook this project overrides:
        LightningCLI's constructor calls it right after `parse_arguments` and no public hook can skip it; left as it
        is, it would read the whole checkpoint a second time (not mapped) and apply the same hyper-parameters again.
        (`tests/unit/test_imports_point_down.py` fails if Lightning stops calling it.)"""


def cli_settings() -> dict:
    """LightningCLI's arguments for the project's command line; the same for every parse of a run."""
    pointer = f"A method's own arguments (its init_args): {method_help()} (or any method's class name)."
    return {
        "model_class": TextToTextModule,
        "datamodule_class": TextToTextDataModule,
        "seed_everything_default": 42,
        "save_config_kwargs": {"overwrite": True},
        "parser_class": OneLineErrorParser,
        "auto_configure_optimizers": False,
        "trainer_defaults": TRAINER_DEFAULTS,
        "parser_kwargs": {
            name: {"description": f"{summary} {pointer}"} for name, summary in LIGHTNING_COMMANDS.items()
        },
    }


class _ParserOnly(RunConfigCLI):
    """Builds the parser and stops there, through public hooks: a config that names no subcommand and no seed
    leaves LightningCLI nothing to seed, read or run, and instantiating is skipped."""

    def parse_arguments(self, parser, args) -> None:
        self.config = Namespace(subcommand=None, seed_everything=False)

    def instantiate_classes(self) -> None:
        pass


def run_parser() -> Callable[[list[str]], dict]:
    """The command line's own parser of a run, built once (building it is most of the cost of a parse): call the
    result on a run's arguments (e.g. `fit --config C --trainer.max_epochs=3`) as often as needed. Each call parses
    in this process, nothing built or run, and returns the subcommand's config, or raises a UserError saying in one
    line why the arguments do not parse."""
    parser = _ParserOnly(**cli_settings(), args=[], load_from_checkpoint_support=False).parser

    def parse(args: list[str]) -> dict:
        config = parser.parse_args(args)
        check_run_options(config[config.subcommand])
        return config[config.subcommand].as_dict()

    return parse


def parse_run(args: list[str]) -> dict:
    """A run's arguments parsed in this process by the command line's own parser, nothing built or run (see
    `run_parser`)."""
    return run_parser()(args)
