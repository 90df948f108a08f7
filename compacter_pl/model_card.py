"""An export's model card, the `README.md` the Hugging Face Hub shows: YAML front matter the Hub reads (base model,
library, license, tags, datasets, and a model-index with the validation metrics of the exported weights, where
the checkpoint holds them) written with huggingface_hub's own `ModelCardData`, and a body that says how to load the
adapter, what method and data settings trained it, how many parameters it trains, and the paper to cite.

Everything comes from the export's config (`compacter_pl.export`): a checkpoint holds no test scores (test runs
after fit, on weights already saved), so the card reports validation only.
"""

import json
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import T5Config

from compacter_pl.architectures import build_t5, count_parameters
from compacter_pl.errors import UserError
from compacter_pl.hub import is_repo_id
from compacter_pl.methods import registry
from compacter_pl.metrics import METRICS
from compacter_pl.tasks import Task, get_task

LIBRARY_NAME = "compacter-pl"
PAPER_BIBTEX = """@inproceedings{karimi-mahabadi-etal-2021-compacter,
  title     = {Compacter: Efficient Low-Rank Hypercomplex Adapter Layers},
  author    = {Karimi Mahabadi, Rabeeh and Henderson, James and Ruder, Sebastian},
  booktitle = {Advances in Neural Information Processing Systems},
  volume    = {34},
  pages     = {1022--1035},
  year      = {2021}
}"""


def method_key_and_name(method: dict) -> tuple[str, str]:
    """The registry key and display name of an export's method (its class name where no key matches)."""
    cls = registry.method_class(method.get("class_path", ""))
    entry = registry.entry_of_config(cls, method.get("init_args")) if cls is not None else None
    if entry is not None:
        return entry.key, entry.name
    name = str(method.get("class_path", "")).rpartition(".")[2]
    return name.lower(), name


def hub_base_model(name: str) -> str | None:
    """The base model as the Hub's `base_model` metadata names it: a Hub repository id, not a local directory."""
    if Path(name).exists() or name.startswith((".", "~")) or not is_repo_id(name):
        return None
    return name


def base_parameters(architecture: dict) -> int:
    """The parameters of the base model an export was trained on (its architecture, on the meta device)."""
    return count_parameters(build_t5(T5Config(**architecture), device="meta"))


def _task(config: dict) -> Task | None:
    try:
        return get_task(config["task"])
    except UserError:  # a task of the user's own that this process has not registered
        return None


def _validation_split(task: Task, data: dict) -> tuple[str, dict]:
    """The original split validation was drawn from, and how (the paper's rule, `data.datamodule.paper_splits`)."""
    if task.small:
        how = {"validation": f"half of the {task.test_split} split, drawn with data_seed {data.get('data_seed')}"}
        return task.test_split, how
    size = data.get("validation_size")
    return "train", {"validation": f"{size} training records held out with data_seed {data.get('data_seed')}"}


def card_data(config: dict, license: str, model_name: str) -> ModelCardData:
    """The front matter: what the Hub indexes and shows beside the card."""
    key, _ = method_key_and_name(config["method"])
    task = _task(config)
    data = config.get("data") or {}
    tags = [LIBRARY_NAME, key, config["task"], "t5", "text2text"]
    if task is not None:
        tags.insert(3, task.benchmark.lower())
    results = []
    validation = (config.get("metrics") or {}).get("validation") or {}
    if task is not None and data:
        split, how = _validation_split(task, data)
        local = data.get("data_dir") is not None
        for name, value in validation.items():
            if name not in METRICS:  # `score`, the mean the checkpoint selection reads
                continue
            results.append(
                EvalResult(
                    task_type="text-classification" if task.targets is not None else "question-answering",
                    dataset_type=task.hub_path,
                    dataset_name=f"{task.benchmark} {task.display_name}" + (" (local files)" if local else ""),
                    dataset_config=task.hub_config,
                    dataset_split=split,
                    dataset_revision=None if local else data.get("revision"),
                    dataset_args=how,
                    metric_type=METRICS[name].hub_type,
                    metric_name=name,
                    metric_value=round(value, 4),
                )
            )
    return ModelCardData(
        base_model=hub_base_model(config["base_model"]),
        library_name=LIBRARY_NAME,
        license=license,
        tags=tags,
        datasets=[task.hub_path] if task is not None else None,
        model_name=model_name,
        eval_results=results or None,
    )


