"""Adapter exports: the parameters that train, as safetensors, plus a JSON that says how to rebuild them.

An export is a directory with `adapter.safetensors` and `adapter_config.json` (method class and arguments,
base model and its architecture, task, the data settings training tokenized with, metrics at export time), a
model card `README.md` (`compacter_pl.model_card`: the Hub's metadata and how to use it) and, for a method that
wraps a library (PEFT), that library's own files in a subfolder (`Method.library_folder`). Loading never runs code
from the files: safetensors for the weights, `weights_only` for Lightning checkpoints, and the method class must
be a registered one (`compacter_pl.methods.registry`; a user's own method: import the module that registers it
first). The class path is looked up, never imported. An export loads from its folder or from a Hugging Face Hub
repository it was pushed to (`export_source`).
"""

import copy
import inspect
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from compacter_pl.checkpoint_io import read_checkpoint
from compacter_pl.errors import UserError
from compacter_pl.files import check_output_folder, staged_directory
from compacter_pl.hub import download_files, is_repo_id
from compacter_pl.methods import Method, registry, trainable_names
from compacter_pl.model_card import model_card
from compacter_pl.tasks import get_task

WEIGHTS_FILE = "adapter.safetensors"
CONFIG_FILE = "adapter_config.json"
CARD_FILE = "README.md"
EXPORT_FILES = {WEIGHTS_FILE, CONFIG_FILE, CARD_FILE}  # the files an export folder holds
FORMAT_VERSION = 1
DEFAULT_LICENSE = "apache-2.0"  # T5's, and this project's
# RunSummary's state in a checkpoint (compacter_pl.training.summary; a callback's state is saved under its class name)
RUN_SUMMARY_STATE = "RunSummary"
ARCHITECTURE_KEYS = (
    "d_model",
    "d_kv",
    "d_ff",
    "num_layers",
    "num_decoder_layers",
    "num_heads",
    "vocab_size",
    "feed_forward_proj",
    "tie_word_embeddings",
)


def architecture_of(config: T5Config) -> dict:
    """What an adapter depends on: widths, depths, vocabulary; compared before an export is loaded."""
    return {key: getattr(config, key) for key in ARCHITECTURE_KEYS}


@dataclass
class AdapterExport:
    config: dict
    state_dict: dict[str, torch.Tensor]

    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def data(self) -> dict | None:
        """The data settings the adapter trained with (`data_settings`); None in an export written before they were
        recorded."""
        return self.config.get("data")


def library_folders() -> set[str]:
    """The subfolders an export may hold: each registered method's `library_folder`."""
    return {cls.library_folder for cls in registry.method_classes() if cls.library_folder}


def is_export_folder(folder: Path) -> bool:
    """Whether `folder` holds an export and nothing else (what `export --overwrite` may replace)."""
    names = {entry.name for entry in folder.iterdir()}
    return CONFIG_FILE in names and names <= EXPORT_FILES | library_folders()


def best_val_score(checkpoint: dict) -> float | None:
    """The best validation score of the run that wrote `checkpoint`, as its ModelCheckpoint decided it (the state of
    the first one with a monitor among the checkpoint's callbacks); None without one."""
    for state in (checkpoint.get("callbacks") or {}).values():
        if isinstance(state, dict) and state.get("monitor") is not None and state.get("best_model_score") is not None:
            return float(state["best_model_score"])
    return None


def validation_of(checkpoint: dict) -> dict[str, float] | None:
    """The validation metrics of the weights `checkpoint` holds (`val/` left out): the run's best validation as
    RunSummary recorded it, when it was at this checkpoint's step (the best checkpoint, or a last.ckpt written at
    that step); None otherwise (later weights were never validated), or for a checkpoint without the record."""
    state = (checkpoint.get("callbacks") or {}).get(RUN_SUMMARY_STATE)
    best = state.get("best") if isinstance(state, dict) else None
    if not isinstance(best, dict) or not best.get("metrics") or best.get("step") is None:
        return None
    if best["step"] != checkpoint.get("global_step"):
        return None
    return {name: float(value) for name, value in best["metrics"].items()}


