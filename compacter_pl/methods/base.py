"""The method protocol: a method changes the model (adds modules, hooks) and marks what trains.

Everything else reads `requires_grad`: the optimizer, the checkpoint (it saves exactly the parameters that
train), the export and the parameter report. Nothing outside a method's own file knows which method runs.
"""

import abc
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from compacter_pl.errors import UserError
from compacter_pl.layers.rows import NotMixable, SlotParts

MAX_SEED = 2**32 - 1  # seed_everything's range


def option(argument: str) -> str:
    """The command-line option of a method's argument, as `check`'s messages name what to change."""
    return f"--model.method.init_args.{argument}"


def resolve_seed(seed: int | None) -> int:
    """A method's own seed: `seed` if given, else the run's. The run's is `torch.initial_seed()`, which
    `seed_everything` sets (LightningCLI calls it before it builds the model; a sweep sets it per run), folded into
    [0, 2^32). A method stores the result, so its `config()` (checkpoints, exports) names the seed it used."""
    if seed is None:
        return torch.initial_seed() % (MAX_SEED + 1)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UserError(
            f"seed={seed!r} must be an integer in [0, {MAX_SEED}], or null for the run's seed (seed_everything)"
        )
    return int(seed)


_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def with_inherited_arguments(init: Callable, parent_init: Callable) -> inspect.Signature:
    """The signature of `init` with its `**kwargs` replaced by the named arguments of `parent_init` that it does not
    name itself (keyword-only, as `**kwargs` takes them); `init` unchanged when it takes no `**kwargs`."""
    signature = inspect.signature(init, eval_str=True)
    parameters = list(signature.parameters.values())
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return signature
    own = [p for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD]
    named = {p.name for p in own}
    inherited = list(inspect.signature(parent_init, eval_str=True).parameters.values())[1:]  # without self
    return signature.replace(
        parameters=own
        + [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inherited
            if p.kind in _NAMED and p.name not in named
        ]
    )


class Method(abc.ABC):
    """Base class of every fine-tuning method; abstract, so the CLI never offers it as one.

    A subclass stores each `__init__` argument under its own name. Arguments it shares with its parent class it
    does not repeat: its `__init__` takes `**kwargs` and passes them on with `super().__init__(**kwargs)`, and
    its signature then lists the parent's arguments too (they are documented once, in the parent's docstring).
    `inspect.signature`, `config()` and the CLI (jsonargparse reads the parents' docstrings) all see every argument.
    """

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        init = vars(cls).get("__init__")
        if init is None:
            return
        # only an __init__ that passes **kwargs on: any other keeps its own signature, annotations unevaluated
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(init).parameters.values()):
            init.__signature__ = with_inherited_arguments(init, super(cls, cls).__init__)

    def check(self, config: T5Config, max_source_length: int | None = None) -> None:  # noqa: B027 (optional hook)
        """Raise a UserError for hyper-parameters that cannot work with this model (before it is built). Optional:
        by default every configuration is accepted."""

    @abc.abstractmethod
    def apply(self, model: T5ForConditionalGeneration) -> None:
        """Change the model in place and set `requires_grad` on exactly the parameters that train."""

    unmixable_reason = "it declares no mixed form (Method.mix)"  # why a method that does not override mix cannot

    def mix(self, model: T5ForConditionalGeneration, parts: SlotParts) -> None:
        """Declare to `parts` what this method changed in `model` (the base with this method applied and its
        trained numbers loaded), so rows of this adapter can share a batch with other adapters' rows
        (`compacter_pl.mixing`). Every trained parameter must be covered. Optional: by default a method is not
        mixable, and its rows run as a batch of their own, for `unmixable_reason`."""
        raise NotMixable(self.unmixable_reason)

    # The subfolder of an export where `write_library_files` writes the layout of the library the method wraps
    # (None: the method writes none). Every registered method's folder is one an export folder may hold.
    library_folder: ClassVar[str | None] = None

    def write_library_files(
        self, folder: Path, state_dict: dict[str, torch.Tensor], base_model: str, base_architecture: dict
    ) -> str:
        """Write the trained parameters (`state_dict`, named as in the model this method was applied to) in the
        layout of the library the method wraps into `folder` (created, empty), so that library loads them onto the
        base model by itself; return the Python lines that load them, `{source}` standing for the export's folder
        or Hub repository and `{subfolder}` for `library_folder`. Only called when `library_folder` is set."""
        raise NotImplementedError(f"{type(self).__name__} sets library_folder but writes no library files")

    @classmethod
    def saved_init_args(cls, init_args: dict) -> dict:
        """The init_args of a checkpoint's or export's method config completed with the values that arguments
        added since meant before they existed (a saved config names only the arguments of its time). Default: as
        saved. A method whose behaviour changed behind a new argument returns the old value for it here."""
        return dict(init_args)

    def init_args(self) -> dict:
        parameters = inspect.signature(type(self).__init__).parameters.values()
        return {p.name: getattr(self, p.name) for p in parameters if p.name != "self" and p.kind in _NAMED}

    def config(self) -> dict:
        """`class_path` and `init_args`, as in the YAML, so a checkpoint or export says how it was made."""
        return {"class_path": class_path_of(type(self)), "init_args": self.init_args()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.init_args().items())
        return f"{type(self).__name__}({args})"


def class_path_of(cls: type) -> str:
    """The dotted path a method's config, checkpoint and export name its class by."""
    return f"{cls.__module__}.{cls.__qualname__}"


def freeze(model: nn.Module) -> None:
    for parameter in model.parameters():
        parameter.requires_grad_(False)


def trainable_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    return ((name, p) for name, p in model.named_parameters() if p.requires_grad)


# Segments that wrappers of a module add to its parameters' names (FSDP's units, activation checkpointing,
# torch.compile) and that a full state dict, a checkpoint and an export never hold.
WRAPPER_SEGMENTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def trainable_names(model: nn.Module) -> set[str]:
    """The names of the parameters that train, as a state dict names them (wrappers' segments left out), so the
    same names select what a checkpoint saves whether or not FSDP or compilation wrapped the model."""
    names = set()
    for name, _ in trainable_parameters(model):
        for segment in WRAPPER_SEGMENTS:
            name = name.replace(segment, "")
        names.add(name)
    return names
