"""AdapterHub's adapter format both ways (`compacter_pl.adapterhub`), held to the numbers of AdapterHub's `adapters`
library itself: tests/fixtures/adapterhub, made by tools/adapterhub_fixtures.sh (its script's docstring says what
each file is). Our import of AdapterHub's adapters reproduces its logits, and its load of our exports reproduced
ours, to 1e-5."""

import copy
import functools
import json
import pickle
import re

import pytest
import torch
from safetensors.torch import load_file
from transformers import T5Config, T5ForConditionalGeneration

from compacter_pl.adapter_bank import AdapterBank
from compacter_pl.adapterhub import (
    AdapterHubAdapter,
    form_classes,
    from_adapterhub,
    layer_norm_note,
    read_adapterhub,
    to_adapterhub,
    write_adapterhub,
)
from compacter_pl.errors import UserError
from compacter_pl.export import apply_export, load_export
from compacter_pl.hub import load_t5, load_tokenizer
from compacter_pl.methods import BitFit, Compacter
from tests.helpers import DEMO_MODEL, ROOT, fit_checkpoint, in_process, one_line_error, random_export

FIXTURES = ROOT / "tests" / "fixtures" / "adapterhub"
CLASSES = {  # the registered key of each method with a form in AdapterHub's format -> its class
    "adapter": "Adapter",
    "pfeiffer": "PfeifferAdapter",
    "phm_adapter": "PHMAdapter",
    "compacter": "Compacter",
    "compacter++": "CompacterPlusPlus",
}
KEYS = list(CLASSES)
TOLERANCE = 1e-5


@functools.cache
def adapterhubs_logits() -> dict[str, torch.Tensor]:
    """What adapters 1.3.0 computed (transformers 4.57), and the fixed inputs it computed them for."""
    return load_file(str(FIXTURES / "logits.safetensors"))


def logits(model: T5ForConditionalGeneration) -> torch.Tensor:
    fixture = adapterhubs_logits()
    inputs = {name: fixture[name] for name in ("input_ids", "attention_mask", "decoder_input_ids")}
    with torch.no_grad():
        return model.eval()(**inputs).logits


def logits_with(export) -> torch.Tensor:
    model = load_t5(str(DEMO_MODEL))
    apply_export(model, export)
    return logits(model)


def test_the_demo_model_computes_the_same_logits_under_adapters_transformers():
    assert (logits(load_t5(str(DEMO_MODEL))) - adapterhubs_logits()["base"]).abs().max() <= TOLERANCE


@pytest.mark.parametrize("key", KEYS)
def test_our_import_of_adapterhubs_adapter_reproduces_its_logits(key):
    export = load_export(FIXTURES / "adapterhub" / key)
    assert export.config["method"]["class_path"].endswith(f".{CLASSES[key]}")
    expected = adapterhubs_logits()[f"adapterhub/{key}"]
    assert (expected - adapterhubs_logits()["base"]).abs().max() > 0.05  # the adapter matters
    assert (logits_with(export) - expected).abs().max() <= TOLERANCE


@pytest.mark.parametrize("key", KEYS)
def test_adapterhubs_load_of_our_export_reproduced_our_logits(key):
    ours = logits_with(load_export(FIXTURES / "ours" / key))
    assert (ours - adapterhubs_logits()["base"]).abs().max() > 0.05
    assert (ours - adapterhubs_logits()[f"exported/{key}"]).abs().max() <= TOLERANCE


@pytest.mark.parametrize("key", KEYS)
def test_the_committed_exports_are_what_the_export_writes_now(key, tmp_path):
    adapter, left_out = to_adapterhub(load_export(FIXTURES / "ours" / key))
    assert left_out == []
    written = write_adapterhub(adapter, tmp_path / key)
    committed = FIXTURES / "exported" / key
    assert sorted(p.name for p in written.iterdir()) == sorted(p.name for p in committed.iterdir())
    config = json.loads((written / "adapter_config.json").read_text())
    assert config == json.loads((committed / "adapter_config.json").read_text())
    assert config["config"]["original_ln_before"] is False and config["model_class"] == "T5AdapterModel"
    for folder in (written, committed):
        tensors = load_file(str(folder / "adapter.safetensors"))
        assert tensors.keys() == adapter.state_dict.keys()
        assert all(torch.equal(tensors[k], v) for k, v in adapter.state_dict.items())
        pickled = torch.load(folder / "pytorch_adapter.bin", weights_only=True)
        assert all(torch.equal(pickled[k], v) for k, v in adapter.state_dict.items())


