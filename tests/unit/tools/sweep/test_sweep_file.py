"""A sweep file's methods are registry keys: the key's class and arguments, `class_path` only as the key's own,
variants that are methods of their own, and the names runs get from their axes (`compacter_pl.tools.sweep
.sweep_file`)."""

import json

import pytest

from compacter_pl.methods import registry
from compacter_pl.tools.sweep.sweep_file import axis_name, load_sweep
from tests.helpers import in_process, one_line_error, write_sweep


def sweep_error(capsys, tmp_path, **changes) -> str:
    code, _, err = in_process(capsys, "sweep", "--config", str(write_sweep(tmp_path, **changes)), "--dry_run")
    assert code == 2, err
    return err


@pytest.mark.parametrize(
    "methods, fragments",
    [
        (
            {"compactor": {}},
            ["'compactor' is no registered method key", "did you mean 'compacter'?", "full, ", "compacter++"],
        ),
        (  # a name of the sweep files before methods were keys: the key its class is registered as
            {"t5-finetune": {"class_path": "compacter_pl.methods.FullFineTuning"}},
            ["'t5-finetune' is no registered method key", "is registered as 'full'"],
        ),
        (
            {"compacter": {"class_path": "CompacterPlusPlus"}},
            [
                "methods.compacter.class_path CompacterPlusPlus is not compacter's class",
                "CompacterPlusPlus (compacter++)",
            ],
        ),
        (
            {"prompt_random": {"init_args": {"init": "vocab", "num_tokens": 5}}},
            ["methods.prompt_random: its arguments (init: vocab) make it 'prompt_vocab', not 'prompt_random'"],
        ),
        (
            {"prompt_random": {"init_args": {"num_tokens": 5}, "search": {"init_args.init": ["random", "vocab"]}}},
            ["make it 'prompt_vocab', not 'prompt_random'"],
        ),
        (
            {"compacter": {"variants": {"model.learning_rate": [0.1, 0.2]}}},
            ["methods.compacter.variants.model.learning_rate: a variant is a value of a method argument"],
        ),
        (
            {"compacter": {"init_args": {"n": 4}, "variants": {"init_args.n": [4, 8]}}},
            ["methods.compacter.variants.init_args.n is also set in init_args or overrides"],
        ),
        (
            {"compacter": {"variants": {"init_args.n": [4, 8]}, "search": {"init_args.n": [2]}}},
            ["methods.compacter.variants.init_args.n is also in search: an axis is searched or varied, not both"],
        ),
        ({"compacter": {"variants": {"init_args.n": 4}}}, ["methods.compacter.variants.init_args.n must be a list"]),
        (
            {"compacter": {"variants": {"init_args.n": [4, 4]}}},
            ["methods.compacter.variants.init_args.n must list distinct values"],
        ),
    ],
    ids=[
        "unknown-key",
        "old-name",
        "class-of-another-key",
        "arguments-of-another-key",
        "search-of-another-key",
        "variant-not-an-argument",
        "variant-also-in-init-args",
        "variant-also-searched",
        "variant-not-a-list",
        "variant-repeated",
    ],
)
def test_a_method_that_is_not_its_key_is_a_one_line_error(tmp_path, capsys, methods, fragments):
    one_line_error(2, sweep_error(capsys, tmp_path, methods=methods), *fragments)


def test_a_key_gives_its_class_and_arguments_and_the_entry_adds_to_them(tmp_path):
    sweep = load_sweep(
        write_sweep(
            tmp_path,
            methods={
                "prompt_vocab": {"init_args": {"num_tokens": 5}},
                "full": {},
                "ln_only": {"class_path": "LayerNormOnly"},
            },
        )
    )
    vocab = sweep.methods["prompt_vocab"]
    assert (vocab.key, vocab.class_path) == ("prompt_vocab", registry.method_entry("prompt_vocab").class_path)
    assert vocab.init_args == {"init": "vocab", "num_tokens": 5}  # the key's init, the entry's length
    assert sweep.methods["full"].class_path == "compacter_pl.methods.full.FullFineTuning"
    assert sweep.methods["ln_only"].init_args == {}
    run = next(r for r in sweep.runs() if r.method.key == "prompt_vocab")
    method = json.loads(next(a for a in run.args() if a.startswith("--model.method={")).split("=", 1)[1])
    assert method == {"class_path": vocab.class_path, "init_args": {"init": "vocab", "num_tokens": 5}}


def test_each_variant_is_a_method_with_its_own_runs_named_by_the_key_and_its_values(tmp_path):
    compacter = {
        "init_args": {"bottleneck": 8},
        "variants": {"init_args.n": [2, 4]},
        "search": {"model.learning_rate": [3.0e-3, 3.0e-2]},
    }
    path = write_sweep(tmp_path, methods={"full": {}, "compacter": compacter}, sizes={100: None}, seeds=[0])
    sweep = load_sweep(path)
    assert list(sweep.methods) == ["full", "compacter-n2", "compacter-n4"]
    assert {name: (m.key, m.variant, m.init_args) for name, m in sweep.methods.items() if m.key == "compacter"} == {
        "compacter-n2": ("compacter", {"n": 2}, {"bottleneck": 8, "n": 2}),
        "compacter-n4": ("compacter", {"n": 4}, {"bottleneck": 8, "n": 4}),
    }
    names = [r.name for r in sweep.runs()]
    assert names == [
        "rte-full-n100-s0",
        "rte-compacter-n2-lr3e-3-n100-s0",
        "rte-compacter-n4-lr3e-3-n100-s0",
        "rte-compacter-n2-lr3e-2-n100-s0",
        "rte-compacter-n4-lr3e-2-n100-s0",
    ]
    # the search is what the report selects over: a variant's value is none of its configuration's axes
    assert {r.config.name for r in sweep.runs() if r.method.key == "compacter"} == {"lr3e-3", "lr3e-2"}
    # an exclude rule names a key: it leaves out every variant of it
    excluded = load_sweep(
        write_sweep(tmp_path, methods={"full": {}, "compacter": compacter}, exclude=[{"method": "compacter"}])
    )
    assert {r.method.key for r in excluded.runs()} == {"full"}


def test_an_exclude_rule_names_a_key_not_a_variant(tmp_path, capsys):
    compacter = {"init_args": {"bottleneck": 8}, "variants": {"init_args.n": [2, 4]}}
    err = sweep_error(capsys, tmp_path, methods={"compacter": compacter}, exclude=[{"method": "compacter-n2"}])
    one_line_error(2, err, "exclude[0].method 'compacter-n2' is not in the sweep's methods (compacter)")


@pytest.mark.parametrize(
    "key, value, name",
    [
        ("model.learning_rate", 3e-4, "lr3e-4"),  # the one abbreviation: the learning rate, a cli.py key
        ("init_args.bottleneck", 24, "bottleneck24"),  # a method's argument by its own name
        ("init_args.reduction_factor", 32, "reduction_factor32"),
        ("init_args.intrinsic_dim", 1400, "intrinsic_dim1400"),
        ("init_args.n", 8, "n8"),
        ("data.batch_size", 16, "batch_size16"),
        ("init_args.sublayers", ["feed_forward"], "sublayersfeed_forward"),
    ],
)
def test_an_axis_is_named_by_the_last_part_of_its_key(key, value, name):
    assert axis_name(key, value) == name