def data_settings(checkpoint: dict) -> dict | None:
    """The data settings the run that wrote `checkpoint` trained with, from its data module's hyper-parameters
    (what `AdapterBank` tokenizes inputs with, and what `--adapter` runs use): the task and its template, the source
    length (the task's default resolved) and truncation, the target length, the module's max_new_tokens and
    eval_mode, and what drew the splits (dataset, revision, data_seed, validation_size, train_size). None for a
    checkpoint without a data module's hyper-parameters (a fit driven from Python with a data module of its own)."""
    data = checkpoint.get("datamodule_hyper_parameters")
    if not isinstance(data, dict) or "task" not in data:
        return None
    model = checkpoint.get("hyper_parameters") or {}
    try:
        task = get_task(str(data["task"]))
    except UserError:  # a task of the user's own, not registered in this process: nothing known to record
        return None
    return {
        "task": task.name,
        "template": task.template,
        "max_source_length": data.get("max_source_length") or task.source_length,
        "truncation": data.get("truncation") or "end",  # the only mode before the option existed
        "max_target_length": data.get("max_target_length"),
        "max_new_tokens": model.get("max_new_tokens"),
        "eval_mode": model.get("eval_mode"),
        "dataset": task.hub_path,
        "dataset_config": task.hub_config,
        "revision": None if data.get("data_dir") else data.get("revision") or task.dataset.revision,
        "data_dir": data.get("data_dir"),
        "data_seed": data.get("data_seed"),
        "validation_size": data.get("validation_size"),
        "train_size": data.get("train_size"),
    }


def export_checkpoint(
    ckpt_path: str | Path,
    out_dir: str | Path,
    overwrite: bool = False,
    license: str = DEFAULT_LICENSE,
    repo_id: str | None = None,
) -> Path:
    """Write the trained parameters of a checkpoint, the config needed to load them onto the base model, the data
    settings it trained with and a model card (`license`; `repo_id`: the Hub repository the card's examples load
    it from, else the folder).

    Everything is written into a hidden folder beside `out_dir` and renamed into place, so a killed export leaves
    the previous export (or none), never half of one. An existing export is replaced only with `overwrite`."""
    export = checkpoint_export(ckpt_path)
    out = check_output_folder(
        out_dir, "--out", {"--ckpt_path": ckpt_path}, overwrite=overwrite, is_own=is_export_folder, kind="an export"
    )
    return write_export(export, out, license=license, repo_id=repo_id)


def checkpoint_export(ckpt_path: str | Path) -> AdapterExport:
    """The export of a checkpoint `cli.py fit` wrote: its trained parameters and the config that rebuilds them (a
    one-line UserError for a checkpoint of another program or of a method that is not registered)."""
    checkpoint = read_checkpoint(ckpt_path)
    hparams = checkpoint.get("hyper_parameters", {})
    if "method" not in hparams or "base_architecture" not in hparams:
        raise UserError(f"{ckpt_path} was not written by compacter-pl (no method or base architecture in it)")
    if registry.method_class(hparams["method"].get("class_path", "")) is None:
        raise UserError(
            f"checkpoint {ckpt_path} names method {hparams['method'].get('class_path')!r}, which is not a "
            f"registered method ({', '.join(registry.method_class_names())}); nothing could load its export"
        )
    method_from_config(hparams["method"], saved=True)  # its arguments too, as loading the export will check them
    state = {k.removeprefix("model."): v.contiguous() for k, v in checkpoint["state_dict"].items()}
    config = {
        "format_version": FORMAT_VERSION,
        "method": hparams["method"],
        "base_model": hparams["model_name_or_path"],
        "base_architecture": hparams["base_architecture"],
        "task": hparams["task"],
        "metrics": {
            "best_val_score": best_val_score(checkpoint),
            "epoch": checkpoint.get("epoch"),
            "global_step": checkpoint.get("global_step"),
            "validation": validation_of(checkpoint),
        },
        "trainable_parameters": sum(v.numel() for v in state.values()),
    }
    data = data_settings(checkpoint)
    if data is not None:
        config["data"] = data
    return AdapterExport(config, state)


