"""An export of a PEFT method (`methods.Peft`) also holds PEFT's own files in `peft/` (PEFT's adapter_config.json is
another file than ours: a subfolder keeps both loaders' names), which `peft.PeftModel.from_pretrained` loads onto the
base T5 with the logits `AdapterBank` gives the same export; our loader still loads the export."""

import pytest
import torch
from huggingface_hub import ModelCard
from peft import PeftConfig, PeftModel

from compacter_pl.adapter_bank import AdapterBank
from compacter_pl.export import load_export, write_export
from compacter_pl.hub import load_t5, load_tokenizer
from tests.helpers import DEMO_MODEL, random_export

PEFT_CONFIGS = {
    "lora": {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q", "v"]},
    "lora-modules_to_save": {"peft_type": "LORA", "r": 4, "target_modules": ["k"], "modules_to_save": ["lm_head"]},
    "ia3": {"peft_type": "IA3", "target_modules": ["k", "v", "wo"], "feedforward_modules": ["wo"]},
    "loha": {"peft_type": "LOHA", "r": 4, "target_modules": ["q", "v"]},
    "oft": {"peft_type": "OFT", "r": 0, "oft_block_size": 4, "target_modules": ["q", "v"]},
    "ln_tuning": {"peft_type": "LN_TUNING", "target_modules": ["layer_norm"]},
    "fourierft": {"peft_type": "FOURIERFT", "n_frequency": 16, "target_modules": ["q", "v"]},
}


@pytest.mark.parametrize("case", sorted(PEFT_CONFIGS))
def test_peft_loads_a_peft_methods_export_with_the_banks_logits(case, tmp_path):
    out = write_export(random_export("lora", "rte", 3, peft_config=PEFT_CONFIGS[case]), tmp_path / "export")
    assert sorted(p.name for p in (out / "peft").iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert PeftConfig.from_pretrained(str(out), subfolder="peft").base_model_name_or_path == str(DEMO_MODEL)

    tokenizer = load_tokenizer(str(DEMO_MODEL))
    bank = AdapterBank(load_t5(str(DEMO_MODEL)), tokenizer)
    bank.add("rte", str(out))  # our loader reads its own two files, as for every method
    assert set(load_export(out).state_dict) == set(bank.exports["rte"].state_dict)
    peft_model = PeftModel.from_pretrained(load_t5(str(DEMO_MODEL)), str(out), subfolder="peft").eval()
    tokens = tokenizer(
        ["sentence1: A cat sat. sentence2: An animal sat.", "sentence1: The man sold a red house in Paris."],
        return_tensors="pt",
        padding=True,
    )
    decoder_input_ids = torch.tensor([[0, 7, 3, 11]] * 2)
    with torch.inference_mode():
        expected = bank.models["rte"](**tokens, decoder_input_ids=decoder_input_ids).logits
        actual = peft_model(**tokens, decoder_input_ids=decoder_input_ids).logits
        base = load_t5(str(DEMO_MODEL)).eval()(**tokens, decoder_input_ids=decoder_input_ids).logits
    assert not torch.allclose(expected, base, atol=1e-3)  # the adapter moves the outputs
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)

    card = ModelCard.load(out / "README.md").text
    assert "The `peft/` folder holds the same parameters" in card
    assert f'PeftModel.from_pretrained(t5, "{out}", subfolder="peft")' in card


def test_other_methods_write_no_library_folder(tmp_path):
    out = write_export(random_export("compacter", "rte", 1), tmp_path / "export")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "adapter.safetensors", "adapter_config.json"]
