"""`cli.py bench` and the efficiency options: the benchmark runs and its report is well-formed (never a timing
check), the padding report, rank classification, gradient checkpointing with a frozen base, fused AdamW."""

import json
import statistics
from dataclasses import replace

import pytest
import torch

from compacter_pl.architectures import build_t5, count_parameters
from compacter_pl.data.collate import TextToTextCollator
from compacter_pl.hub import load_tokenizer
from compacter_pl.methods import Adapter, Compacter, LayerNormOnly, PromptTuning, trainable_parameters
from compacter_pl.tools.bench import runner
from compacter_pl.tools.bench.options import BenchOptions
from compacter_pl.tools.bench.padding import real_token_fraction
from compacter_pl.tools.bench.rows import BENCH_ROWS, FLOOR, TABLE3_SETTINGS, build_method
from compacter_pl.tools.bench.runner import add_ratios, aggregate, format_report
from compacter_pl.tools.bench.worker import measure
from compacter_pl.tools.paper import paper
from compacter_pl.training.module import TextToTextModule
from compacter_pl.training.steps import (
    build_optimizer,
    enable_gradient_checkpointing,
    label_log_likelihoods,
    padded_label_ids,
)
from tests.helpers import DEMO_DATA, DEMO_MODEL, in_process, one_line_error, quiet_trainer

MiB = 2**20
TINY = {"compacter": {"bottleneck": 8, "n": 4}}  # what fits the tiny demo model (64 wide)


