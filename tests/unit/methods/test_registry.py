"""The one method registry (`compacter_pl.methods.registry`): what every consumer reads, a user's own method that
trains, exports and serves from an AdapterBank like the built-in ones, and the abstract bases the CLI never offers.
"""

import inspect

import pytest
import torch
from torch import nn

from compacter_pl.adapter_bank import AdapterBank
from compacter_pl.cli import build_cli
from compacter_pl.errors import UserError
from compacter_pl.export import export_checkpoint, load_export, method_from_config, read_checkpoint
from compacter_pl.hub import load_t5, load_tokenizer
from compacter_pl.methods import Compacter, Method, PromptTuning, register_method, registry, trainable_names
from compacter_pl.methods.adapters import AdapterMethod
from compacter_pl.methods.base import freeze
from compacter_pl.tools.methods import listed_methods
from tests.helpers import DEMO_DATA, DEMO_MODEL, ROOT, in_process, one_line_error

# --- a user's own method: a class in the user's package (here, this module) and one registration ---------------


class OutputBias(Method):
    """A bias on the output layer, the only thing that trains.

    Args:
        init: The value every entry of the bias starts at.
    """

    def __init__(self, init: float = 0.0) -> None:
        self.init = float(init)

    def apply(self, model) -> None:
        freeze(model)
        head = model.lm_head
        head.bias = nn.Parameter(
            torch.full((head.out_features,), self.init, device=head.weight.device, dtype=head.weight.dtype)
        )


OUTPUT_BIAS = f"{OutputBias.__module__}.OutputBias"  # its class path: this module, as pytest imported it


@pytest.fixture
def users_method():
    """OutputBias registered as the user's package would at import, and forgotten afterwards."""
    entry = register_method("output_bias", OutputBias, name="Output bias (a user's method)")
    yield entry
    registry.unregister_method("output_bias")


