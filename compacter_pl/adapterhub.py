"""AdapterHub's adapter format (the `adapters` library), both ways, for T5's bottleneck adapters.

An AdapterHub adapter is a folder: `adapter_config.json` (the adapter's `BnConfig` under "config", the model type,
the adapter's name) and its weights, `pytorch_adapter.bin` (a torch state dict; `model.load_adapter(folder)` reads
it) or `adapter.safetensors` (`load_adapter(folder, use_safetensors=True)`), named as in the library's
`T5AdapterModel`: `transformer.encoder.block.0.layer.0.adapters.NAME.adapter_down.0.weight`.

Five of our methods have a form in it, those whose class defines `AdapterMethod.adapterhub_arguments`: Adapter
(Houlsby), Pfeiffer-Adapter, PHM-Adapter, Compacter and Compacter++. What maps, checked against adapters 1.3.0
(`tools/adapterhub_fixtures.py` and `tests/fixtures/adapterhub`):
- where: `mh_adapter` is an adapter after self-attention, `output_adapter` one after the feed-forward. With
  `original_ln_before: false` AdapterHub's adapter reads the sublayer's output y and T5 adds the residual after it,
  `h + adapter(y)`, as ours (true would feed it y + h);
- the bottleneck is `int(hidden_size // reduction_factor)`; `non_linearity` is a transformers activation name;
- the projections: each method's `adapterhub_fields` (`phm_layer`, `phm_dim`, `phm_rank`, `shared_phm_rule`,
  `factorized_phm_W`) and parameter names (`adapterhub_names`: weight, bias; PHM A -> phm_rule, B -> W, bias -> b;
  LPHM s -> W_left, t -> W_right); Compacter's shared A is `shared_parameters.NAME.phm_rule`, which `adapters` saves
  only from its T5AdapterModel (a T5ForConditionalGeneration's save leaves it out), and restores from a file in
  T5AdapterModel's names into either model.
What does not: T5's layer norms (the adapter file has no slot for them: an export of a run that trained them says
what leaving them out costs, `layer_norm_note`), an output layer, and the options of AdapterHub's that ours lack
(`UNSUPPORTED`): one-line errors.
"""

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from transformers import T5Config, T5ForConditionalGeneration
from transformers.activations import ACT2FN

from compacter_pl.errors import UserError, first_line
from compacter_pl.export import (
    CONFIG_FILE,
    FORMAT_VERSION,
    AdapterExport,
    apply_export,
    checkpoint_export,
    method_from_config,
)
from compacter_pl.files import check_output_folder, write_folder
from compacter_pl.methods import registry, trainable_names
from compacter_pl.methods.adapters import SUBLAYERS, AdapterMethod

BIN_FILE = "pytorch_adapter.bin"  # what `load_adapter(folder)` reads
SAFETENSORS_FILE = "adapter.safetensors"  # what `load_adapter(folder, use_safetensors=True)` reads first
ADAPTERHUB_FILES = {CONFIG_FILE, BIN_FILE, SAFETENSORS_FILE}
SCHEMA_VERSION = "adapters.1.3.0"  # the release whose schema this module writes and was checked against
MODEL_CLASS = "T5AdapterModel"  # the layout written: the only one in which `adapters` saves shared_parameters
PREFIX = "transformer."  # T5AdapterModel's name of the T5 model; a T5ForConditionalGeneration's file has none
# adapters' renames of activations, applied to a config without a "version" (adapter-transformers 1.x wrote it so)
LEGACY_ACTIVATIONS = {"gelu": "gelu_new", "gelu_orig": "gelu"}