# --- the benchmark through cli.py ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_bench_on_the_tiny_model_prints_the_table_and_writes_consistent_json(cli, tmp_path):
    out = tmp_path / "bench.json"
    result = cli(
        "bench",
        "--model",
        str(DEMO_MODEL),
        "--methods",
        "full",
        "ln_only",
        "compacter",
        "compacter++",
        "--source_length",
        "16",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--eval_steps",
        "1",
        "--data_dir",
        str(DEMO_DATA / "rte"),
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("T5 fine-tuning", "LN-only floor", "Compacter", "Compacter++", "Evaluation", "Padding"):
        assert name in result.stdout
    report = json.loads(out.read_text())
    entries = {e["key"]: e for e in report["methods"]}
    assert list(entries) == ["full", "ln_only", "compacter", "compacter++"]
    full, floor = entries["full"], entries["ln_only"]
    for entry in entries.values():
        assert "error" not in entry, entry
        assert entry["trainable"] > 0 and entry["step_seconds"] > 0 and entry["peak_memory_bytes"] > 0
        assert entry["eval_generate_examples_per_second"] > 0 and entry["eval_rank_examples_per_second"] > 0
        assert entry["frozen_parameters_with_grad"] == 0
        # vs full FT: both rows paired with the floor, their paired ratios divided
        own_ratio, full_ratio = 1 + entry["step_vs_floor_percent"] / 100, 1 + full["step_vs_floor_percent"] / 100
        assert entry["step_vs_full_percent"] == pytest.approx(100 * (own_ratio / full_ratio - 1))
        assert entry["step_vs_floor_separate_percent"] == pytest.approx(
            100 * (entry["step_seconds"] / floor["step_seconds"] - 1)
        )
        if entry is floor:
            assert "paired_step_ratios" not in entry and entry["step_vs_floor_percent"] == 0
        else:  # steps alternating with an LN-only model in the same process: the median of the per-pair ratios
            assert len(entry["paired_step_ratios"]) == 2
            assert entry["step_vs_floor_percent"] == pytest.approx(
                100 * (statistics.median(entry["paired_step_ratios"]) - 1)
            )
        assert entry["memory_vs_full_percent"] == pytest.approx(
            100 * (entry["peak_memory_bytes"] / full["peak_memory_bytes"] - 1)
        )
        assert entry["memory_vs_floor_percent"] == pytest.approx(
            100 * (entry["peak_memory_bytes"] / floor["peak_memory_bytes"] - 1)
        )
    assert full["trainable"] == full["total_parameters"] == count_parameters(build_t5(DEMO_MODEL / "config.json"))
    assert floor["trainable"] == 4 * 64 * 3  # 2 + 3 block norms per encoder / decoder block pair, + 2 finals
    compacter = entries["compacter"]
    assert compacter["paper_time_vs_t5_percent"] == pytest.approx(-13.41, abs=0.005)  # printed the same way
    assert compacter["paper_time_printed_percent"] == -13.41
    assert compacter["paper_memory_vs_t5_percent"] == pytest.approx(-26.24, abs=0.005)  # printed: -35.57
    # the share of the settings run (n 4 on the tiny model), beside the paper's printed one
    assert compacter["percent_trainable"] == pytest.approx(100 * compacter["trainable"] / compacter["total_parameters"])
    assert f"{compacter['percent_trainable']:.3g}%" in result.stdout and compacter["paper_trained_printed"] == "0.073%"
    assert report["paper"]["differs"] == [f"model {DEMO_MODEL}"]
    assert "the paper's columns are google-t5/t5-base with Table 3's settings" in result.stdout
    assert all(entry["step_page_faults"] >= 0 for entry in entries.values())
    assert "page faults per timed step (the allocator keeps freed memory" in result.stdout
    assert 0 < report["padding"]["ungrouped"] <= report["padding"]["grouped"] <= 1


# --- the pieces, in process ---------------------------------------------------------------------------------------


def test_every_method_gets_its_table3_settings_by_key():
    assert build_method("compacter").n == 4 and build_method("compacter").bottleneck == 24
    assert build_method("phm_adapter").n == 4  # its own default is 12; Table 3 uses 4
    assert build_method("prompt_vocab").num_tokens == 100 and build_method("prompt_vocab").init == "vocab"
    assert build_method("intrinsic_said").intrinsic_dim == TABLE3_SETTINGS["intrinsic_said"]["intrinsic_dim"] == 1400
    assert isinstance(build_method("ln_only"), LayerNormOnly)
    # Table 3's rows in paper_results.yaml give them, by key: no argument name is applied across methods
    assert TABLE3_SETTINGS == {row.method: dict(row.args) for row in paper().efficiency.rows if row.args}
    assert TABLE3_SETTINGS["adapter"] == {"bottleneck": 24} and "lora" not in TABLE3_SETTINGS
    assert build_method("compacter", {"compacter": {"n": 8}}).bottleneck == Compacter().bottleneck  # only its own
    assert build_method("adapter", {"compacter": {"bottleneck": 8}}).bottleneck == Adapter().bottleneck
    assert {row.key for row in BENCH_ROWS} >= {"full", "ln_only", "compacter", "compacter++", "intrinsic_said"}


def test_the_floor_trains_exactly_the_62_layer_norms_of_t5_base():
    model = build_t5("t5-base")  # meta device: nothing allocated
    FLOOR.build().apply(model)
    names = [name for name, _ in trainable_parameters(model)]
    assert len(names) == 62 and all("layer_norm" in name for name in names)
    assert count_parameters(model, trainable_only=True) == FLOOR.t5_base_params == 47_616


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"pair_with_floor": True, "steps": 3, "warmup": 1},
        {"precision": "bf16-mixed"},
        {"gradient_checkpointing": True},
        {"keep_freed_memory": False},
        {"low_threshold_throughout": True},
    ],
    ids=["plain", "paired", "bf16-mixed", "checkpointing", "returning-freed-memory", "low-threshold-throughout"],
)
def test_worker_measures_a_method_in_process_without_gradients_on_frozen_weights(options):
    spec = {"steps": 1, "warmup": 0, "pair_with_floor": False, **options}
    result = measure(
        BenchOptions(model=str(DEMO_MODEL), source_length=8, eval_steps=1, device="cpu", **spec, init_args=TINY),
        "compacter",
    )
    assert result["trainable"] == count_parameters_of("compacter")
    assert len(result["step_seconds_all"]) == spec["steps"]
    assert len(result["floor_step_seconds_all"]) == (spec["steps"] if options.get("pair_with_floor") else 0)
    assert result["step_seconds"] > 0 and result["peak_memory_bytes"] > 0 and result["step_page_faults"] >= 0
    assert (result["floor_step_page_faults"] is not None) == bool(options.get("pair_with_floor"))
    assert result["frozen_parameters_with_grad"] == 0
    assert result["eval_generate_examples_per_second"] > 0 and result["eval_rank_examples_per_second"] > 0


