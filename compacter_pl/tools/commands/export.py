"""The `export --ckpt_path CKPT --out DIR` command: a checkpoint's trained parameters as a small export, with its
model card, optionally pushed to the Hugging Face Hub."""

from typing import Literal

from compacter_pl.adapterhub import export_checkpoint_adapterhub
from compacter_pl.config import run_command_line
from compacter_pl.errors import UserError, file_error
from compacter_pl.export import CARD_FILE, CONFIG_FILE, DEFAULT_LICENSE, WEIGHTS_FILE, export_checkpoint
from compacter_pl.hub import is_repo_id, upload_folder

ExportFormat = Literal["compacter-pl", "adapterhub"]


def export(
    ckpt_path: str,
    out: str,
    overwrite: bool = False,
    format: ExportFormat = "compacter-pl",
    license: str = DEFAULT_LICENSE,
    push_to_hub: str | None = None,
    private: bool = False,
) -> None:
    """A checkpoint's trained parameters as a small export (adapter.safetensors, adapter_config.json with the data
    settings training used, a model card README.md, and for a PEFT method PEFT's own files in peft/), which
    `AdapterBank`, `apply_export` or `cli.py predict --adapter` load onto the base model.

    Args:
        ckpt_path: A checkpoint written by `cli.py fit`.
        out: The export directory (created if needed; written whole or not at all).
        overwrite: Replace an export already in `out` (otherwise refused).
        format: compacter-pl (ours, any method), or adapterhub: the folder AdapterHub's `adapters` library loads
            with `model.load_adapter(DIR, set_active=True)` (Adapter, Pfeiffer-Adapter, PHM-Adapter, Compacter,
            Compacter++; the notes it prints say what the format leaves out, e.g. trained layer norms).
        license: The license the model card declares (a Hub license id; the compacter-pl format's card).
        push_to_hub: Also upload the export to this Hugging Face Hub repository (user/repo; created if needed),
            after it is written to `out`, which stays whatever the upload does. Needs a token that may write
            (`hf auth login`, or HF_TOKEN).
        private: Create the repository private (an existing one keeps its visibility).
    """
    if push_to_hub is not None and not is_repo_id(push_to_hub):
        raise UserError(f"--push_to_hub {push_to_hub!r} is not a Hugging Face Hub repository name (user/repo)")
    if private and push_to_hub is None:
        raise UserError("--private is for the repository --push_to_hub creates; pass --push_to_hub user/repo too")
    try:
        if format == "adapterhub":
            directory, notes = export_checkpoint_adapterhub(ckpt_path, out, overwrite=overwrite)
        else:
            directory = export_checkpoint(ckpt_path, out, overwrite=overwrite, license=license, repo_id=push_to_hub)
            notes = []
    except OSError as error:
        raise file_error(error, "--out", writing=True) from error
    if format == "adapterhub":
        files = ", ".join(sorted(path.name for path in directory.iterdir()))
        print(f"exported {ckpt_path} to {directory} in AdapterHub's format ({files})")
    else:
        size = (directory / WEIGHTS_FILE).stat().st_size
        print(f"exported {ckpt_path} to {directory} ({WEIGHTS_FILE}: {size:,} bytes, {CONFIG_FILE}, {CARD_FILE})")
    for note in notes:
        print(note)
    if push_to_hub is not None:
        url = upload_folder(directory, push_to_hub, private)
        print(f"pushed {directory} to {url}")


def main(argv: list[str]) -> None:
    run_command_line(export, argv, "export")
