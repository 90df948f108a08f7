"""Loading T5 and its tokenizer from a Hub name or a local directory, with errors a user can act on."""

from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase, T5ForConditionalGeneration

from compacter_pl.errors import UserError


def _not_found(name: str, what: str, error: Exception) -> UserError:
    first_line = (str(error).splitlines() or [type(error).__name__])[0]
    if Path(name).exists():
        return UserError(f"cannot load the {what} from directory {name}: {first_line}")
    return UserError(
        f"model {name!r} is neither a local directory nor reachable on the Hugging Face Hub "
        f"({first_line}); pass a local model directory, e.g. model.model_name_or_path=demo/tiny-t5"
    )


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as error:  # OSError offline, ValueError for unrecognised files, ...
        raise _not_found(name, "tokenizer", error) from None


def load_t5(name: str) -> T5ForConditionalGeneration:
    try:
        return T5ForConditionalGeneration.from_pretrained(name)
    except Exception as error:
        raise _not_found(name, "model", error) from None