@pytest.mark.parametrize(
    "key, regions",
    [("compacter", {"adapter": 2 * 8}), ("intrinsic_said", {"fastfood projection": None}), ("ln_only", {})],
)
def test_the_profiled_step_splits_a_methods_own_layers_from_the_rest(key, regions):
    """The tiny T5 has 2 + 2 blocks: Compacter's 8 adapters (after attention and after the feed-forward of each
    block) each enter their region in the forward and in the backward; SAID's projections in both too; the floor
    has no layers of its own."""
    options = BenchOptions(model=str(DEMO_MODEL), source_length=8, eval_steps=0, device="cpu", init_args=TINY)
    tiny_said = {**TINY, "intrinsic_said": {"intrinsic_dim": 64}}
    result = measure(replace(options, steps=1, warmup=0, pair_with_floor=False, init_args=tiny_said), key)
    assert set(result["region_seconds"]) == set(regions) == set(result["region_calls"])
    for name, calls in regions.items():
        assert 0 < result["region_seconds"][name] < result["profiled_step_seconds"]
        if calls is None:  # one forward and one backward per projection chunk
            assert result["region_calls"][name] >= 2 and result["region_calls"][name] % 2 == 0
        else:
            assert result["region_calls"][name] == calls
    unprofiled = measure(replace(options, steps=1, warmup=0, pair_with_floor=False, split_step=False), key)
    assert "region_seconds" not in unprofiled and "profiled_step_seconds" not in unprofiled


def test_the_measured_step_is_fits_training_step_and_optimizer(monkeypatch):
    """bench times the LightningModule's own training_step and the optimizer of its configure_optimizers: a change to
    fit's step changes what bench measures."""
    calls = {"training_step": 0, "configure_optimizers": 0}

    def counted(name: str):
        real = getattr(TextToTextModule, name)

        def spy(self, *args, **kwargs):
            calls[name] += 1
            return real(self, *args, **kwargs)

        return spy

    for name in calls:
        monkeypatch.setattr(TextToTextModule, name, counted(name))
    options = BenchOptions(
        model=str(DEMO_MODEL),
        source_length=8,
        eval_steps=0,
        init_args={"compacter": {"bottleneck": 8, "n": 4}},
        device="cpu",
    )
    result = measure(replace(options, steps=2, warmup=1, pair_with_floor=False, split_step=False), "compacter")
    assert len(result["step_seconds_all"]) == 2
    assert calls == {"training_step": 2 + 1 + 2, "configure_optimizers": 1}  # the memory steps, warm-up, timed


def count_parameters_of(key: str) -> int:
    model = build_t5(DEMO_MODEL / "config.json")
    build_method(key, TINY).apply(model)
    return count_parameters(model, trainable_only=True)


def fake_result(key: str, step: float, memory: int) -> dict:
    return {
        "key": key,
        "total_parameters": 1000,
        "trainable": 10,
        "step_seconds": step,
        "step_cpu_seconds": step,
        "step_seconds_all": [step, step * 1.1, step * 0.9],
        "peak_memory_bytes": memory,
        "memory_after_build_bytes": memory // 2,
        "frozen_parameters_with_grad": 0,
        "eval_generate_examples_per_second": 4.0,
        "eval_rank_examples_per_second": 5.0,
        "threads": 2,
    }


def test_report_ratios_follow_from_the_medians_and_errors_are_listed():
    entries = [
        aggregate("full", [fake_result("full", 2.0, 400 * MiB), fake_result("full", 4.0, 600 * MiB)], "wall"),
        aggregate("ln_only", [fake_result("ln_only", 1.0, 200 * MiB)], "wall"),
        aggregate("compacter", [fake_result("compacter", 1.02, 210 * MiB)], "wall"),
        aggregate("bitfit", [{"key": "bitfit", "error": "RuntimeError: boom"}], "wall"),
    ]
    add_ratios(entries)
    full, floor, compacter, bitfit = entries
    # Steps: the median of every step of every round; memory: the median over rounds.
    assert full["step_seconds"] == pytest.approx(2.9) and full["peak_memory_bytes"] == 500 * MiB
    assert floor["step_vs_full_percent"] == pytest.approx(100 * (1 / 2.9 - 1))
    assert compacter["step_vs_floor_percent"] == pytest.approx(2.0)
    assert compacter["memory_vs_floor_percent"] == pytest.approx(5.0)
    assert compacter["memory_vs_full_percent"] == pytest.approx(-58.0)
    assert "error" in bitfit and bitfit["paper_time_vs_t5_percent"] == pytest.approx(-35.06, abs=0.005)
    report = {
        "options": {
            "model": "tiny",
            "batch_size": 8,
            "source_length": 128,
            "target_length": 3,
            "device": "cpu",
            "precision": "32-true",
            "clock": "wall",
            "steps": 3,
            "warmup": 1,
            "rounds": 2,
            "gradient_checkpointing": False,
            "compile": False,
            "num_labels": 2,
            "settings": TABLE3_SETTINGS,
        },
        "methods": entries,
        "padding": {"skipped": "no data"},
    }
    text = format_report(report)
    assert "LN-only floor" in text and "+2.0%" in text and "+5.0%" in text
    assert "BitFit: not measured (RuntimeError: boom)" in text
    assert "Padding: skipped, no data" in text


