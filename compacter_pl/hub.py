"""Loading T5 and its tokenizer (and an export's files) from a Hub name or a local directory, and uploading an
export to the Hub, with errors a user can act on.

Before a Hub name loads, one request to the Hub's endpoint (once per process) tells whether the Hub can be reached.
If it cannot, the name loads from the Hub cache only, so a machine without a network gets the model or the error at
once: huggingface_hub otherwise retries every file it finds neither online nor in the cache (transformers asks for
several that no model has, e.g. adapter_config.json) five times, 1 + 2 + 4 + 8 + 8 seconds apart. With
HF_HUB_OFFLINE=1 nothing is requested; with a reachable Hub, loading is transformers' own (an export's files:
huggingface_hub's snapshot_download).
"""

import functools
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants
from huggingface_hub.errors import HFValidationError, StrictDataclassError
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError
from transformers import AutoTokenizer, PreTrainedTokenizerBase, T5ForConditionalGeneration

from compacter_pl.errors import UserError, first_line

# What transformers' from_pretrained (a config, a model or a tokenizer) raises on a directory or Hub name it cannot
# load: OSError for missing files, invalid JSON and every Hub failure (huggingface_hub's HTTP errors are OSErrors),
# ValueError for an unrecognised tokenizer or repository name, TypeError or KeyError for JSON of the wrong shape,
# StrictDataclassError for a config value of the wrong type, SafetensorError for truncated or corrupt weights and
# RuntimeError for weights whose shapes do not match the config.
FROM_PRETRAINED_ERRORS = (
    OSError,
    ValueError,
    TypeError,
    LookupError,
    RuntimeError,
    SafetensorError,
    StrictDataclassError,
)