def fit_in_process(tmp_path, *args: str):
    """`cli.py fit --config configs/demo.yaml ARGS`, built and run in this process, two steps."""
    cli = build_cli(
        [
            "--config",
            str(ROOT / "configs/demo.yaml"),
            f"--data.data_dir={DEMO_DATA / 'rte'}",
            f"--data.cache_dir={tmp_path / 'cache'}",
            f"--model.model_name_or_path={DEMO_MODEL}",
            "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
            f"--trainer.logger.init_args.save_dir={tmp_path}",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
            "--trainer.max_steps=2",
            "--trainer.limit_val_batches=1",
            "--trainer.val_check_interval=2",
            "--model.warmup_steps=0",
            *args,
        ],
        run=False,
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


def test_a_users_method_trains_exports_and_serves_from_an_adapter_bank(users_method, tmp_path):
    cli = fit_in_process(
        tmp_path,
        f"--model.method.class_path={OUTPUT_BIAS}",
        "--model.method.init_args.init=0.5",
        "--model.learning_rate=0.1",
    )
    module = cli.model
    assert isinstance(module.method, OutputBias) and trainable_names(module.model) == {"lm_head.bias"}
    trained = module.model.lm_head.bias.detach().clone()
    assert not torch.all(trained == 0.5), "two steps moved the bias"
    ckpt = tmp_path / "user.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    assert set(read_checkpoint(ckpt)["state_dict"]) == {"model.lm_head.bias"}

    out = export_checkpoint(ckpt, tmp_path / "export")
    export = load_export(out)
    assert export.config["method"] == {"class_path": OUTPUT_BIAS, "init_args": {"init": 0.5}}

    base = load_t5(str(DEMO_MODEL))
    bank = AdapterBank(base, load_tokenizer(str(DEMO_MODEL)))
    bank.add("mine", str(out))
    assert torch.equal(bank.models["mine"].lm_head.bias, trained)
    assert base.lm_head.bias is None, "the shared base is never changed"
    texts = [
        "sentence1: The cat sold a garden. sentence2: The cat did not sell a garden.",
        "sentence1: A doctor found the river. sentence2: A doctor found the river.",
    ]
    inputs = bank.tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = module.model.eval().generate(**inputs, max_new_tokens=bank.max_new_tokens, do_sample=False)
    assert bank.generate("mine", texts) == bank.tokenizer.batch_decode(expected, skip_special_tokens=True)

    registry.unregister_method("output_bias")  # the same export, its class no longer registered: refused
    with pytest.raises(UserError, match=f"unknown method '{OUTPUT_BIAS}'") as error:
        bank.add("again", str(out))
    assert "\n" not in str(error.value) and "registered" in str(error.value)


@pytest.mark.parametrize(
    "class_path",
    [
        "os.system",
        "collections.OrderedDict",
        "compacter_pl.methods.Method",
        "compacter_pl.methods.adapters.AdapterMethod",
        OUTPUT_BIAS,
        "compacter_pl.tools.methods.MethodRow",
        "",
        None,
    ],
)
def test_exports_name_only_registered_classes(class_path):
    with pytest.raises(UserError, match="unknown method") as error:
        method_from_config({"class_path": class_path, "init_args": {}})
    assert "\n" not in str(error.value)


def test_exports_written_before_load_by_either_class_path():
    for class_path in ("compacter_pl.methods.compacter.Compacter", "compacter_pl.methods.Compacter"):
        method = method_from_config({"class_path": class_path, "init_args": {"n": 4, "bottleneck": 8}})
        assert type(method) is Compacter and method.bottleneck == 8
    with pytest.raises(UserError, match="has no argument 'bottlenek'"):
        method_from_config({"class_path": "compacter_pl.methods.Compacter", "init_args": {"bottlenek": 8}})


# --- the registry's own API --------------------------------------------------------------------------------------


def test_lookups_by_key_class_and_class_path(users_method):
    assert registry.method_entry("compacter").cls is Compacter
    assert [e.key for e in registry.entries_of(PromptTuning)] == ["prompt_random", "prompt_vocab"]
    assert registry.method_entry("prompt_vocab").build(num_tokens=3).init == "vocab"
    assert registry.entries_of(AdapterMethod) == ()
    assert registry.method_class("compacter_pl.methods.Compacter") is Compacter
    assert registry.method_class(OUTPUT_BIAS) is OutputBias
    assert registry.is_method_class_path("compacter_pl.methods.compacter.Compacter")
    assert not registry.is_method_class_path("compacter_pl.methods.Method")
    keys = [e.key for e in listed_methods()]  # the paper's in Table 1's order, then the others
    assert keys[:12] == [
        "full",
        "adapter",
        "pfeiffer",
        "adapterdrop",
        "adapter_lowrank",
        "prompt_random",
        "prompt_vocab",
        "intrinsic_said",
        "bitfit",
        "phm_adapter",
        "compacter",
        "compacter++",
    ]
    assert keys[12:] == ["lora", "ln_only", "output_bias"]  # the others in registration order
    assert OUTPUT_BIAS in registry.method_class_names() and "Compacter" in registry.method_class_names()
    with pytest.raises(UserError, match="unknown method key 'compactor'; did you mean 'compacter'"):
        registry.method_entry("compactor")


def test_every_concrete_method_of_the_package_is_registered_and_no_abstract_one():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    own = {cls for cls in subclasses(Method) if cls.__module__.startswith("compacter_pl.methods.")}
    assert {cls for cls in own if not inspect.isabstract(cls)} == set(registry.method_classes())
    assert inspect.isabstract(Method) and inspect.isabstract(AdapterMethod)


def test_registration_mistakes_fail_at_import():
    with pytest.raises(ValueError, match="already registered"):
        register_method("compacter", OutputBias)
    with pytest.raises(TypeError, match="is abstract"):
        register_method("adapter_base", AdapterMethod)
    with pytest.raises(TypeError, match="not a subclass"):
        register_method("module", nn.Linear)
    with pytest.raises(TypeError, match="has no argument 'initial'"):
        register_method("output_bias_2", OutputBias, init_args={"initial": 1.0})
    assert "adapter_base" not in [e.key for e in registry.registered_methods()]


def test_resolving_a_name_or_class_path_for_a_config(users_method):
    assert registry.resolve_method_class("CompacterPlusPlus").__name__ == "CompacterPlusPlus"
    assert registry.resolve_method_class("compacter_pl.methods.compacter.Compacter") is Compacter
    assert registry.resolve_method_class("OutputBias") is OutputBias  # a unique name of a user's class
    assert registry.resolve_method_class(OUTPUT_BIAS) is OutputBias
    for bad, fragment in [
        ("compacter_pl.methods.CompacterPlusPlu", "did you mean 'CompacterPlusPlus'?"),
        ("compacter_pl.methods.Method", "known methods: Adapter, "),
        ("os.system", OUTPUT_BIAS),
        ("no_such_module.Thing", "unknown method"),
    ]:
        with pytest.raises(UserError) as error:
            registry.resolve_method_class(bad)
        assert fragment in str(error.value) and "\n" not in str(error.value)


# --- the CLI offers no abstract base ---------------------------------------------------------------------------


def test_help_lists_the_registered_methods_and_no_abstract_base(capsys):
    _, out, _ = in_process(capsys, "fit", "--help")
    method_help = out.split("--model.method METHOD\n", 1)[1]
    listed = " ".join(method_help.split("known subclasses:", 1)[1].split(")", 1)[0].split())
    offered = {path.strip() for path in listed.split(",")}
    # jsonargparse lists every imported concrete subclass (this module's OutputBias too); the package's are exactly
    # the registered ones, and no abstract base is among them
    assert {p for p in offered if p.startswith("compacter_pl.")} == {
        f"compacter_pl.methods.{name}" for name in registry.method_class_names()
    }
    assert not {"compacter_pl.methods.Method", "compacter_pl.methods.adapters.AdapterMethod"} & offered


@pytest.mark.parametrize(
    "class_path", ["compacter_pl.methods.Method", "compacter_pl.methods.adapters.AdapterMethod", "AdapterMethod"]
)
def test_picking_an_abstract_base_is_a_one_line_error(capsys, class_path):
    code, _, err = in_process(
        capsys, "fit", "--config", str(ROOT / "configs/demo.yaml"), "--model.method.class_path", class_path
    )
    one_line_error(code, err, "is abstract")