def test_paired_steps_give_the_floor_ratio_and_separate_runs_stay_reported():
    paired = fake_result("compacter", 1.0, 210 * MiB)
    paired["step_seconds_all"], paired["floor_step_seconds_all"] = [1.0, 2.2, 3.0], [1.0, 2.0, 2.0]
    entries = [
        aggregate("ln_only", [fake_result("ln_only", 1.0, 200 * MiB)], "wall"),
        aggregate("compacter", [paired], "wall"),
    ]
    add_ratios(entries)
    floor, compacter = entries
    assert compacter["paired_step_ratios"] == [1.0, 1.1, 1.5]
    assert compacter["step_vs_floor_percent"] == pytest.approx(10.0)  # the median pair, not 2.2 s / 1.0 s
    assert compacter["step_vs_floor_separate_percent"] == pytest.approx(120.0)
    assert compacter["step_vs_floor_paired_iqr_percent"] == pytest.approx([5.0, 30.0])
    assert "paired_step_ratios" not in floor and floor["step_vs_floor_percent"] == 0


def test_a_method_killed_while_keeping_freed_memory_is_measured_again_unmapping_freed_blocks(monkeypatch, tmp_path):
    measured = []

    def worker(options, key, workdir):
        measured.append(options)
        if not options.low_threshold_throughout:
            return {"key": key, "error": "killed by signal 9 (out of memory?)", "killed": True}
        return fake_result(key, 1.0, 200 * MiB)

    monkeypatch.setattr(runner, "run_worker", worker)
    report = runner.run_bench(BenchOptions(methods=["intrinsic_said"], device="cpu"))
    assert [(o.keep_freed_memory, o.low_threshold_throughout) for o in measured] == [(True, False), (False, True)]
    (entry,) = report["methods"]
    assert "error" not in entry and "ran out of memory with freed memory kept" in entry["note"]
    assert "Intrinsic-SAID: ran out of memory" in format_report(report)
    assert format_report(report).splitlines()[-1].startswith("Padding: skipped, no RTE data given (--data_dir")


def test_real_token_fraction_on_a_synthetic_length_list():
    lengths = [1] * 50 + [100] * 50
    # Grouped: the window holds all 100 examples, sorted, so each batch of 50 has one length: no padding.
    assert real_token_fraction(lengths, 50, group_by_length=True) == 1.0
    # Not grouped: both batches (almost surely) hold a 100, so every example is padded to 100.
    assert real_token_fraction(lengths, 50, group_by_length=False) == pytest.approx(5050 / 10000)
    assert real_token_fraction([7] * 10, 3, group_by_length=False) == 1.0


# --- rank classification ------------------------------------------------------------------------------------------


def demo_batch(tokenizer, pairs):
    rows = [
        {
            "input_ids": tokenizer(s)["input_ids"],
            "labels": tokenizer(t)["input_ids"],
            "label": int(t),
            "group": -1,
            "answers": [],
            "id": i,
        }
        for i, (s, t) in enumerate(pairs)
    ]
    return TextToTextCollator(tokenizer.pad_token_id)(rows)


def reference_log_likelihood(model, input_ids, attention_mask, label_ids: list[int]) -> torch.Tensor:
    """sum_t log p(label_t | ...) for one candidate, from the model's own loss (mean over the label's tokens)."""
    labels = torch.tensor([label_ids] * input_ids.shape[0])
    logits = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
    return logits.log_softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1).sum(-1)


