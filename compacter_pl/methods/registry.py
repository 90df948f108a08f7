"""The one registry of fine-tuning methods. Each method registers itself next to its class:

    register_method("compacter", Compacter, name="Compacter", t5_base_params=161_728)

and everything that lists, builds, reports or loads methods reads this mapping: the parameter report and bench's
rows (through `compacter_pl.tools.methods`), sweeps and reports (a method is its key there), exports and the
adapter bank (`export.py`), the tests. A method of the user's own package registers with the same call and is then
trained, exported and loaded like any. What the paper says of a method (its rows of every table: Table 1's order
and trained share, Table 4's learning rate, Table 3's settings) is not registered: `compacter_pl.tools.paper` reads
it from one file, by the method's key.

A key names one configuration of a class (`prompt_random` and `prompt_vocab` are both `PromptTuning`, with their
own `init_args`); a class may have several keys. Lookups never import anything: a class is known once the module
that registers it is imported (`compacter_pl.methods` imports all of its own).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from compacter_pl.errors import UserError, did_you_mean
from compacter_pl.methods.base import Method, class_path_of

PACKAGE = "compacter_pl.methods"  # its classes are also known by their short names (compacter_pl.methods.Compacter)


@dataclass(frozen=True, eq=False)
class RegisteredMethod:
    """One registered method: a class and the arguments that make it this method, with what is known of it.

    key: the method's one identifier: the config suffix (configs/rte_<key>.yaml), a sweep file's and results.jsonl's
        name of it, the `params --methods` and bench choice, the method column of TensorBoard's HParams row.
    name: its one display name, as tables for people show it (the paper's Table 1 name for its methods).
    init_args: the arguments this key gives the class (e.g. prompt_vocab: init vocab); the rest are defaults.
    t5_base_params: trainable parameters on T5-base under the paper's settings (they give Table 1's
        percentages), None when unknown.
    tolerance: how far the count may be from t5_base_params (BitFit's 0.126% in Table 1 is about 280,900).
    bench_floor: the floor bench measures every method against (only the layer norms train); not a method the
        parameter report lists.
    """

    key: str
    cls: type[Method]
    name: str
    init_args: Mapping = field(default_factory=dict)
    t5_base_params: int | None = None
    tolerance: int = 0
    bench_floor: bool = False

    @property
    def class_path(self) -> str:
        return class_path_of(self.cls)

    def build(self, **overrides) -> Method:
        """The method with this key's arguments (and `overrides`), defaults elsewhere."""
        return self.cls(**{**copy.deepcopy(dict(self.init_args)), **overrides})


_METHODS: dict[str, RegisteredMethod] = {}  # by key, in registration order


def register_method(
    key: str,
    cls: type[Method],
    *,
    name: str | None = None,
    init_args: Mapping | None = None,
    t5_base_params: int | None = None,
    tolerance: int = 0,
    bench_floor: bool = False,
) -> RegisteredMethod:
    """Register `cls` (a concrete `Method` subclass) under `key`; `name` defaults to the class name. Mistakes in
    the call (a taken key, an abstract class, an argument the class does not take) raise at import."""
    if not isinstance(key, str) or not key or any(c.isspace() for c in key):
        raise ValueError(f"a method key must be a non-empty word, got {key!r}")
    if key in _METHODS:
        raise ValueError(f"method key {key!r} is already registered for {_METHODS[key].class_path}; choose another")
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise TypeError(f"{cls!r} is not a subclass of compacter_pl.methods.Method")
    if inspect.isabstract(cls):
        raise TypeError(
            f"{class_path_of(cls)} is abstract (it leaves {', '.join(sorted(cls.__abstractmethods__))} "
            f"to its subclasses): register a concrete subclass"
        )
    init_args = dict(init_args or {})
    arguments = inspect.signature(cls).parameters
    unknown = [k for k in init_args if k not in arguments]
    if unknown:
        raise TypeError(f"{cls.__name__} has no argument {unknown[0]!r} (its arguments: {', '.join(arguments)})")
    entry = RegisteredMethod(
        key,
        cls,
        name or cls.__name__,
        MappingProxyType(init_args),
        t5_base_params,
        tolerance,
        bench_floor,
    )
    _METHODS[key] = entry
    return entry


def unregister_method(key: str) -> None:
    """Forget `key` (e.g. a test's own method, or to register another class under a built-in key)."""
    _METHODS.pop(key, None)


def registered_methods() -> tuple[RegisteredMethod, ...]:
    """Every registered method, in registration order (`compacter_pl.tools.methods` lists the paper's first, in
    the order of its Table 1)."""
    return tuple(_METHODS.values())


def method_entry(key: str) -> RegisteredMethod:
    """The method registered under `key` (a one-line UserError naming the keys for any other)."""
    if key in _METHODS:
        return _METHODS[key]
    raise UserError(f"unknown method key {key!r}{did_you_mean(key, _METHODS)}; registered: {', '.join(_METHODS)}")


def entries_of(cls: type) -> tuple[RegisteredMethod, ...]:
    """The keys `cls` is registered under (empty when it is not a registered method)."""
    return tuple(e for e in _METHODS.values() if e.cls is cls)


def complete_init_args(cls: type, init_args: Mapping | None) -> dict:
    """Every argument of a method class: its signature's defaults (inherited ones included), overridden by
    `init_args` (which a sweep's record or a YAML config gives only in part)."""
    defaults = {name: p.default for name, p in inspect.signature(cls).parameters.items() if p.default is not p.empty}
    return {**defaults, **dict(init_args or {})}


def entry_of_config(cls: type, init_args: Mapping | None) -> RegisteredMethod | None:
    """The registered method a class and its init_args are (a sweep's record, a checkpoint's config): among the
    keys of `cls`, the one whose own init_args the run's complete arguments (defaults filled in) all have, the
    most specific first (`PromptTuning` with init random is `prompt_random`); None for an unregistered class."""
    arguments = complete_init_args(cls, init_args)
    candidates = [e for e in entries_of(cls) if all(arguments.get(k) == v for k, v in e.init_args.items())]
    return max(candidates, key=lambda e: len(e.init_args), default=None)


def method_classes() -> tuple[type[Method], ...]:
    """Every registered class once, in `registered_methods()` order."""
    return tuple(dict.fromkeys(e.cls for e in registered_methods()))


def method_class(class_path: str) -> type[Method] | None:
    """The registered class a dotted path names, or None. Nothing is imported: the path is the class's own
    (`compacter_pl.methods.compacter.Compacter`) or one through a module already imported that holds it
    (`compacter_pl.methods.Compacter`). So a class path read from a file never runs code."""
    if not isinstance(class_path, str):
        return None
    classes = method_classes()
    for cls in classes:
        if class_path_of(cls) == class_path:
            return cls
    module_name, _, attribute = class_path.rpartition(".")
    candidate = getattr(sys.modules.get(module_name), attribute, None) if module_name else None
    return candidate if any(candidate is cls for cls in classes) else None


def is_method_class_path(class_path: str) -> bool:
    """Whether a dotted path names a registered method class (see `method_class`)."""
    return method_class(class_path) is not None


def method_class_names() -> list[str]:
    """How messages name the registered classes: by short name for those of compacter_pl.methods, by dotted path
    for the others (a user's own), sorted."""
    package = sys.modules.get(PACKAGE)
    return sorted(
        cls.__name__ if getattr(package, cls.__name__, None) is cls else class_path_of(cls) for cls in method_classes()
    )


def resolve_method_class(name_or_path: str) -> type[Method]:
    """The registered class named by a short name (a class of compacter_pl.methods, or any registered class whose
    name is unique) or by a dotted class path, whose module is imported first (for a user's own config: that
    import registers the user's methods). Anything else is a one-line UserError listing the registered classes."""
    cls = None
    if isinstance(name_or_path, str) and name_or_path:
        if "." in name_or_path:
            module_name = name_or_path.rpartition(".")[0]
            try:
                importlib.import_module(module_name)
            except ImportError:
                pass
            cls = method_class(name_or_path)
        else:
            named = [c for c in method_classes() if c.__name__ == name_or_path]
            cls = method_class(f"{PACKAGE}.{name_or_path}") or (named[0] if len(named) == 1 else None)
    if cls is None:
        names = method_class_names()
        short = str(name_or_path).rpartition(".")[2]
        raise UserError(
            f"unknown method {name_or_path!r}{did_you_mean(short, names)} (known methods: {', '.join(names)})"
        )
    return cls