def model_card(config: dict, source: str, license: str, library_usage: str | None = None) -> str:
    """The README.md of an export with `config` that loads from `source` (a Hub repository or a folder);
    `library_usage`: the Python that loads the files of the library the method wraps (`Method.write_library_files`),
    `{source}` and `{subfolder}` standing for where they are."""
    key, method_name = method_key_and_name(config["method"])
    task = _task(config)
    data = config.get("data")
    base = config["base_model"]
    model_name = source.rstrip("/").rpartition("/")[2] or f"{config['task']}-{key}"
    front = card_data(config, license, model_name)
    task_name = f"{task.benchmark} {task.display_name}" if task is not None else config["task"]
    record = {field: "..." for field in task.input_fields} if task is not None else {}
    trainable = config["trainable_parameters"]
    total = base_parameters(config["base_architecture"])
    on_hub = hub_base_model(base) is not None
    lines = [
        f"# {task_name}: {method_name} on {base}",
        "",
        "Parameters trained with compacter-pl (T5 fine-tuned on GLUE "
        f"and SuperGLUE with Compacter and the baselines of its paper): {method_name} on `{base}`"
        f"{'' if on_hub else ' (a local directory where it was trained: load the same model)'}, for "
        f"{task_name}. It holds only what trained, {trainable:,} parameters ({100 * trainable / total:.4g}% of the "
        f"base model's {total:,}), loaded onto the base model.",
        "",
        "## Use it",
        "",
        "```python",
        "from compacter_pl.adapter_bank import AdapterBank",
        "from compacter_pl.hub import load_t5, load_tokenizer",
        "",
        f"bank = AdapterBank(load_t5({json.dumps(base)}), load_tokenizer({json.dumps(base)}))",
        f"bank.add({json.dumps(config['task'])}, {json.dumps(source)})",
        f"bank.predict({json.dumps(config['task'])}, [{json.dumps(record)}])",
        "```",
        "",
        "or on the command line, for a JSON Lines file of records in the task's fields:",
        "",
        "```bash",
        f"python cli.py predict --adapter {source} --data.predict_file inputs.jsonl --predictions.output preds.jsonl",
        "```",
        "",
    ]
    if library_usage is not None:
        folder = registry.method_class(config["method"]["class_path"]).library_folder  # type: ignore[union-attr]
        usage = library_usage.replace("{source}", source).replace("{subfolder}", str(folder))
        lines += [
            f"The `{folder}/` folder holds the same parameters in the layout of the library the method wraps, which "
            "loads them without compacter-pl:",
            "",
            "```python",
            usage,
            "```",
            "",
        ]
    lines += [
        "## Method",
        "",
        f"{method_name} (`{key}`, `{config['method']['class_path']}`) with the arguments:",
        "",
        "```json",
        json.dumps(config["method"].get("init_args") or {}, indent=2, default=str),
        "```",
        "",
        "## Data",
        "",
        *_data_lines(config, task, data),
        "",
        "## Results",
        "",
        *_result_lines(config, task),
        "",
        "## Citation",
        "",
        "```bibtex",
        PAPER_BIBTEX,
        "```",
        "",
    ]
    return ModelCard(f"---\n{front.to_yaml()}\n---\n\n" + "\n".join(lines)).content


def _data_lines(config: dict, task: Task | None, data: dict | None) -> list[str]:
    if data is None:
        return [
            f"Task `{config['task']}`. This export predates recorded data settings: an input is read whole, up to "
            "512 tokens."
        ]
    where = (
        f"local files ({data['data_dir']})"
        if data.get("data_dir")
        else f"`{data['dataset']}` ({data['dataset_config']}, revision {data['revision']})"
    )
    lines = [
        f"- task `{data['task']}`, from {where}; an input is rendered as `{data['template']}`",
        f"- max_source_length {data['max_source_length']} tokens (EOS included), truncation `{data['truncation']}`: "
        "a longer input is cut as training cut it",
        f"- max_target_length {data['max_target_length']}, max_new_tokens "
        f"{data['max_new_tokens'] or 'the longest target'}, eval_mode {data['eval_mode']}",
        f"- data_seed {data['data_seed']}, validation_size {data['validation_size']}, train_size "
        f"{data['train_size'] if data['train_size'] is not None else 'all'}",
    ]
    if task is not None:
        split, how = _validation_split(task, data)
        lines.append(f"- validation: {how['validation']}")
    return lines


def _result_lines(config: dict, task: Task | None) -> list[str]:
    metrics = config.get("metrics") or {}
    validation = metrics.get("validation")
    step = metrics.get("global_step")
    if not validation:
        best = metrics.get("best_val_score")
        run = f" (the run's best validation score was {best:.4f}, at another step)" if best is not None else ""
        return [f"The exported weights (step {step}) were not validated{run}."]
    rows = [f"Validation at step {step} (epoch {metrics.get('epoch')}), the weights exported:", ""]
    rows += ["| metric | value |", "| --- | --- |"]
    rows += [f"| {name} | {value:.4f} |" for name, value in validation.items()]
    return rows