@pytest.mark.parametrize("method", [LayerNormOnly(), PromptTuning(num_tokens=3)], ids=["plain", "prompt"])
def test_label_log_likelihoods_equal_one_forward_per_candidate(method):
    torch.manual_seed(0)
    model = build_t5(DEMO_MODEL / "config.json", device="cpu")
    method.apply(model)
    model.eval()
    input_ids = torch.randint(2, 200, (3, 9))
    attention_mask = torch.ones_like(input_ids)
    input_ids[1, 6:], attention_mask[1, 6:] = 0, 0  # a padded source
    candidates = [[5, 1], [7, 8, 9, 1], [11, 1]]  # of different lengths
    with torch.no_grad():
        scores = label_log_likelihoods(model, input_ids, attention_mask, padded_label_ids(candidates))
        expected = torch.stack(
            [reference_log_likelihood(model, input_ids, attention_mask, c) for c in candidates], dim=1
        )
    assert scores.shape == (3, 3)
    assert torch.allclose(scores, expected, atol=1e-4)


def test_rank_mode_returns_the_most_likely_valid_label():
    torch.manual_seed(0)
    module = TextToTextModule(str(DEMO_MODEL), method=Compacter(bottleneck=8), task="rte", eval_mode="rank").eval()
    tokenizer = load_tokenizer(str(DEMO_MODEL))
    batch = demo_batch(
        tokenizer,
        [
            ("sentence1: a b. sentence2: a b.", "0"),
            ("sentence1: a b. sentence2: c.", "1"),
            ("sentence1: x y z. sentence2: q.", "1"),
        ],
    )
    with torch.no_grad():
        outputs = module.outputs(batch)
        likelihoods = torch.stack(
            [
                reference_log_likelihood(
                    module.model, batch["input_ids"], batch["attention_mask"], tokenizer(t)["input_ids"]
                )
                for t in ("0", "1")
            ],
            dim=1,
        )
    assert set(outputs) <= {"0", "1"}
    assert outputs == [("0", "1")[i] for i in likelihoods.argmax(-1).tolist()]
    record = TextToTextModule(str(DEMO_MODEL), method=LayerNormOnly(), task="record", eval_mode="rank")
    assert record.eval_mode == "generate"  # free text: no label set to rank


# --- gradient checkpointing and the optimizer ---------------------------------------------------------------------


def loss_and_grads(checkpointing: bool):
    torch.manual_seed(0)
    model = build_t5(DEMO_MODEL / "config.json", device="cpu")
    Compacter(bottleneck=8).apply(model)
    if checkpointing:
        enable_gradient_checkpointing(model)
    model.train()
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(2, 200, (4, 12), generator=generator)
    labels = torch.randint(2, 200, (4, 3), generator=generator)
    loss = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels, use_cache=False).loss
    loss.backward()
    return loss.detach(), {name: p.grad for name, p in trainable_parameters(model)}, model


def test_gradient_checkpointing_with_a_frozen_base_gives_the_same_loss_and_gradients():
    loss, grads, _ = loss_and_grads(checkpointing=False)
    checkpointed_loss, checkpointed_grads, model = loss_and_grads(checkpointing=True)
    assert model.encoder.gradient_checkpointing and not model.shared.weight.requires_grad
    assert torch.allclose(loss, checkpointed_loss, atol=1e-6)
    assert grads.keys() == checkpointed_grads.keys() and any(".adapter." in name for name in grads)
    for name, grad in grads.items():
        assert checkpointed_grads[name] is not None, f"{name} got no gradient with checkpointing"
        assert torch.allclose(grad, checkpointed_grads[name], atol=1e-6, rtol=1e-4), name
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def test_module_options_checkpointing_and_fused_adamw_over_the_trainable_parameters_only():
    module = TextToTextModule(str(DEMO_MODEL), method=Compacter(bottleneck=8), task="rte", gradient_checkpointing=True)
    assert module.model.encoder.gradient_checkpointing and module._training_model is module.model
    trainable = [p for _, p in trainable_parameters(module.model)]
    optimizer = build_optimizer(trainable, learning_rate=1e-3)
    assert optimizer.defaults["fused"] is True  # all on one CPU (or CUDA) device
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(trainable)
    assert len(trainable) < len(list(module.model.parameters()))