@functools.cache
def hub_connection_error(endpoint: str) -> str | None:
    """None if `endpoint` answers at all (any HTTP status), else why it cannot be reached: one request through
    huggingface_hub's own session (its proxies and certificates), with its metadata timeout (HF_HUB_ETAG_TIMEOUT)."""
    try:
        huggingface_hub.get_session().head(endpoint, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    # Any failure of this one request means unreachable (connection refused, no DNS, a timeout, a proxy or TLS
    # failure, a malformed endpoint), and huggingface_hub's HTTP client, whose exceptions these are, changes between
    # its major versions (httpx in 1.x, httpx2 in 2.x): so every exception of the request is caught.
    except Exception as error:  # noqa: BLE001
        return first_line(error) or type(error).__name__
    return None


def how_to_work_offline(name: str) -> str:
    """The two ways to make a Hub model loadable on a machine without the Hub."""
    folder = repo_folder_name(repo_id=name, repo_type="model")
    return (
        f"to run without the Hub, on a machine with it save the model and its tokenizer into one directory "
        f"(T5ForConditionalGeneration.from_pretrained({name!r}).save_pretrained(DIR), the same with "
        f"AutoTokenizer) and pass --model.model_name_or_path DIR, or copy that machine's Hub cache folder "
        f"{folder} into {constants.HF_HUB_CACHE}"
    )


def _load(load, name: str, what: str):
    """`load(name)` (a from_pretrained), from the Hub cache only when offline or the Hub is unreachable."""
    if Path(name).exists():
        try:
            return load(name)
        except FROM_PRETRAINED_ERRORS as error:
            raise UserError(f"cannot load the {what} from directory {name}: {first_line(error)}") from None
    return from_hub(
        load,
        name,
        what,
        not_found="check the name, or pass a directory saved with save_pretrained: --model.model_name_or_path DIR",
        offline=how_to_work_offline(name),
    )


def from_hub(load, name: str, what: str, not_found: str, offline: str):
    """`load(name, local_files_only=...)` of Hub repository `name`: after one request that says whether the Hub can
    be reached, from the Hub cache only when it cannot or HF_HUB_OFFLINE is set. Failures are one line: `not_found`
    advises on a name the Hub does not know, `offline` on one the cache lacks."""
    is_offline = huggingface_hub.is_offline_mode()
    unreachable = None if is_offline else hub_connection_error(constants.ENDPOINT)
    try:
        return load(name, local_files_only=is_offline or unreachable is not None)
    except FROM_PRETRAINED_ERRORS as error:
        if is_offline:
            why = "HF_HUB_OFFLINE is set and the Hub cache does not hold it"
        elif unreachable is not None:
            why = (
                f"the Hugging Face Hub ({constants.ENDPOINT}) cannot be reached ({unreachable}) and its cache lacks it"
            )
        else:  # the Hub answered: no such model, or no access to it
            raise UserError(
                f"{what} {name!r} is neither a local directory nor a model on the Hugging Face Hub "
                f"({first_line(error)}); {not_found}"
            ) from None
        raise UserError(f"{what} {name!r} is not a local directory, and {why}; {offline}") from None


def is_repo_id(name: str) -> bool:
    """Whether `name` is a Hugging Face Hub repository id (`repo` or `user/repo`)."""
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def download_files(repo_id: str, revision: str | None, files: list[str], what: str, not_found: str) -> Path:
    """The snapshot folder of Hub repository `repo_id` at `revision` (None: its main branch) holding `files` (those
    of them it has), downloaded into the Hub cache or found there (`from_hub`'s rule)."""
    folder = repo_folder_name(repo_id=repo_id, repo_type="model")

    def download(name: str, local_files_only: bool) -> Path:
        return Path(
            huggingface_hub.snapshot_download(
                name, revision=revision, allow_patterns=files, local_files_only=local_files_only
            )
        )

    offline = (
        f"to run without the Hub, download the repository on a machine with it "
        f"(huggingface_hub.snapshot_download({repo_id!r})) and pass its folder, or copy that machine's Hub cache "
        f"folder {folder} into {constants.HF_HUB_CACHE}"
    )
    return from_hub(download, repo_id, what, not_found, offline)


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    return _load(AutoTokenizer.from_pretrained, name, "tokenizer")


def load_t5(name: str) -> T5ForConditionalGeneration:
    return _load(T5ForConditionalGeneration.from_pretrained, name, "model")


def upload_folder(folder: Path, repo_id: str, private: bool, option: str = "--push_to_hub") -> str:
    """Upload `folder` to Hub model repository `repo_id` (created if it does not exist, private if `private`; an
    existing repository keeps its visibility) and return the repository's URL. Any failure is one line naming
    `option`, saying why and that `folder` is kept."""
    kept = f"the export stays in {folder}; once that is fixed, upload it with `hf upload {repo_id} {folder}`"
    if huggingface_hub.is_offline_mode():
        raise UserError(f"{option} {repo_id}: HF_HUB_OFFLINE is set, so nothing was uploaded; {kept}")
    unreachable = hub_connection_error(constants.ENDPOINT)
    if unreachable is not None:
        raise UserError(
            f"{option} {repo_id}: the Hugging Face Hub ({constants.ENDPOINT}) cannot be reached ({unreachable}); {kept}"
        )
    api = huggingface_hub.HfApi()
    try:
        url = api.create_repo(repo_id, private=private or None, exist_ok=True)  # None: the account's default
        api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="Upload a compacter-pl adapter export")
    # As in hub_connection_error: huggingface_hub's errors (no token, HTTP statuses, its HTTP client's own, which
    # change between its major versions) share no base class but Exception.
    except Exception as error:  # noqa: BLE001
        status = getattr(getattr(error, "response", None), "status_code", None)
        login = (
            " (log in with `hf auth login`, or set HF_TOKEN to a token that may write)" if status in (401, 403) else ""
        )
        raise UserError(
            f"{option} {repo_id}: the upload failed: {first_line(error) or type(error).__name__}{login}; {kept}"
        ) from None
    return str(url)