@pytest.mark.parametrize("key", KEYS)
def test_an_adapter_goes_to_adapterhub_and_back_unchanged(key, tmp_path):
    export = random_export(key, "rte", seed=1, train_layer_norms=False)
    back = load_export(write_adapterhub(to_adapterhub(export)[0], tmp_path / key))
    assert back.task == "rte" and back.config["method"]["class_path"] == export.config["method"]["class_path"]
    assert back.state_dict.keys() == export.state_dict.keys()
    assert all(torch.equal(back.state_dict[k], v) for k, v in export.state_dict.items())
    assert torch.equal(logits_with(back), logits_with(export))


def test_only_the_five_methods_have_a_form_in_adapterhubs_format():
    assert {cls.__name__ for cls in form_classes()} == set(CLASSES.values())
    for key in ("adapterdrop", "adapter_lowrank", "bitfit", "prompt_random"):
        with pytest.raises(UserError) as error:
            to_adapterhub(random_export(key, "rte", seed=0))
        assert "has no form in AdapterHub's format" in str(error.value) and "\n" not in str(error.value)
        assert "Adapter, Pfeiffer-Adapter, PHM-Adapter, Compacter, Compacter++" in str(error.value)
    with pytest.raises(UserError, match="output layer"):
        to_adapterhub(random_export("compacter", "rte", seed=0, train_output_layer=True))


def test_an_export_with_trained_layer_norms_says_in_one_line_what_it_leaves_out():
    export = random_export("compacter", "rte", seed=0)  # the paper's default: the layer norms train
    adapter, left_out = to_adapterhub(export)
    assert len(left_out) == 12 and not any("layer_norm" in key for key in adapter.state_dict)  # 5 + 7 on the demo
    note = layer_norm_note(export, left_out, load_t5(str(DEMO_MODEL)))
    assert "\n" not in note and note.startswith("left out: the 12 trained T5 layer norms (768 numbers)")
    difference = float(re.search(r"moves the logits by up to ([0-9.e+-]+)", note)[1])
    assert difference > 0.01, note
    unmeasured = layer_norm_note(export, left_out, None, "no network")
    assert "(not measured: no network)" in unmeasured and "train_layer_norms false" in unmeasured
    exact = random_export("compacter", "rte", seed=0, train_layer_norms=False)
    assert layer_norm_note(exact, to_adapterhub(exact)[1], None).startswith("exact:")


def test_adapter_bank_adds_adapterhub_folders_beside_ours():
    tokenizer = load_tokenizer(str(DEMO_MODEL))
    bank = AdapterBank(load_t5(str(DEMO_MODEL)), tokenizer)
    bank.add("theirs", FIXTURES / "adapterhub" / "compacter")
    bank.add("exported", FIXTURES / "exported" / "pfeiffer")
    bank.add("ours", FIXTURES / "ours" / "phm_adapter")
    texts = ["sentence1: A cat sat. sentence2: A cat is sitting.", "sentence1: It rains. sentence2: It is dry."]
    expected = {}
    for name, folder in (
        ("theirs", FIXTURES / "adapterhub" / "compacter"),
        ("exported", FIXTURES / "exported" / "pfeiffer"),
        ("ours", FIXTURES / "ours" / "phm_adapter"),
    ):
        reference = load_t5(str(DEMO_MODEL)).eval()
        apply_export(reference, load_export(folder))
        generated = reference.generate(**tokenizer(texts, return_tensors="pt", padding=True), max_new_tokens=16)
        expected[name] = tokenizer.batch_decode(generated, skip_special_tokens=True)
        assert bank.generate(name, texts) == expected[name]
    rows = ["theirs", "exported", "ours", "theirs"]  # one mixed batch
    assert bank.generate(rows, texts * 2) == [expected[name][i % 2] for i, name in enumerate(rows)]
    assert bank.task("exported").name == "rte"  # our export records its task
    with pytest.raises(UserError, match=r"adapter 'theirs' names no task .*read_adapterhub\(folder, task=...\)"):
        bank.predict("theirs", [{"sentence1": "A cat sat.", "sentence2": "A cat is sitting."}])
    bank.add("theirs", read_adapterhub(FIXTURES / "adapterhub" / "compacter", task="rte"))
    assert len(bank.predict("theirs", [{"sentence1": "A cat sat.", "sentence2": "A cat is sitting."}])) == 1