# BnConfig's fields and defaults in adapters 1.3.0 (mh_adapter, output_adapter, reduction_factor and non_linearity
# have none): a config read is completed with them, one written names them all, as the library's own save does.
BN_DEFAULTS: dict = {
    "original_ln_before": False,
    "original_ln_after": True,
    "ln_before": False,
    "ln_after": False,
    "init_weights": "bert",
    "init_weights_seed": None,
    "is_parallel": False,
    "scaling": 1.0,
    "use_gating": False,
    "residual_before_ln": True,
    "adapter_residual_before_ln": False,
    "inv_adapter": None,
    "inv_adapter_reduction_factor": None,
    "cross_adapter": False,
    "leave_out": [],
    "dropout": 0.0,
    "phm_layer": False,
    "phm_dim": 4,
    "factorized_phm_W": True,
    "shared_W_phm": False,
    "shared_phm_rule": True,
    "factorized_phm_rule": False,
    "phm_c_init": "normal",
    "phm_init_range": 0.0001,
    "learn_phm": True,
    "hypercomplex_nonlinearity": "glorot-uniform",
    "phm_rank": 1,
    "phm_bias": True,
    "stochastic_depth": 0.0,
}
REQUIRED_FIELDS = ("mh_adapter", "output_adapter", "reduction_factor", "non_linearity")
# The fields read but not mapped: what only changes training (init_weights, init_weights_seed, dropout,
# stochastic_depth, phm_c_init, phm_init_range, learn_phm; hypercomplex_nonlinearity becomes a PHM method's init where
# it is one of ours), and what only an option refused below uses (inv_adapter_reduction_factor;
# adapter_residual_before_ln, which changes nothing without ln_after). adapter-transformers 1.x spelled inv_adapter
# as invertible_adapter.
LEGACY_FIELDS = {"invertible_adapter"}
# AdapterHub's options our adapters have no counterpart of: field -> (the values ours equal, what another value is).
UNSUPPORTED: dict[str, tuple[tuple, str]] = {
    "original_ln_before": ((False,), "an adapter that reads the sublayer's output plus the residual"),
    "original_ln_after": ((True,), "no residual around the sublayer"),
    "residual_before_ln": ((True, False), "a residual taken after the residual sum"),
    "ln_before": ((False,), "a layer norm of the adapter's own"),
    "ln_after": ((False,), "a layer norm of the adapter's own"),
    "is_parallel": ((False,), "a parallel adapter"),
    "scaling": ((1.0,), "a scaled adapter output"),
    "use_gating": ((False,), "a gated adapter"),
    "inv_adapter": ((None,), "invertible adapters"),
    "invertible_adapter": ((None, {}), "invertible adapters"),
    "cross_adapter": ((False,), "adapters after cross-attention"),
    "leave_out": (([], None), "layers left without adapters"),
    "shared_W_phm": ((False,), "PHM weights shared by all layers"),
    "factorized_phm_rule": ((False,), "a factored PHM rule"),
    "phm_bias": ((True,), "PHM layers without a bias"),
}
PHM_ONLY = {"shared_W_phm", "factorized_phm_rule", "phm_bias"}  # read only where phm_layer is true
# Our adapter parameter `<stack>.block.<i>.layer.<j>.<host>.adapter.<down|up>.<name>`: AdapterHub keeps it in the
# same T5 layer, as `...layer.<j>.adapters.<adapter>.adapter_down.0.<its name>` (up: `adapter_up.<its name>`).
OUR_ADAPTER_KEY = re.compile(
    r"(?P<layer>(?:en|de)coder\.block\.\d+\.layer\.\d+)\.\w+\.adapter\.(?P<end>down|up)\.(?P<name>\w+)"
)
PROJECTIONS = {"down": "adapter_down.0", "up": "adapter_up"}
BLOCK_KEY = re.compile(r"(?P<stack>encoder|decoder)\.block\.(?P<index>\d+)\.")
LAYER_NORM_KEY = re.compile(
    r"(?:(?:en|de)coder\.block\.\d+\.layer\.\d+\.layer_norm|(?:en|de)coder\.final_layer_norm)\.weight"
)
OUR_METADATA = "compacter_pl"  # what an export of ours adds to AdapterHub's config: the task it trained on
PROBE_ROWS, PROBE_SOURCE, PROBE_TARGET = 4, 16, 8  # the probe batch of `layer_norm_note`: fixed random tokens


@dataclass
class AdapterHubAdapter:
    """An adapter in AdapterHub's format: its `adapter_config.json` and its weights under AdapterHub's names."""

    config: dict
    state_dict: dict[str, torch.Tensor]

    @property
    def name(self) -> str:
        return self.config["name"]


def has_form(method_class: type) -> bool:
    """Whether a method class has a form in AdapterHub's format (it defines `adapterhub_arguments` itself)."""
    return issubclass(method_class, AdapterMethod) and "adapterhub_arguments" in vars(method_class)


def form_classes() -> list[type[AdapterMethod]]:
    """The registered method classes that have a form in AdapterHub's format."""
    return [cls for cls in registry.method_classes() if issubclass(cls, AdapterMethod) and has_form(cls)]


