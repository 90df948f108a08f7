"""Every fine-tuning method, one file each; a YAML picks one with `class_path`.

Adding a method is one file here: a concrete `Method` subclass and its `register_method(...)` call next to it
(`registry.py`). Importing this package imports every module in it, so the registration runs and the class is
also known as `compacter_pl.methods.<ClassName>`. A method of another package registers with the same call.
"""

import importlib
import pkgutil

from compacter_pl.methods import registry
from compacter_pl.methods.base import Method, trainable_names, trainable_parameters
from compacter_pl.methods.registry import register_method

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

_OWN_METHODS = {cls.__name__: cls for cls in registry.method_classes() if cls.__module__.startswith(f"{__name__}.")}
globals().update(_OWN_METHODS)

__all__ = ["Method", "register_method", "trainable_names", "trainable_parameters", *sorted(_OWN_METHODS)]
