"""The `export --ckpt_path CKPT --out DIR` command: a checkpoint's trained parameters as a small export."""

from compacter_pl.config import run_command_line
from compacter_pl.errors import file_error
from compacter_pl.export import CONFIG_FILE, WEIGHTS_FILE, export_checkpoint


def export(ckpt_path: str, out: str, overwrite: bool = False) -> None:
    """A checkpoint's trained parameters as a small export (adapter.safetensors and adapter_config.json), which
    `AdapterBank` or `apply_export` load onto the base model.

    Args:
        ckpt_path: A checkpoint written by `cli.py fit`.
        out: The export directory (created if needed; written whole or not at all).
        overwrite: Replace an export already in `out` (otherwise refused).
    """
    try:
        directory = export_checkpoint(ckpt_path, out, overwrite=overwrite)
    except OSError as error:
        raise file_error(error, "--out", writing=True) from error
    size = (directory / WEIGHTS_FILE).stat().st_size
    print(f"exported {ckpt_path} to {directory} ({WEIGHTS_FILE}: {size:,} bytes, {CONFIG_FILE})")


def main(argv: list[str]) -> None:
    run_command_line(export, argv, "export")
