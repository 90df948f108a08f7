"""Adapter exports: the parameters that train, as safetensors, plus a JSON that says how to rebuild them.

An export is a directory with `adapter.safetensors` and `adapter_config.json` (method class and arguments,
base model and its architecture, task, metrics at export time). Loading never runs code from the files:
safetensors for the weights, `weights_only` for Lightning checkpoints, and the method class must be a registered
one (`compacter_pl.methods.registry`; a user's own method: import the module that registers it first). The class
path is looked up, never imported.
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
from compacter_pl.methods import Method, registry, trainable_names

WEIGHTS_FILE = "adapter.safetensors"
CONFIG_FILE = "adapter_config.json"
EXPORT_FILES = {WEIGHTS_FILE, CONFIG_FILE}  # everything an export folder holds
FORMAT_VERSION = 1
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


def is_export_folder(folder: Path) -> bool:
    """Whether `folder` holds an export and nothing else (what `export --overwrite` may replace)."""
    names = {entry.name for entry in folder.iterdir()}
    return CONFIG_FILE in names and names <= EXPORT_FILES


def best_val_score(checkpoint: dict) -> float | None:
    """The best validation score of the run that wrote `checkpoint`, as its ModelCheckpoint decided it (the state of
    the first one with a monitor among the checkpoint's callbacks); None without one."""
    for state in (checkpoint.get("callbacks") or {}).values():
        if isinstance(state, dict) and state.get("monitor") is not None and state.get("best_model_score") is not None:
            return float(state["best_model_score"])
    return None


def export_checkpoint(ckpt_path: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write the trained parameters of a checkpoint and the config needed to load them onto the base model.

    Both files are written into a hidden folder beside `out_dir` and renamed into place, so a killed export leaves
    the previous export (or none), never half of one. An existing export is replaced only with `overwrite`."""
    export = checkpoint_export(ckpt_path)
    out = check_output_folder(
        out_dir, "--out", {"--ckpt_path": ckpt_path}, overwrite=overwrite, is_own=is_export_folder, kind="an export"
    )
    return write_export(export, out)


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
        },
        "trainable_parameters": sum(v.numel() for v in state.values()),
    }
    return AdapterExport(config, state)


def model_export(model: T5ForConditionalGeneration, method: Method, task: str, base_model: str) -> AdapterExport:
    """The export of `model` (a base `method` was applied to, in memory): the parameters that train and the config
    that rebuilds them (no metrics: it was not evaluated). `bench` and tests build adapters this way."""
    state = {name: p.detach().contiguous() for name, p in model.named_parameters() if name in trainable_names(model)}
    config = {
        "format_version": FORMAT_VERSION,
        "method": method.config(),
        "base_model": base_model,
        "base_architecture": architecture_of(model.config),
        "task": task,
        "metrics": {"best_val_score": None, "epoch": None, "global_step": None},
        "trainable_parameters": sum(v.numel() for v in state.values()),
    }
    return AdapterExport(config, state)


def write_export(export: AdapterExport, out: Path) -> Path:
    """Write an export's two files into folder `out` (checked by the caller) through a hidden staging folder
    renamed into place, so a killed write leaves the previous export (or none), never half of one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging, previous = out.with_name(f".{out.name}.partial"), out.with_name(f".{out.name}.previous")
    with staged_directory(staging):  # one a killed export left is removed first
        staging.mkdir()
        save_file(export.state_dict, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
        # safetensors writes a private temporary file (0600) and renames it; an export is shared like any file the
        # user writes, so it gets the mode of one (0666 less the umask), as its JSON does
        os.chmod(staging / WEIGHTS_FILE, 0o666 & ~_umask())
        (staging / CONFIG_FILE).write_text(json.dumps(export.config, indent=2) + "\n")
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


def shared_base_copy(base: ModuleT) -> ModuleT:
    """A copy of the model whose frozen base parameters are the very same tensors: no memory is duplicated,
    and a method applied to the copy leaves the base untouched."""
    memo: dict[int, torch.Tensor] = {id(p): p for p in base.parameters()}
    memo.update({id(b): b for b in base.buffers()})
    return copy.deepcopy(base, memo)