# --- evaluation: one bounded generation pass per batch, nothing teacher-forced -------------------------------------


@pytest.mark.parametrize("eval_mode", ["generate", "rank"])
def test_validation_runs_one_bounded_pass_per_batch_and_no_teacher_forced_loss(tmp_path, monkeypatch, eval_mode):

    from compacter_pl.data import TextToTextDataModule

    data = TextToTextDataModule(
        task="rte",
        tokenizer=str(DEMO_MODEL),
        data_dir=str(DEMO_DATA / "rte"),
        batch_size=8,
        eval_batch_size=16,
        cache_dir=str(tmp_path / "cache"),
    )
    module = TextToTextModule(str(DEMO_MODEL), method=Compacter(bottleneck=8), task="rte", eval_mode=eval_mode)
    generate_calls, forward_calls = [], []
    real_generate, real_forward = module.model.generate, module.model.forward

    def spy_generate(*args, **kwargs):
        generate_calls.append(kwargs["max_new_tokens"])
        return real_generate(*args, **kwargs)

    def spy_forward(*args, **kwargs):
        forward_calls.append(kwargs.get("labels"))
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(module.model, "generate", spy_generate)
    monkeypatch.setattr(module.model, "forward", spy_forward)
    trainer = quiet_trainer(enable_checkpointing=False)
    trainer.validate(module, datamodule=data, verbose=False)
    batches = len(trainer.val_dataloaders)
    tokenizer = load_tokenizer(str(DEMO_MODEL))
    longest_label = max(len(tokenizer(t)["input_ids"]) for t in module.task.targets)
    assert data.max_target_tokens == longest_label and batches >= 2
    assert all(labels is None for labels in forward_calls)  # no loss pass with the gold targets
    if eval_mode == "generate":
        assert generate_calls == [longest_label] * batches
    else:  # one forward per batch: the encoder once, then every label packed into one decoder pass
        assert generate_calls == [] and len(forward_calls) == batches


def paired_result(key: str, steps: list[float], floor_steps: list[float]) -> dict:
    result = fake_result(key, statistics.median(steps), 210 * MiB)
    result["step_seconds_all"], result["floor_step_seconds_all"] = steps, floor_steps
    result["step_cpu_seconds_all"], result["floor_step_cpu_seconds_all"] = [2 * t for t in steps], floor_steps
    return result


REPORT_OPTIONS = {  # what `format_report` reads of a report's options
    "model": "tiny", "batch_size": 8, "source_length": 128, "target_length": 3, "device": "cpu",
    "precision": "32-true", "clock": "wall", "steps": 3, "warmup": 1, "rounds": 1,
    "gradient_checkpointing": False, "compile": False, "num_labels": 2, "pair_with_floor": True,
    "settings": TABLE3_SETTINGS,
}  # fmt: skip


def test_step_times_and_ratios_in_the_table_come_from_the_same_pairs():
    """A busy machine once printed the floor at 6.2 s, Compacter at 1.6 s and -2.6% vs the floor: separate runs
    minutes apart. Every number of a paired row now comes from that row's pairs."""
    entries = [
        aggregate("full", [paired_result("full", [2.0, 2.0, 2.0], [1.0, 1.0, 1.0])], "wall"),
        aggregate("ln_only", [fake_result("ln_only", 6.2, 200 * MiB)], "wall"),  # its own run: loaded
        aggregate("compacter", [paired_result("compacter", [1.6, 1.7, 1.5], [1.5, 1.6, 1.4])], "wall"),
        aggregate("compacter++", [paired_result("compacter++", [1.0, 3.0, 1.2], [1.0, 2.0, 1.0])], "wall"),
    ]
    add_ratios(entries)
    full, floor, compacter, noisy = entries
    assert compacter["step_seconds"] == 1.6 and compacter["floor_step_seconds"] == 1.5
    ratio = statistics.median([1.6 / 1.5, 1.7 / 1.6, 1.5 / 1.4])
    assert compacter["step_vs_floor_percent"] == pytest.approx(100 * (ratio - 1))
    assert compacter["step_vs_full_percent"] == pytest.approx(100 * (ratio / 2.0 - 1))  # full is 2x its floor
    assert floor["step_vs_full_percent"] == pytest.approx(-50.0)  # not 6.2 s / 2.0 s
    assert compacter["step_vs_floor_paired_cpu_percent"] == pytest.approx(100 * (2 * ratio - 1))
    assert not compacter["noisy"] and noisy["noisy"]  # pairs 1.0, 1.5, 1.2: the quartiles span 25% of 1.2
    text = format_report({"options": REPORT_OPTIONS, "methods": entries, "padding": {}})
    row = next(line.split() for line in text.splitlines() if line.startswith("Compacter "))
    assert row[2:7] == ["1.600", "1.500", f"{100 * (ratio / 2 - 1):+.1f}%", f"{100 * (ratio - 1):+.1f}%",
                        f"{100 * (2 * ratio - 1):+.1f}%"]  # fmt: skip
    assert "warning: the pairs of Compacter++ (marked ?)" in text and "+20.0%?" in text