def model_export(
    model: T5ForConditionalGeneration, method: Method, task: str, base_model: str, data: dict | None = None
) -> AdapterExport:
    """The export of `model` (a base `method` was applied to, in memory): the parameters that train and the config
    that rebuilds them (no metrics: it was not evaluated; `data`: the data settings, as `data_settings` gives
    them, if any). `bench` and tests build adapters this way."""
    state = {name: p.detach().contiguous() for name, p in model.named_parameters() if name in trainable_names(model)}
    config = {
        "format_version": FORMAT_VERSION,
        "method": method.config(),
        "base_model": base_model,
        "base_architecture": architecture_of(model.config),
        "task": task,
        "metrics": {"best_val_score": None, "epoch": None, "global_step": None, "validation": None},
        "trainable_parameters": sum(v.numel() for v in state.values()),
    }
    if data is not None:
        config["data"] = data
    return AdapterExport(config, state)


def write_export(export: AdapterExport, out: Path, license: str = DEFAULT_LICENSE, repo_id: str | None = None) -> Path:
    """Write an export into folder `out` (checked by the caller): its two files, the files of the library its
    method wraps (if any) and its model card, through a hidden staging folder renamed into place, so a killed write
    leaves the previous export (or none), never half of one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging, previous = out.with_name(f".{out.name}.partial"), out.with_name(f".{out.name}.previous")
    with staged_directory(staging):  # one a killed export left is removed first
        staging.mkdir()
        save_file(export.state_dict, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
        (staging / CONFIG_FILE).write_text(json.dumps(export.config, indent=2) + "\n")
        method = method_from_config(export.config["method"], saved=True)
        library_usage = None
        if method.library_folder is not None:
            (staging / method.library_folder).mkdir()
            library_usage = method.write_library_files(
                staging / method.library_folder,
                export.state_dict,
                export.config["base_model"],
                export.config["base_architecture"],
            )
        source = repo_id or str(out)
        (staging / CARD_FILE).write_text(model_card(export.config, source, license, library_usage))
        # safetensors writes a private temporary file (0600) and renames it; an export is shared like any file the
        # user writes, so its files get the mode of one (0666 less the umask), as its JSON does
        for path in staging.rglob("*.safetensors"):
            os.chmod(path, 0o666 & ~_umask())
    if out.exists():  # an empty folder, or an export replaced with overwrite: moved aside, then removed
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(out, previous)
    os.replace(staging, out)
    shutil.rmtree(previous, ignore_errors=True)
    return out


def _umask() -> int:
    """The process's umask (reading it means setting it: it is set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def load_export(export_dir: str | Path) -> AdapterExport:
    """The export in a folder: ours, or an adapter in AdapterHub's format (`compacter_pl.adapterhub`)."""
    from compacter_pl import adapterhub  # it builds on this module

    directory = Path(export_dir)
    if adapterhub.is_adapterhub_folder(directory):
        return adapterhub.read_adapterhub(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise UserError(f"{path} is missing; an export directory holds {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{config_path} is not valid JSON ({error}); re-export the checkpoint") from None
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as error:  # a corrupt header or data; a file that cannot be read
        raise UserError(f"cannot read {weights_path} (truncated or corrupt?): {error}; re-export it") from None
    return AdapterExport(config, state)


def export_source(source: str | Path, revision: str | None = None) -> Path:
    """The folder of the export `source` names: a local folder as it is (a Path, or a name of an existing path),
    else a Hugging Face Hub repository (`user/repo`) at `revision` (None: its main branch), whose export files are
    downloaded into the Hub cache or, without a network, found there (`compacter_pl.hub.from_hub`: one request says
    whether the Hub can be reached; HF_HUB_OFFLINE is honoured)."""
    if isinstance(source, Path) or Path(source).exists():
        if revision is not None:
            raise UserError(f"revision {revision!r} is for a Hub repository; {source} is a local folder")
        return Path(source)
    if not is_repo_id(source):
        raise UserError(
            f"export {source!r} is neither an existing folder nor a Hugging Face Hub repository name (user/repo)"
        )
    what = "adapter export" if revision is None else f"adapter export (revision {revision})"
    folder = download_files(
        source,
        revision,
        [CONFIG_FILE, WEIGHTS_FILE],
        what,
        not_found="check the name (and revision), your access to it, or pass an export folder",
    )
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise UserError(
            f"Hub repository {source} holds no compacter-pl export ({CONFIG_FILE} and {WEIGHTS_FILE} at its top)"
        )
    return folder


def read_export(source: str | Path, revision: str | None = None) -> AdapterExport:
    """The export in a folder or a Hub repository (`export_source`)."""
    return load_export(export_source(source, revision))


def run_hyperparameters(export: AdapterExport) -> dict:
    """What a checkpoint of the export's run says of the run, as far as the export records it (its module's and its
    data module's hyper-parameters), so a command runs an export as it runs a checkpoint (`--adapter`)."""
    data = export.data or {}
    model = {
        "model_name_or_path": export.config["base_model"],
        "method": export.config["method"],
        "task": export.task,
        "base_architecture": export.config["base_architecture"],
        **{name: data[name] for name in ("max_new_tokens", "eval_mode") if data.get(name) is not None},
    }
    kept = ("max_source_length", "max_target_length", "truncation", "data_seed", "validation_size")
    datamodule = {"task": export.task, **{name: data[name] for name in kept if data.get(name) is not None}}
    return {"hyper_parameters": model, "datamodule_hyper_parameters": datamodule}


def method_from_config(config: dict, saved: bool = False) -> Method:
    """Rebuild a method from `class_path` and `init_args`; only registered method classes are allowed.
    `saved`: the config was read from an export or checkpoint, whose init_args may predate newer arguments
    (`Method.saved_init_args` completes them)."""
    class_path = config.get("class_path", "")
    method_class = registry.method_class(class_path)
    if method_class is None:
        raise UserError(
            f"unknown method {class_path!r}: an export must name a registered method "
            f"({', '.join(registry.method_class_names())}); for a method of your own, import the module "
            f"that registers it before loading"
        )
    init_args = config.get("init_args") or {}
    arguments = inspect.signature(method_class).parameters
    unknown = [name for name in init_args if name not in arguments]
    if unknown:
        raise UserError(
            f"the export's method {method_class.__name__} has no argument {unknown[0]!r} (its "
            f"arguments: {', '.join(arguments)}); re-export it with this version"
        )
    return method_class(**(method_class.saved_init_args(init_args) if saved else init_args))


def check_architecture(expected: dict, config: T5Config) -> None:
    actual = architecture_of(config)
    for key, value in expected.items():
        if actual.get(key) != value:
            raise UserError(
                f"the adapter was trained on a base model with {key}={value}, but this model has "
                f"{key}={actual.get(key)}; load it onto the base model it was trained on"
            )


def apply_export(model: T5ForConditionalGeneration, export: AdapterExport, before_load=None) -> None:
    """Apply the export's method to a base model and load its parameters (exactly the ones that train).
    `before_load(model)` runs after the method changed the model and before the parameters are copied in."""
    check_architecture(export.config["base_architecture"], model.config)
    method = method_from_config(export.config["method"], saved=True)
    method.check(model.config)
    method.apply(model)
    load_trained(model, export, before_load)


def load_trained(model: T5ForConditionalGeneration, export: AdapterExport, before_load=None) -> None:
    """Copy the export's parameters into `model`, which its method was applied to (`apply_export`, or a
    `TextToTextModule` built with it): exactly the parameters that train, or a one-line UserError."""
    expected = trainable_names(model)
    if set(export.state_dict) != expected:
        missing = sorted(expected - set(export.state_dict))
        unexpected = sorted(set(export.state_dict) - expected)
        raise UserError(
            f"the export does not match its method on this model ({len(missing)} missing, "
            f"{len(unexpected)} unexpected parameters, e.g. {(missing or unexpected)[0]})"
        )
    if before_load is not None:
        before_load(model)
    model.load_state_dict(export.state_dict, strict=False)


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def own_trained_parameters(model: nn.Module, base_ids: set[int]) -> None:
    """Give a `shared_base_copy` private tensors for the base parameters that train in it (e.g. layer norms), so
    loading or changing them never writes into the shared base (`base_ids`: the ids of the base's parameters)."""
    for module in model.modules():
        for name, parameter in list(module._parameters.items()):
            if parameter is not None and parameter.requires_grad and id(parameter) in base_ids:
                setattr(module, name, nn.Parameter(parameter.detach().clone()))


def shared_base_copy(base: ModuleT) -> ModuleT:
    """A copy of the model whose frozen base parameters are the very same tensors: no memory is duplicated,
    and a method applied to the copy leaves the base untouched."""
    memo: dict[int, torch.Tensor] = {id(p): p for p in base.parameters()}
    memo.update({id(b): b for b in base.buffers()})
    return copy.deepcopy(base, memo)
