"""An export's README.md: front matter the Hugging Face Hub reads (parsed here with huggingface_hub's own ModelCard),
a model-index with the validation metrics of the weights exported and only those, and a body that says how to load
the adapter, what trained it and how to cite the paper."""

import copy
import json

import pytest
from huggingface_hub import ModelCard

from compacter_pl.export import is_export_folder, validation_of
from compacter_pl.model_card import PAPER_BIBTEX, model_card
from compacter_pl.tasks import get_task
from tests.helpers import in_process, random_export


def test_an_export_has_a_card_the_hub_reads(trained, tmp_path, capsys):
    out = tmp_path / "export"
    code, printed, err = in_process(
        capsys, "export", "--ckpt_path", str(trained), "--out", str(out), "--license", "mit"
    )
    assert code == 0, err
    assert "README.md" in printed
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "adapter.safetensors", "adapter_config.json"]
    card = ModelCard.load(out / "README.md")
    data = card.data
    assert data.library_name == "compacter-pl" and data.license == "mit"
    assert {"compacter-pl", "full", "rte", "glue"} <= set(data.tags)
    assert data.datasets == ["nyu-mll/glue"]
    validation = json.loads((out / "adapter_config.json").read_text())["metrics"]["validation"]  # None: not at step 2
    assert [(r.metric_name, r.metric_value) for r in data.eval_results or []] == [
        (name, round(value, 4)) for name, value in (validation or {}).items() if name != "score"
    ]
    for fragment in (
        'bank.add("rte", "' + str(out) + '")',
        f"python cli.py predict --adapter {out} --data.predict_file inputs.jsonl",
        "178,944 parameters (100% of the base model's 178,944)",
        "T5 fine-tuning (`full`, `compacter_pl.methods.full.FullFineTuning`)",
        "max_source_length 128 tokens (EOS included), truncation `end`",
        "an input is rendered as `sentence1: {sentence1} sentence2: {sentence2}`",
        PAPER_BIBTEX,
    ):
        assert fragment in card.text, fragment
    assert is_export_folder(out)

    code, _, err = in_process(capsys, "export", "--ckpt_path", str(trained), "--out", str(out), "--overwrite")
    assert code == 0, err
    assert ModelCard.load(out / "README.md").data.license == "apache-2.0"  # the card is replaced with the rest


def validated(task: str, **validation: float) -> dict:
    config = copy.deepcopy(random_export("bitfit", task, 0).config)
    config["base_model"] = "google-t5/t5-base"
    config["metrics"] = {"best_val_score": 0.5, "epoch": 3, "global_step": 400, "validation": validation or None}
    config["data"] = {
        "task": task,
        "template": get_task(task).template,
        "max_source_length": 128,
        "truncation": "fields",
        "max_target_length": 128,
        "max_new_tokens": None,
        "eval_mode": "rank",
        "dataset": get_task(task).hub_path,
        "dataset_config": get_task(task).hub_config,
        "revision": get_task(task).dataset.revision,
        "data_dir": None,
        "data_seed": 7,
        "validation_size": 1000,
        "train_size": None,
    }
    return config


@pytest.mark.parametrize(
    ("task", "split", "held_out"),
    [
        ("cola", "validation", "half of the validation split, drawn with data_seed 7"),
        ("sst2", "train", "1000 training records held out with data_seed 7"),
    ],
)
def test_the_model_index_holds_the_validation_of_the_weights_exported(task, split, held_out):
    metric = get_task(task).metrics[0]
    text = model_card(validated(task, **{metric: 0.71234, "score": 0.71234}), "user/repo", "apache-2.0")
    card = ModelCard(text)
    assert card.data.base_model == "google-t5/t5-base"  # a Hub name: the Hub links the base model
    assert card.data.model_name == "repo"
    (result,) = card.data.eval_results  # the mean `score` is no metric of the Hub's
    assert (result.metric_type, result.metric_name, result.metric_value) == (
        {"matthews": "matthews_correlation", "accuracy": "accuracy"}[metric],
        metric,
        0.7123,
    )
    assert (result.dataset_type, result.dataset_config, result.dataset_split) == (
        get_task(task).hub_path,
        get_task(task).hub_config,
        split,
    )
    assert result.dataset_revision == get_task(task).dataset.revision
    assert result.dataset_args == {"validation": held_out}
    assert 'bank.add("' + task + '", "user/repo")' in card.text
    assert "| " + metric + " | 0.7123 |" in card.text


def test_weights_that_were_not_validated_get_no_model_index():
    card = ModelCard(model_card(validated("rte"), "exports/rte", "apache-2.0"))
    assert card.data.eval_results is None
    assert "The exported weights (step 400) were not validated (the run's best validation score was 0.5000" in card.text
    old = validated("rte")
    del old["data"]  # an export from before data settings were recorded
    card = ModelCard(model_card(old, "exports/rte", "apache-2.0"))
    assert card.data.eval_results is None and "an input is read whole, up to 512 tokens" in card.text


def test_a_local_base_model_is_not_named_as_a_hub_model(tmp_path):
    config = validated("rte", accuracy=0.5)
    config["base_model"] = str(tmp_path)  # where the run loaded it from
    card = ModelCard(model_card(config, "user/repo", "apache-2.0"))
    assert card.data.base_model is None
    assert f"on `{tmp_path}` (a local directory where it was trained: load the same model)" in card.text


def test_a_checkpoints_validation_is_the_exported_weights_only_when_it_was_at_their_step():
    best = {"score": 0.6, "checkpoint": "best.ckpt", "step": 40, "epoch": 1, "metrics": {"accuracy": 0.6}}
    assert validation_of({"global_step": 40, "callbacks": {"RunSummary": {"best": best}}}) == {"accuracy": 0.6}
    assert validation_of({"global_step": 41, "callbacks": {"RunSummary": {"best": best}}}) is None  # later weights
    assert validation_of({"global_step": 40, "callbacks": {}}) is None


def test_an_export_folder_may_hold_its_card_and_a_library_folder(tmp_path):
    for name in ("adapter_config.json", "adapter.safetensors", "README.md"):
        (tmp_path / name).write_text("")
    (tmp_path / "peft").mkdir()
    assert is_export_folder(tmp_path)
    (tmp_path / "notes.txt").write_text("")
    assert not is_export_folder(tmp_path)
