"""The adapters `serve` answers with, found and checked before anything loads: every export under `--exports DIR`
(named by its folder) and every `--adapters NAME=PATH`. Each export's config is read here (its task, its method,
its base model), so a mistake is one line naming the option, and `GET /adapters` lists them without the model."""

import json
from dataclasses import dataclass
from pathlib import Path

from compacter_pl.errors import UserError
from compacter_pl.export import CONFIG_FILE, WEIGHTS_FILE, method_from_config
from compacter_pl.methods import registry
from compacter_pl.tasks import get_task


@dataclass(frozen=True)
class ServedAdapter:
    """One adapter the server answers with: its name in requests, its export folder, the option that named it (for
    messages) and its export's config."""

    name: str
    folder: str
    option: str
    config: dict

    @property
    def task(self) -> str:
        return self.config["task"]

    @property
    def method(self) -> str:
        """Its method's registry key (`compacter`, `lora`), or its class name for an unregistered configuration."""
        class_path = self.config["method"].get("class_path", "")
        cls = registry.method_class(class_path)
        entry = registry.entry_of_config(cls, self.config["method"].get("init_args")) if cls else None
        return entry.key if entry else class_path.rpartition(".")[2]

    def listing(self) -> dict:
        """What `GET /adapters` says of it: its task, method, and the predictions it can give (None: free text)."""
        task = get_task(self.task)
        labels = None if task.targets is None else [task.prediction(target) for target in task.targets]
        return {"name": self.name, "task": self.task, "method": self.method, "labels": labels}


def read_adapter(name: str, folder: Path, option: str) -> ServedAdapter:
    """The export in `folder`, its config checked as loading it would check it (a registered task and method)."""
    where = f"{option}: {folder}"
    if not folder.is_dir():
        raise UserError(f"{where} is not a folder; an export is a folder with {CONFIG_FILE} and {WEIGHTS_FILE}")
    for file in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / file).is_file():
            raise UserError(f"{where} lacks {file}; an export holds {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{where}: cannot read {CONFIG_FILE} ({error}); re-export it") from None
    if not isinstance(config, dict) or not isinstance(config.get("method"), dict) or "task" not in config:
        raise UserError(f"{where}: {CONFIG_FILE} is not an export's config (no method or task); re-export it")
    try:
        get_task(config["task"])
        method_from_config(config["method"], saved=True)
    except UserError as error:
        raise UserError(f"{where}: {error}") from None
    return ServedAdapter(name, str(folder), option, config)


def find_adapters(exports: str | None, adapters: list[str] | None) -> list[ServedAdapter]:
    """The adapters of `--exports DIR` (each subfolder with an export config, by folder name; hidden folders, such
    as the staging folder of an export being written, are skipped) and of `--adapters NAME=PATH`, in that order."""
    found: list[ServedAdapter] = []
    if exports is not None:
        directory = Path(exports)
        if not directory.is_dir():
            raise UserError(f"--exports {exports} is not a folder; pass the folder that holds the export folders")
        if (directory / CONFIG_FILE).exists():
            raise UserError(
                f"--exports {exports} is an export itself; pass the folder that holds the exports, or serve this "
                f"one with --adapters NAME={exports}"
            )
        folders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
        found = [read_adapter(p.name, p, "--exports") for p in folders if (p / CONFIG_FILE).exists()]
        if not found:
            raise UserError(
                f"--exports {exports} holds no export (a subfolder with {CONFIG_FILE} and {WEIGHTS_FILE}, as "
                f"`export --out` writes)"
            )
    for item in adapters or []:
        name, equals, path = item.partition("=")
        if not equals or not name.strip() or not path:
            raise UserError(f"--adapters {item!r} is not NAME=PATH (the adapter's name in requests, its export)")
        found.append(read_adapter(name, Path(path), "--adapters"))
    if not found:
        raise UserError("no adapters to serve: pass --exports DIR (its export subfolders) and/or --adapters NAME=PATH")
    seen: dict[str, ServedAdapter] = {}
    for adapter in found:
        if adapter.name in seen:
            first = seen[adapter.name]
            raise UserError(
                f"adapter name {adapter.name!r} is given twice ({first.option} {first.folder} and {adapter.option} "
                f"{adapter.folder}); name one otherwise with --adapters NAME=PATH"
            )
        seen[adapter.name] = adapter
    return found


def base_model_of(adapters: list[ServedAdapter]) -> str:
    """The base model the exports name (`base_model` in their configs), when they all name the same one."""
    models = {adapter.name: adapter.config.get("base_model") for adapter in adapters}
    distinct = set(models.values())
    if len(distinct) != 1 or None in distinct:
        named = "; ".join(f"{name}: {model}" for name, model in models.items())
        raise UserError(f"the exports name different base models ({named}): pass the one to load with --model")
    return str(distinct.pop())