def test_the_profiled_steps_split_is_the_median_of_the_rounds_and_printed_beside_the_rest():
    rounds = [
        {
            **fake_result("intrinsic_said", 4.0, 100 * MiB),
            "profiled_step_seconds": t,
            "region_seconds": {"fastfood projection": r},
        }
        for t, r in ((40.0, 12.0), (44.0, 13.0), (42.0, 14.0))
    ]
    entries = [
        aggregate("intrinsic_said", rounds, "wall"),
        aggregate("ln_only", [fake_result("ln_only", 1, MiB)], "wall"),
    ]
    said, floor = entries
    assert said["profiled_step_seconds"] == 42.0 and said["region_seconds"] == {"fastfood projection": 13.0}
    assert "region_seconds" not in floor
    add_ratios(entries)
    options = {**REPORT_OPTIONS, "rounds": 3, "pair_with_floor": False}
    text = format_report({"options": options, "methods": entries, "padding": {}})
    assert (
        "one profiled step, the method's own layers beside the rest: Intrinsic-SAID fastfood projection 13 s of "
        "42 s (31.0%; the rest 29 s)"
    ) in text


# --- beside the paper's Table 3: the same quantity on both sides ---------------------------------------------------

TABLE3_RUN = {**REPORT_OPTIONS, "model": "t5-base", "pair_with_floor": False}  # t5-base with Table 3's settings


def beside_paper_entries() -> list[dict]:
    entries = [
        aggregate("full", [fake_result("full", 2.0, 400 * MiB)], "wall"),
        aggregate("adapter", [fake_result("adapter", 1.4, 300 * MiB)], "wall"),
        aggregate("phm_adapter", [fake_result("phm_adapter", 1.6, 300 * MiB)], "wall"),
        aggregate("ln_only", [fake_result("ln_only", 1.0, 200 * MiB)], "wall"),
    ]
    add_ratios(entries)
    return entries


def test_the_papers_deltas_are_recomputed_against_t5_fine_tuning_and_the_printed_ones_kept():
    """Table 3 prints Adapter's memory as -35.45%, (124.02 - 167.99) / 124.02: divided by its own memory. Against
    T5 fine-tuning, as its time (-24.50%) and our deltas are, it is -26.17%."""
    full, adapter, _, floor = entries = beside_paper_entries()
    assert adapter["paper_memory_vs_t5_percent"] == pytest.approx(-26.17, abs=0.005)
    assert adapter["paper_time_vs_t5_percent"] == pytest.approx(-24.50, abs=0.005)
    assert (adapter["paper_memory_printed_percent"], adapter["paper_time_printed_percent"]) == (-35.45, -24.5)
    assert adapter["paper_trained_printed"] == "0.832%"
    assert full["paper_memory_vs_t5_percent"] == full["paper_time_vs_t5_percent"] == 0.0
    assert full["paper_memory_printed_percent"] is None  # printed as a dash
    assert floor["paper_memory_vs_t5_percent"] is None and floor["paper_trained_printed"] is None  # not in the paper
    text = format_report({"options": TABLE3_RUN, "methods": entries, "padding": {}})
    # ours (10 of 1,000 parameters trained; 1.4 s and 300 MiB against 2.0 s and 400 MiB) beside the paper's
    row = next(line.split() for line in text.splitlines() if line.startswith("Adapter ") and "-26.17%" in line)
    assert row == ["Adapter", "1%", "0.832%", "-30.0%", "-24.50%", "-25.0%", "-26.17%"]
    assert "paper time (vs T5)" in text and "paper mem (vs T5)" in text and "-35.45%" in text
    assert "Adapter printed -35.45%, -26.17% against T5 fine-tuning" in text
    assert "recomputed from Table 3's MB and minutes" in text
    assert "the paper's columns are" not in text  # t5-base with Table 3's settings: like with like


