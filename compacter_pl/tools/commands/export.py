"""The `export --ckpt_path CKPT --out DIR` command: a checkpoint's trained parameters as a small export."""

from typing import Literal

from compacter_pl.adapterhub import export_checkpoint_adapterhub
from compacter_pl.config import run_command_line
from compacter_pl.errors import file_error
from compacter_pl.export import CONFIG_FILE, WEIGHTS_FILE, export_checkpoint

ExportFormat = Literal["compacter-pl", "adapterhub"]


def export(ckpt_path: str, out: str, overwrite: bool = False, format: ExportFormat = "compacter-pl") -> None:
    """A checkpoint's trained parameters as a small export (adapter.safetensors and adapter_config.json), which
    `AdapterBank` or `apply_export` load onto the base model.

    Args:
        ckpt_path: A checkpoint written by `cli.py fit`.
        out: The export directory (created if needed; written whole or not at all).
        overwrite: Replace an export already in `out` (otherwise refused).
        format: compacter-pl (ours, any method), or adapterhub: the folder AdapterHub's `adapters` library loads
            with `model.load_adapter(DIR, set_active=True)` (Adapter, Pfeiffer-Adapter, PHM-Adapter, Compacter,
            Compacter++; the notes it prints say what the format leaves out, e.g. trained layer norms).
    """
    try:
        if format == "adapterhub":
            directory, notes = export_checkpoint_adapterhub(ckpt_path, out, overwrite=overwrite)
        else:
            directory, notes = export_checkpoint(ckpt_path, out, overwrite=overwrite), []
    except OSError as error:
        raise file_error(error, "--out", writing=True) from error
    if format == "adapterhub":
        files = ", ".join(sorted(path.name for path in directory.iterdir()))
        print(f"exported {ckpt_path} to {directory} in AdapterHub's format ({files})")
    else:
        size = (directory / WEIGHTS_FILE).stat().st_size
        print(f"exported {ckpt_path} to {directory} ({WEIGHTS_FILE}: {size:,} bytes, {CONFIG_FILE})")
    for note in notes:
        print(note)


def main(argv: list[str]) -> None:
    run_command_line(export, argv, "export")