def test_export_format_adapterhub_writes_what_adapters_loads_and_says_what_it_leaves_out(tmp_path, capsys):
    ckpt = fit_checkpoint(tmp_path / "compacter", Compacter(bottleneck=8))  # trains the layer norms
    out = tmp_path / "rte_compacter"
    code, stdout, err = in_process(
        capsys, "export", "--ckpt_path", str(ckpt), "--out", str(out), "--format", "adapterhub"
    )
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0].endswith("in AdapterHub's format (adapter.safetensors, adapter_config.json, pytorch_adapter.bin)")
    assert (
        lines[1].startswith("left out: the 12 trained T5 layer norms (768 numbers)") and "moves the logits" in lines[1]
    )
    assert "shared_parameters.rte.phm_rule" in lines[2] and "set_active=True" in lines[3]
    export = load_export(out)
    assert export.config["method"]["init_args"]["train_layer_norms"] is False and export.task == "rte"

    code, _, err = in_process(capsys, "export", "--ckpt_path", str(ckpt), "--out", str(out), "--format", "adapterhub")
    one_line_error(code, err, "already holds files (an AdapterHub adapter); pass --overwrite")
    args = ("export", "--ckpt_path", str(ckpt), "--out", str(out), "--format", "adapterhub", "--overwrite")
    assert in_process(capsys, *args)[0] == 0
    code, _, err = in_process(capsys, "export", "--ckpt_path", str(ckpt), "--out", str(out))  # ours over theirs
    one_line_error(code, err, "already holds files that are not an export")
    code, _, err = in_process(capsys, "export", "--ckpt_path", str(ckpt), "--out", str(out), "--format", "peft")
    one_line_error(code, err, "format")

    bitfit = fit_checkpoint(tmp_path / "bitfit", BitFit())
    code, _, err = in_process(
        capsys, "export", "--ckpt_path", str(bitfit), "--out", str(tmp_path / "b"), "--format", "adapterhub"
    )
    one_line_error(code, err, "BitFit has no form in AdapterHub's format")
    assert not (tmp_path / "b").exists()


# --- what AdapterHub's format may hold that we cannot run: one line each -------------------------------------------


def compacter_from_adapterhub() -> tuple[dict, dict]:
    folder = FIXTURES / "adapterhub" / "compacter"  # saved by T5AdapterModel as pytorch_adapter.bin
    state = torch.load(folder / "pytorch_adapter.bin", weights_only=True)
    return json.loads((folder / "adapter_config.json").read_text()), state


def _set(field, value):
    def change(config, state):
        config["config"][field] = value

    return change


def _drop(field):
    def change(config, state):
        del config[field]

    return change


def _rename(old, new):
    def change(config, state):
        for key in [k for k in state if k.endswith(old)][:1]:
            state[key.removesuffix(old) + new] = state.pop(key)

    return change