def test_the_papers_trained_shares_are_table_1s_settings_and_ours_the_settings_run():
    text = format_report({"options": TABLE3_RUN, "methods": beside_paper_entries(), "padding": {}})
    row = next(line.split() for line in text.splitlines() if line.startswith("PHM-Adapter ") and "0.179%" in line)
    assert row[1:3] == ["1%", "0.179%"]
    assert "PHM-Adapter (n = 12): 0.179%" in text and "PHM-Adapter (n = 4): 0.239% in Table 6" in text
    assert "only ours is for the settings run" in text
    assert "Intrinsic-SAID" not in text  # not run: its share is not explained


@pytest.mark.parametrize(
    "change, differs",
    [
        ({"model": str(DEMO_MODEL)}, [f"model {DEMO_MODEL}"]),
        (
            {"settings": {**TABLE3_SETTINGS, "phm_adapter": {"bottleneck": 24, "n": 8}}},
            ["n 8 for PHM-Adapter (Table 3: 4)"],
        ),
        (
            {"settings": {**TABLE3_SETTINGS, "intrinsic_said": {"intrinsic_dim": 20_000}}},
            [],
        ),  # no SAID run: nothing differs
    ],
    ids=["another-model", "another-n", "a-setting-no-method-run-takes"],
)
def test_a_run_unlike_table_3_still_shows_the_paper_and_says_what_the_papers_columns_are(change, differs):
    options = {**TABLE3_RUN, **change}
    entries = beside_paper_entries()
    assert runner.paper_section(options, [e["key"] for e in entries])["differs"] == differs
    text = format_report({"options": options, "methods": entries, "padding": {}})
    assert "-26.17%" in text and "-24.50%" in text
    unlike = "the paper's columns are google-t5/t5-base with Table 3's settings (adapter size 24, n 4"
    assert (unlike in text) == bool(differs)
    assert all(difference in text for difference in differs)


@pytest.mark.parametrize(
    "init_args, fragments",
    [
        ("{compactor: {n: 8}}", ["--init_args: unknown method key 'compactor'", "did you mean 'compacter'?"]),
        ("{compacter: {nn: 8}}", ["--init_args: compacter has no argument 'nn'", "did you mean 'n'?"]),
    ],
)
def test_a_method_argument_bench_cannot_give_is_a_one_line_error(capsys, init_args, fragments):
    code, _, err = in_process(capsys, "bench", "--model", str(DEMO_MODEL), "--init_args", init_args)
    one_line_error(code, err, *fragments)


def test_the_json_says_how_the_papers_deltas_were_computed(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "run_worker", lambda options, key, workdir: fake_result(key, 1.0, 200 * MiB))
    report = runner.run_bench(
        BenchOptions(methods=["full", "phm_adapter"], device="cpu", init_args={"phm_adapter": {"n": 8}})
    )
    assert report["options"]["settings"]["phm_adapter"] == {"bottleneck": 24, "n": 8}
    assert report["paper"]["differs"] == ["n 8 for PHM-Adapter (Table 3: 4)"]
    paper = report["paper"]
    assert paper["reference"] == {"method": "full", "memory_mb": 167.99, "time_min": 42.13}
    assert "own memory" in paper["printed"] and "paper_memory_vs_t5_percent" in paper["recomputed"]
    assert [m["printed_is"] for m in paper["trained_mismatches"]] == ["PHM-Adapter (n = 12)"]
    runner.write_json(report, tmp_path / "bench.json")
    entry = json.loads((tmp_path / "bench.json").read_text())["methods"][1]
    assert entry["paper_memory_printed_percent"] == -35.55
    assert entry["paper_memory_vs_t5_percent"] == pytest.approx(-26.23, abs=0.005)
