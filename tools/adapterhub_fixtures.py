"""Make tests/fixtures/adapterhub: compacter-pl's AdapterHub format checked against the `adapters` library itself.

adapters 1.3.0 pins transformers 4.57 and compacter-pl needs 5.x, so this runs twice, in two environments
(`tools/adapterhub_fixtures.sh` runs both, and makes the second one):

    python tools/adapterhub_fixtures.py ours                # compacter-pl's environment, first
    VENV/bin/python tools/adapterhub_fixtures.py adapterhub # torch 2.13.0 and adapters 1.3.0, second

`ours` writes, for each of the five methods with a form in AdapterHub's format, an adapter on the demo T5 whose
trained numbers are seeded random ones (layer norms not trained, so the format holds all of it): our export in
`ours/<key>/` and its AdapterHub export in `exported/<key>/`. `adapterhub` writes AdapterHub's own adapter of each
method (seeded random weights, saved by T5AdapterModel.save_adapter) in `adapterhub/<key>/`, and into
`logits.safetensors` the fixed inputs and the logits adapters computes: of the base model (`base`), with its own
adapters (`adapterhub/<key>`), and after it loaded our exports (`exported/<key>`). It checks on the way that what
it saved loads back into both of its T5 model classes with the same logits. tests/unit/test_adapterhub.py compares
those logits with ours, to 1e-5.
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "adapterhub"
DEMO_MODEL = "demo/tiny-t5"  # relative to ROOT: the committed exports name it so
TASK = "rte"
SCALE = 0.3  # the seeded weights are N(0, SCALE^2): every part of an adapter moves the logits
# Fixed inputs: two rows (the second padded), four decoder positions from the decoder start token (0).
INPUT_IDS = [[13, 57, 101, 7, 88, 140, 1], [44, 9, 150, 23, 1, 0, 0]]
ATTENTION_MASK = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]]
DECODER_INPUT_IDS = [[0, 12, 33, 5], [0, 71, 2, 9]]
# Our side: the method's registered key -> its arguments (tiny: d_model 64).
OURS = {
    "adapter": {"bottleneck": 8},
    "pfeiffer": {"bottleneck": 8, "non_linearity": "relu"},
    "phm_adapter": {"n": 4, "bottleneck": 8},
    "compacter": {"bottleneck": 8},
    "compacter++": {"bottleneck": 8, "rank": 2},
}
# AdapterHub's side: the method it maps to -> its config class, arguments, adapter name, and whether it is saved as
# safetensors (else pytorch_adapter.bin, the library's default). Each config keeps the library's own activation.
ADAPTERHUB = {
    "adapter": ("DoubleSeqBnConfig", {"reduction_factor": 10.6}, "houlsby", False),  # bottleneck int(64 // 10.6) = 6
    "pfeiffer": ("SeqBnConfig", {"reduction_factor": 8, "original_ln_before": False}, "pfeiffer", True),
    "phm_adapter": (
        "CompacterConfig",
        {"reduction_factor": 8, "phm_dim": 4, "shared_phm_rule": False, "factorized_phm_W": False},
        "phm",
        False,
    ),
    "compacter": ("CompacterConfig", {"reduction_factor": 8}, "compacter", False),
    "compacter++": (
        "CompacterPlusPlusConfig",
        {"reduction_factor": 16, "original_ln_before": False, "phm_rank": 2},
        "compacterpp",
        True,
    ),
}


def ours() -> None:
    sys.path.insert(0, str(ROOT))
    from compacter_pl.adapterhub import to_adapterhub, write_adapterhub
    from compacter_pl.export import model_export, write_export
    from compacter_pl.hub import load_t5
    from compacter_pl.methods import registry, trainable_names

    for index, (key, arguments) in enumerate(OURS.items()):
        model = load_t5(str(ROOT / DEMO_MODEL))
        method = registry.method_entry(key).build(**arguments, train_layer_norms=False)
        method.apply(model)
        generator = torch.Generator().manual_seed(index)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name in trainable_names(model):
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * SCALE)
        export = model_export(model, method, TASK, DEMO_MODEL)
        write_export(export, FIXTURES / "ours" / key)
        adapter, left_out = to_adapterhub(export)
        assert not left_out, left_out
        write_adapterhub(adapter, FIXTURES / "exported" / key)
        print(f"ours: {key}")


def adapterhub() -> None:
    import adapters
    import transformers
    from adapters import T5AdapterModel
    from transformers import T5ForConditionalGeneration

    inputs = {
        "input_ids": torch.tensor(INPUT_IDS),
        "attention_mask": torch.tensor(ATTENTION_MASK),
        "decoder_input_ids": torch.tensor(DECODER_INPUT_IDS),
    }

    @torch.no_grad()
    def logits(model) -> torch.Tensor:
        return model.eval()(**inputs).logits.contiguous()

    def loaded(folder: Path, model_class, **kwargs):
        """adapters' load of an adapter folder into a fresh model of `model_class`, and its logits."""
        if model_class is T5AdapterModel:
            model = T5AdapterModel.from_pretrained(ROOT / DEMO_MODEL)
        else:
            model = T5ForConditionalGeneration.from_pretrained(ROOT / DEMO_MODEL)
            adapters.init(model)
        info: dict = {}
        model.load_adapter(str(folder), set_active=True, loading_info=info, **kwargs)
        assert not info["missing_keys"] and not info["unexpected_keys"], info
        return logits(model)

    base = logits(T5ForConditionalGeneration.from_pretrained(ROOT / DEMO_MODEL))
    results = {**inputs, "base": base}
    for index, (key, (config_class, arguments, name, safetensors)) in enumerate(ADAPTERHUB.items()):
        model = T5AdapterModel.from_pretrained(ROOT / DEMO_MODEL)  # its seq2seq head is T5's own output layer
        assert torch.equal(logits(model), base)
        model.add_adapter(name, config=getattr(adapters, config_class)(**arguments), set_active=True)
        generator = torch.Generator().manual_seed(100 + index)
        with torch.no_grad():
            for parameter_name, parameter in model.named_parameters():
                if f".adapters.{name}." in parameter_name or f"shared_parameters.{name}." in parameter_name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * SCALE)
        own = logits(model)
        assert (own - base).abs().max() > 0.05, f"{key}: the adapter hardly moves the logits"
        folder = FIXTURES / "adapterhub" / key
        shutil.rmtree(folder, ignore_errors=True)  # what an earlier run saved in the other weights format
        folder.parent.mkdir(parents=True, exist_ok=True)
        model.save_adapter(str(folder), name, with_head=False, use_safetensors=safetensors)
        for model_class in (T5AdapterModel, T5ForConditionalGeneration):
            assert (loaded(folder, model_class, use_safetensors=safetensors) - own).abs().max() <= 1e-6, model_class
        results[f"adapterhub/{key}"] = own

        exported = FIXTURES / "exported" / key  # our export: by default adapters reads its pytorch_adapter.bin
        theirs = loaded(exported, T5ForConditionalGeneration)
        assert (loaded(exported, T5AdapterModel, use_safetensors=True) - theirs).abs().max() <= 1e-6
        assert (theirs - base).abs().max() > 0.05, f"{key}: our export hardly moves adapters' logits"
        results[f"exported/{key}"] = theirs
        print(f"adapterhub: {key} ({config_class}, {json.dumps(arguments)})")
    # one metadata entry: safetensors writes several in no fixed order, and the file would change on every run
    made_with = f"adapters {adapters.__version__}, transformers {transformers.__version__}, torch {torch.__version__}"
    save_file(results, str(FIXTURES / "logits.safetensors"), metadata={"made_with": made_with})
    print(f"adapterhub: {FIXTURES / 'logits.safetensors'} ({made_with})")


if __name__ == "__main__":
    steps = {"ours": ours, "adapterhub": adapterhub}
    if len(sys.argv) != 2 or sys.argv[1] not in steps:
        sys.exit(f"usage: python {sys.argv[0]} ours|adapterhub (see its docstring)")
    steps[sys.argv[1]]()