SHARED = "transformer.shared_parameters.compacter.phm_rule"
LEFT = "transformer.encoder.block.0.layer.0.adapters.compacter.adapter_down.0.W_left"
REFUSED = {
    "bert": (lambda c, s: c.update(model_type="bert"), "is an adapter for model type 'bert'; compacter-pl adapts T5"),
    "named config": (lambda c, s: c.update(config="pfeiffer"), "names its adapter config as 'pfeiffer'"),
    "lora": (_set("architecture", "lora"), "is a lora adapter; only AdapterHub's bottleneck adapters map"),
    "parallel": (_set("is_parallel", True), "has a parallel adapter (is_parallel: true)"),
    "ln_before": (_set("ln_before", True), "a layer norm of the adapter's own (ln_before: true)"),
    "ln_after": (_set("ln_after", True), "a layer norm of the adapter's own (ln_after: true)"),
    "original_ln_before": (_set("original_ln_before", True), "reads the sublayer's output plus the residual"),
    "original_ln_after": (_set("original_ln_after", False), "no residual around the sublayer"),
    "post_add": (_set("residual_before_ln", "post_add"), 'residual_before_ln: "post_add"'),
    "scaling": (_set("scaling", "learned"), 'a scaled adapter output (scaling: "learned")'),
    "gating": (_set("use_gating", True), "a gated adapter (use_gating: true)"),
    "invertible": (_set("inv_adapter", "nice"), "invertible adapters"),
    "cross": (_set("cross_adapter", True), "adapters after cross-attention (cross_adapter: true)"),
    "leave_out": (_set("leave_out", [0, 2]), "layers left without adapters (leave_out: [0, 2])"),
    "per layer": (_set("reduction_factor", {"0": 8, "default": 16}), "a reduction_factor per layer"),
    "bad factor": (_set("reduction_factor", "big"), "reduction_factor 'big'; it must be a positive number"),
    "shared W": (_set("shared_W_phm", True), "PHM weights shared by all layers (shared_W_phm: true)"),
    "factored rule": (_set("factorized_phm_rule", True), "a factored PHM rule (factorized_phm_rule: true)"),
    "no bias": (_set("phm_bias", False), "PHM layers without a bias (phm_bias: false)"),
    "unknown field": (_set("new_option", 1), "has field 'new_option', unknown to the schema of adapters.1.3.0"),
    "activation": (_set("non_linearity", "mish2"), "non_linearity 'mish2', which transformers' activations"),
    "no placement": (
        lambda c, s: c["config"].update(mh_adapter=False, output_adapter=False),
        "places no adapter (mh_adapter and output_adapter are both false)",
    ),
    "missing field": (lambda c, s: c["config"].pop("non_linearity"), "its adapter config lacks 'non_linearity'"),
    "not our form": (_set("factorized_phm_W", False), "is the form of none of compacter-pl's methods"),
    "n": (_set("phm_dim", 3), "n=3 does not divide the model width d_model=64"),
    "no hidden size": (_drop("hidden_size"), "names no hidden_size"),
    "no name": (_drop("name"), "has no adapter name"),
    "saved from T5ForConditionalGeneration": (
        lambda c, s: s.pop(SHARED),
        "lacks shared_parameters.compacter.phm_rule (a T5AdapterModel's save holds it; a "
        "T5ForConditionalGeneration's does not), which Compacter needs",
    ),
    "shape": (lambda c, s: s.update({LEFT: s[LEFT][:, :8]}), "adapter_down.0.W_left has shape (4, 8, 1), but"),
    "renamed": (_rename("adapter_up.b", "adapter_up.bias"), "adapter_up.b, which Compacter needs"),
    "extra": (
        lambda c, s: s.update({LEFT.replace("W_left", "extra"): s[LEFT]}),
        "holds encoder.block.0.layer.0.adapters.compacter.adapter_down.0.extra, which Compacter has no place for",
    ),
    "another name": (lambda c, s: c.update(name="other"), "lacks encoder.block.0.layer.0.adapters.other."),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_our_adapters_cannot_run_is_refused_in_one_line(case):
    change, fragment = REFUSED[case]
    config, state = copy.deepcopy(compacter_from_adapterhub())
    change(config, state)
    with pytest.raises(UserError) as error:
        from_adapterhub(AdapterHubAdapter(config, state), source="X")
    message = str(error.value)
    assert "\n" not in message and message.startswith("AdapterHub adapter X") and fragment in message, message


def test_an_adapterhub_adapter_loads_only_onto_its_base_architecture(tmp_path):
    config, state = compacter_from_adapterhub()
    state[LEFT.replace("block.0", "block.2")] = state[LEFT]  # as if from a model of 3 encoder blocks
    with pytest.raises(UserError) as error:
        from_adapterhub(AdapterHubAdapter(config, state))
    assert "lacks" in str(error.value)  # the other parameters of a third block
    deeper = T5ForConditionalGeneration(T5Config(**{**T5Config.from_pretrained(DEMO_MODEL).to_dict(), "num_layers": 3}))
    with pytest.raises(UserError, match="num_layers=2, but this model has num_layers=3"):
        apply_export(deeper, load_export(FIXTURES / "adapterhub" / "compacter"))


def test_unreadable_adapterhub_weights_are_refused_in_one_line(tmp_path):
    folder = tmp_path / "adapter"
    folder.mkdir()
    config, state = compacter_from_adapterhub()
    (folder / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="holds no adapter.safetensors or pytorch_adapter.bin"):
        load_export(folder)
    (folder / "pytorch_adapter.bin").write_bytes(
        (FIXTURES / "adapterhub/compacter/pytorch_adapter.bin").read_bytes()[:99]
    )
    with pytest.raises(UserError, match=r"cannot read .*pytorch_adapter.bin \(truncated, corrupt or not weights only"):
        load_export(folder)
    (folder / "pytorch_adapter.bin").write_bytes(pickle.dumps({"code": print}, protocol=2))  # never unpickled as code
    with pytest.raises(UserError, match="not weights only"):
        load_export(folder)
    (folder / "adapter.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(UserError, match="adapter.safetensors"):
        load_export(folder)


def test_an_adapter_saved_from_a_t5forconditionalgeneration_reads_as_well():
    """Its names lack T5AdapterModel's `transformer.` (and it may hold no shared phm_rule: refused above)."""
    config, state = (
        json.loads((FIXTURES / "adapterhub/pfeiffer/adapter_config.json").read_text()),
        load_file(str(FIXTURES / "adapterhub/pfeiffer/adapter.safetensors")),
    )
    unprefixed = {key.removeprefix("transformer."): value for key, value in state.items()}
    assert unprefixed.keys() != state.keys()
    export = from_adapterhub(AdapterHubAdapter(config, unprefixed))
    assert (logits_with(export) - adapterhubs_logits()["adapterhub/pfeiffer"]).abs().max() <= TOLERANCE