def form_names() -> str:
    """The display names of the registered methods that have a form in AdapterHub's format."""
    return ", ".join(
        entry.name for entry in registry.registered_methods() if has_form(entry.cls) and not entry.init_args
    )


# --- ours -> AdapterHub's ----------------------------------------------------------------------------------------


def reduction_factor(d_model: int, bottleneck: int) -> int | float:
    """AdapterHub's reduction factor for a bottleneck (it builds `int(hidden_size // reduction_factor)`)."""
    if d_model % bottleneck == 0:
        return d_model // bottleneck
    factor = d_model / bottleneck
    while int(d_model // factor) < bottleneck:  # the quotient rounded so that it floors below the bottleneck
        factor = math.nextafter(factor, 0.0)
    return factor


def adapterhub_key(key: str, name: str, method_class: type[AdapterMethod]) -> str | None:
    """AdapterHub's name of one of our adapter parameters (T5AdapterModel's layout); None for any other parameter."""
    if key in method_class.adapterhub_shared:
        return f"{PREFIX}shared_parameters.{name}.{method_class.adapterhub_shared[key]}"
    match = OUR_ADAPTER_KEY.fullmatch(key)
    if match is None or match["name"] not in method_class.adapterhub_names:
        return None
    projection = PROJECTIONS[match["end"]]
    return f"{PREFIX}{match['layer']}.adapters.{name}.{projection}.{method_class.adapterhub_names[match['name']]}"


def to_adapterhub(export: AdapterExport, name: str | None = None) -> tuple[AdapterHubAdapter, list[str]]:
    """The export in AdapterHub's format, named `name` (default: its task), and the names of the trained
    parameters the format has no slot for (T5's layer norms); a one-line UserError for a method without a form."""
    method = method_from_config(export.config["method"], saved=True)
    if not isinstance(method, AdapterMethod) or not has_form(type(method)):
        raise UserError(
            f"{type(method).__name__} has no form in AdapterHub's format; its bottleneck adapters carry {form_names()}"
        )
    method_class = type(method)
    if method.train_output_layer:
        raise UserError(
            "the adapter trained the output layer (train_output_layer), for which AdapterHub's adapter file has no "
            "slot; export it in compacter-pl's format"
        )
    name = name or export.task or "adapter"
    d_model = export.config["base_architecture"]["d_model"]
    fields = {
        **BN_DEFAULTS,
        "mh_adapter": "self_attention" in method.sublayers,
        "output_adapter": "feed_forward" in method.sublayers,
        "reduction_factor": reduction_factor(d_model, method.bottleneck_size(d_model)),
        "non_linearity": method.non_linearity,
        **method.adapterhub_fields(),
    }
    state, left_out = {}, []
    for key, value in export.state_dict.items():
        theirs = adapterhub_key(key, name, method_class)
        if theirs is not None:
            state[theirs] = value.detach().clone().contiguous()
        elif LAYER_NORM_KEY.fullmatch(key):
            left_out.append(key)
        else:
            raise UserError(f"the export's parameter {key} has no place in AdapterHub's adapter file")
    config = {
        "config": fields,
        "hidden_size": d_model,
        "model_class": MODEL_CLASS,
        "model_name": export.config.get("base_model"),
        "model_type": "t5",
        "name": name,
        "version": SCHEMA_VERSION,
        OUR_METADATA: {"task": export.task},  # an extra entry, which adapters keeps and ignores
    }
    return AdapterHubAdapter(config, state), left_out


def write_adapterhub(adapter: AdapterHubAdapter, out: Path) -> Path:
    """Write an adapter's folder in AdapterHub's format (into `out`, checked by the caller; whole or not at all):
    its config and its weights twice, `pytorch_adapter.bin` and `adapter.safetensors` (what `load_adapter` reads
    by default and with use_safetensors)."""

    def fill(folder: Path) -> None:
        (folder / CONFIG_FILE).write_text(json.dumps(adapter.config, indent=2, sort_keys=True) + "\n")
        torch.save(adapter.state_dict, folder / BIN_FILE)
        (folder / SAFETENSORS_FILE).write_bytes(save(adapter.state_dict, metadata={"format": "pt"}))

    return write_folder(out, fill)


def layer_norm_note(
    export: AdapterExport, left_out: list[str], base: T5ForConditionalGeneration | None, why: str = ""
) -> str:
    """One line: what an AdapterHub export of `export` leaves out (`left_out`: its trained layer norms) and how far
    AdapterHub's logits, which use the base model's layer norms, are from this adapter's own on a probe batch of
    fixed random tokens (`base`: the base model, changed here; None where it could not be loaded, `why`)."""
    if not left_out:
        return "exact: AdapterHub's adapter file holds every parameter this adapter trained"
    numbers = sum(export.state_dict[key].numel() for key in left_out)
    line = (
        f"left out: the {len(left_out)} trained T5 layer norms ({numbers:,} numbers): AdapterHub's adapter file has "
        f"no slot for them, so it runs the adapter with the base model's"
    )
    advice = "export a run with train_layer_norms false to have it exact"
    if base is None:
        return f"{line} (not measured: {why or 'no base model'}); {advice}"
    model = base.eval()
    original = {key: model.get_parameter(key).detach().clone() for key in left_out}
    apply_export(model, export)
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    source = torch.randint(3, vocab, (PROBE_ROWS, PROBE_SOURCE), generator=generator)
    target = torch.randint(3, vocab, (PROBE_ROWS, PROBE_TARGET), generator=generator)
    target[:, 0] = model.config.decoder_start_token_id
    with torch.inference_mode():
        own = model(input_ids=source, decoder_input_ids=target).logits
        for key, value in original.items():
            model.get_parameter(key).copy_(value)
        theirs = model(input_ids=source, decoder_input_ids=target).logits
    difference = (own - theirs).abs().max().item()
    changed = int((own.argmax(-1) != theirs.argmax(-1)).sum())
    return (
        f"{line}; on a probe batch ({PROBE_ROWS} inputs of fixed random tokens, {PROBE_SOURCE} source and "
        f"{PROBE_TARGET} target tokens) that moves the logits by up to {difference:.3g} (the largest is "
        f"{own.abs().max().item():.3g}) and changes the top token at {changed} of {PROBE_ROWS * PROBE_TARGET} "
        f"positions; {advice}"
    )


def export_checkpoint_adapterhub(
    ckpt_path: str | Path, out_dir: str | Path, overwrite: bool = False, name: str | None = None
) -> tuple[Path, list[str]]:
    """Write a checkpoint's adapter in AdapterHub's format; return the folder and the notes to tell the user (what
    the format leaves out and what that costs, how to load it)."""
    from compacter_pl.hub import load_t5

    export = checkpoint_export(ckpt_path)
    adapter, left_out = to_adapterhub(export, name)
    out = check_output_folder(
        out_dir,
        "--out",
        {"--ckpt_path": ckpt_path},
        overwrite=overwrite,
        is_own=is_adapterhub_export,
        kind="an AdapterHub adapter",
    )
    base, why = None, ""
    if left_out:
        try:
            base = load_t5(export.config["base_model"])
        except UserError as error:
            why = str(error)
    notes = [layer_norm_note(export, left_out, base, why)]
    if any(".shared_parameters." in key for key in adapter.state_dict):
        notes.append(
            f"the shared PHM rule is AdapterHub's shared_parameters.{adapter.name}.phm_rule, in T5AdapterModel's "
            f"names (transformer.*): adapters restores it into a T5AdapterModel or an adapters.init'ed "
            f"T5ForConditionalGeneration, but saves it only from a T5AdapterModel"
        )
    notes.append(
        f"load it with adapters: adapters.init(model); model.load_adapter({str(out)!r}, set_active=True) "
        f"(model: T5ForConditionalGeneration of {export.config['base_model']})"
    )
    return write_adapterhub(adapter, out), notes


# --- AdapterHub's -> ours ----------------------------------------------------------------------------------------


def is_adapterhub_config(config) -> bool:
    """Whether an `adapter_config.json`'s content is AdapterHub's (its adapter config under "config") rather than
    ours (a "method")."""
    return isinstance(config, dict) and "config" in config and "method" not in config


def is_adapterhub_folder(folder: Path) -> bool:
    """Whether `folder` holds an AdapterHub adapter (an `adapter_config.json` of AdapterHub's)."""
    try:
        return is_adapterhub_config(json.loads((Path(folder) / CONFIG_FILE).read_text()))
    except (OSError, ValueError):
        return False


def is_adapterhub_export(folder: Path) -> bool:
    """Whether `folder` holds an AdapterHub adapter and nothing else (what `export --overwrite` may replace)."""
    return is_adapterhub_folder(folder) and {entry.name for entry in folder.iterdir()} <= ADAPTERHUB_FILES


def read_adapterhub(folder: str | Path, task: str | None = None) -> AdapterExport:
    """The AdapterHub adapter in `folder` as an export of one of our methods (`task`: the task it was trained on, for
    `AdapterBank.predict`; AdapterHub's config names none). A one-line UserError for anything we cannot run as
    AdapterHub does."""
    directory = Path(folder)
    try:
        config = json.loads((directory / CONFIG_FILE).read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {directory / CONFIG_FILE}: {first_line(error)}") from None
    if (directory / SAFETENSORS_FILE).is_file():
        path = directory / SAFETENSORS_FILE
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise UserError(f"cannot read {path} (truncated or corrupt?): {first_line(error)}") from None
    elif (directory / BIN_FILE).is_file():
        path = directory / BIN_FILE
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 (a corrupt pickle raises anything; weights_only runs no code)
            raise UserError(
                f"cannot read {path} (truncated, corrupt or not weights only?): {first_line(error)}"
            ) from None
    else:
        raise UserError(f"{directory} holds no {SAFETENSORS_FILE} or {BIN_FILE}, the weights of an AdapterHub adapter")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a state dict of tensors")
    return from_adapterhub(AdapterHubAdapter(config, state), task, source=str(directory))


def _fields(config: dict, where: str) -> dict:
    """The adapter's BnConfig fields, completed with the defaults; a one-line UserError for what we cannot run."""
    if config.get("model_type") != "t5":
        raise UserError(f"{where} is an adapter for model type {config.get('model_type')!r}; compacter-pl adapts T5")
    fields = config.get("config")
    if not isinstance(fields, dict):
        raise UserError(f"{where} names its adapter config as {fields!r}, not its fields; save it with adapters 1.x")
    if fields.get("architecture") is not None:
        raise UserError(
            f"{where} is a {fields['architecture']} adapter; only AdapterHub's bottleneck adapters map to "
            f"compacter-pl's methods ({form_names()})"
        )
    missing = [field for field in REQUIRED_FIELDS if field not in fields]
    if missing:
        raise UserError(f"{where}: its adapter config lacks {missing[0]!r}")
    known = {*BN_DEFAULTS, *REQUIRED_FIELDS, *LEGACY_FIELDS, "architecture"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise UserError(
            f"{where}: its adapter config has field {unknown[0]!r}, unknown to the schema of {SCHEMA_VERSION} "
            f"this reader follows"
        )
    fields = {**BN_DEFAULTS, **fields}
    for field, (accepted, what) in UNSUPPORTED.items():
        if field in fields and (field not in PHM_ONLY or fields["phm_layer"]) and fields[field] not in accepted:
            raise UserError(
                f"{where} has {what} ({field}: {json.dumps(fields[field])}), which compacter-pl's adapters do not"
            )
    return fields


def _bottleneck(fields: dict, d_model: int, where: str) -> dict:
    """Our arguments for AdapterHub's reduction factor: reduction_factor where it is a whole number, else the
    bottleneck it builds."""
    factor = fields["reduction_factor"]
    if isinstance(factor, Mapping):
        if set(factor) != {"default"}:
            raise UserError(
                f"{where} has a reduction_factor per layer ({json.dumps(factor)}), which compacter-pl's adapters do not"
            )
        factor = factor["default"]
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
        raise UserError(f"{where} has reduction_factor {factor!r}; it must be a positive number")
    if float(factor).is_integer():
        return {"reduction_factor": int(factor)}
    return {"bottleneck": max(1, int(d_model // factor))}


def _non_linearity(config: dict, fields: dict, where: str) -> str:
    name = fields["non_linearity"]
    if not isinstance(name, str):
        raise UserError(f"{where} has non_linearity {name!r}; compacter-pl's adapters need an activation")
    name = name.lower()
    if "version" not in config:
        name = LEGACY_ACTIVATIONS.get(name, name)
    if name not in ACT2FN:
        raise UserError(f"{where} has non_linearity {name!r}, which transformers' activations (ACT2FN) lack")
    return name


def _expected_parameters(method: AdapterMethod, architecture: dict) -> dict[str, torch.Size]:
    """The parameters `method` trains on a T5 of `architecture` (d_model and block counts), with their shapes: the
    method applied to such a model on the meta device (nothing is allocated)."""
    config = T5Config(
        vocab_size=8,
        d_model=architecture["d_model"],
        d_kv=8,
        d_ff=8,
        num_heads=1,
        num_layers=architecture["num_layers"],
        num_decoder_layers=architecture["num_decoder_layers"],
    )
    with torch.device("meta"):
        model = T5ForConditionalGeneration(config)
    method.apply(model)
    names = trainable_names(model)
    return {name: parameter.shape for name, parameter in model.named_parameters() if name in names}


def from_adapterhub(adapter: AdapterHubAdapter, task: str | None = None, source: str = "") -> AdapterExport:
    """An AdapterHub adapter as an export of the one method of ours that has its form (`task`: what it was trained
    on, if known). A one-line UserError for anything that method cannot run as AdapterHub does."""
    where = f"AdapterHub adapter {source}".rstrip()
    config = adapter.config
    fields = _fields(config, where)
    name = config.get("name")
    if not isinstance(name, str) or not name:
        raise UserError(f"{where} has no adapter name")
    d_model = config.get("hidden_size")
    if isinstance(d_model, bool) or not isinstance(d_model, int):
        raise UserError(f"{where} names no hidden_size")
    sublayers = [s for s, on in zip(SUBLAYERS, (fields["mh_adapter"], fields["output_adapter"]), strict=True) if on]
    if not sublayers:
        raise UserError(f"{where} places no adapter (mh_adapter and output_adapter are both false)")
    forms = [
        (cls, arguments)
        for cls in form_classes()
        if (arguments := cls.adapterhub_arguments(fields, sublayers)) is not None
    ]
    if len(forms) != 1:
        found = f"several ({', '.join(cls.__name__ for cls, _ in forms)})" if forms else "none"
        raise UserError(
            f"{where}: its adapter config is the form of {found} of compacter-pl's methods ({form_names()})"
        )
    method_class, arguments = forms[0]
    state = {key.removeprefix(PREFIX): value for key, value in adapter.state_dict.items()}
    blocks: dict[str, int] = {"encoder": 0, "decoder": 0}
    for key in state:
        if (match := BLOCK_KEY.match(key)) is not None:
            blocks[match["stack"]] = max(blocks[match["stack"]], int(match["index"]) + 1)
    architecture = {"d_model": d_model, "num_layers": blocks["encoder"], "num_decoder_layers": blocks["decoder"]}
    try:
        method = method_class(
            **arguments,
            **_bottleneck(fields, d_model, where),
            non_linearity=_non_linearity(config, fields, where),
            train_layer_norms=False,
        )
        expected = _expected_parameters(method, architecture)
    except UserError as error:
        raise UserError(f"{where}: {error}") from None
    ours = {}
    for key, shape in expected.items():
        theirs = adapterhub_key(key, name, method_class)
        assert theirs is not None, key  # every parameter of a method with a form has a name in it
        theirs = theirs.removeprefix(PREFIX)
        if theirs not in state:
            shared = f" (a {MODEL_CLASS}'s save holds it; a T5ForConditionalGeneration's does not)"
            raise UserError(
                f"{where} lacks {theirs}{shared if '.shared_parameters.' in f'.{theirs}' else ''}, which "
                f"{method_class.__name__} needs"
            )
        value = state.pop(theirs)
        if value.shape != shape:
            raise UserError(f"{where}: {theirs} has shape {tuple(value.shape)}, but its config makes it {tuple(shape)}")
        ours[key] = value
    if state:
        raise UserError(f"{where} holds {sorted(state)[0]}, which {method_class.__name__} has no place for")
    export_config = {
        "format_version": FORMAT_VERSION,
        "method": method.config(),
        "base_model": config.get("model_name"),
        "base_architecture": architecture,
        "task": task or _our_task(config),
        "metrics": {"best_val_score": None, "epoch": None, "global_step": None},
        "trainable_parameters": sum(v.numel() for v in ours.values()),
        "adapterhub": {key: config.get(key) for key in ("name", "model_class", "version")},
    }
    return AdapterExport(export_config, ours)


def _our_task(config: dict) -> str | None:
    """The task an AdapterHub export of ours records (`to_adapterhub`); None in anyone else's."""
    metadata = config.get(OUR_METADATA)
    task = metadata.get("task") if isinstance(metadata, dict) else None
    return task if isinstance(task, str) else None
