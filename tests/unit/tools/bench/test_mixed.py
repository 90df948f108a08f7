"""`cli.py bench --mixed`: mixed batches through the AdapterBank on the tiny demo model. The report's structure and
the outputs' checks (every row of a mixed batch answers as its adapter alone), never a timing."""

import json
import math
from dataclasses import replace

import pytest

from compacter_pl.tools.bench import mixed, runner
from compacter_pl.tools.bench.mixed import format_mixed, measure_mixed, numeric_tokenizer, token_texts
from compacter_pl.tools.bench.options import BenchOptions
from tests.helpers import DEMO_MODEL, in_process, one_line_error

TINY = {"compacter": {"bottleneck": 8, "n": 4}, "adapter": {"bottleneck": 8}}  # what fits the tiny model (64 wide)
OPTIONS = BenchOptions(
    model=str(DEMO_MODEL),
    device="cpu",
    source_length=12,
    steps=2,
    warmup=0,
    mixed=True,
    mixed_tasks=[1, 2, 4],
    mixed_batch_size=8,
    init_args=TINY,
)


def in_process_worker(monkeypatch):
    """The runner's workers measured in this process (no interpreter start-up)."""

    def measured(options, key, workdir):  # through JSON, as a worker's result comes back
        return json.loads(json.dumps(measure_mixed(options)))

    monkeypatch.setattr(mixed, "run_worker", measured)


def test_the_bench_texts_are_exactly_as_long_as_asked_and_read_back_token_by_token():
    tokenizer = numeric_tokenizer(vocab_size=220, max_length=12)
    texts = token_texts(3, 12, 220)
    ids = tokenizer(texts)["input_ids"]
    assert [len(row) for row in ids] == [12, 12, 12] and all(row[-1] == 1 and min(row[:-1]) >= 3 for row in ids)
    assert tokenizer.batch_decode([row[:-1] for row in ids], skip_special_tokens=True) == texts
    assert tokenizer.batch_decode([[0, 7, 1, 0]], skip_special_tokens=True) == ["4 </s>"]  # a generated EOS shows
    assert tokenizer("0")["input_ids"] != tokenizer("1")["input_ids"]  # the task's labels, for rank mode


@pytest.mark.parametrize("method, mode", [("compacter", "generate"), ("adapter", "rank")])
def test_mixed_batches_answer_as_each_adapter_alone_and_every_ratio_is_paired_and_finite(monkeypatch, method, mode):
    in_process_worker(monkeypatch)
    options = replace(OPTIONS, mixed_method=method, mixed_eval_mode=mode)
    report = runner.run_bench(options)
    m = report["mixed"]
    assert [entry["tasks"] for entry in m["tasks"]] == [1, 2, 4] and m["adapters"] == 4 and m["repetitions"] == 2
    pairs = ("mixed_vs_one", "mixed_vs_split")
    summaries = [m["one_vs_none"], *(entry[name] for entry in m["tasks"] for name in pairs)]
    for summary in summaries:
        assert len(summary["ratios"]) == 2 and all(math.isfinite(r) and r > 0 for r in summary["ratios"])
        assert summary["median"] == pytest.approx(sum(summary["ratios"]) / 2)
        assert summary["iqr"][0] <= summary["median"] <= summary["iqr"][1]
    for entry in m["tasks"]:
        assert entry["mixed_differs_from_alone"] == 0  # every row of a mixed batch: its adapter's own output
        assert entry["mixed_rows_per_second"] > 0 and entry["split_rows_per_second"] > 0
    one = m["tasks"][0]
    assert one["mixed_vs_one"]["ratios"] == one["mixed_vs_split"]["ratios"]  # K 1: the one-task call timed again
    if mode == "generate":  # the adapters are not trivial: rows of other adapters answer otherwise
        assert m["checks"]["one_differs_from_none"] > 0 and m["tasks"][-1]["mixed_differs_from_one"] > 0
        arms = {"none", "one", "mixed 1", "mixed 2", "split 2", "mixed 4", "split 4"}
        assert set(m["checks"]["rows_with_eos"]) == arms
    assert set(m["page_faults"]) == {"none", "one", "mixed 1", "mixed 2", "split 2", "mixed 4", "split 4"}
    assert set(m["profiled"]) == {"one", "mixed 4"}
    assert m["profiled"]["mixed 4"]["regions"]["row adapters"] > 0  # the mixed model's own parts, named
    text = format_mixed(report)
    assert text == runner.format_report(report)
    assert "K batches rows/s" in text and "8/8" in text and "one profiled call, mixed 4" in text
    assert "page faults per call (median; freed memory kept" in text


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--mixed_tasks", "2"], ["--mixed_tasks applies only with --mixed true"]),
        (["--mixed", "--methods", "compacter"], ["--methods is an option of Table 3's measurement"]),
        (["--mixed", "--batch_size", "4"], ["--batch_size is an option of Table 3's measurement"]),
        (["--mixed", "--mixed_method", "full"], ["--mixed_method full: T5 fine-tuning does not mix"]),
        (["--mixed", "--mixed_tasks", "64"], ["--mixed_tasks: 64 tasks need at least 64 rows", "is 32"]),
        (["--mixed", "--mixed_tasks", "0"], ["mixed_tasks"]),
        (["--mixed", "--mixed_eval_mode", "beam"], ["mixed_eval_mode"]),
    ],
    ids=[
        "without-mixed",
        "table3-option",
        "table3-batch-size",
        "not-mixable",
        "more-tasks-than-rows",
        "zero-tasks",
        "unknown-mode",
    ],
)
def test_bad_mixed_options_are_one_line_errors(capsys, args, fragments):
    code, _, err = in_process(capsys, "bench", "--model", str(DEMO_MODEL), *args)
    one_line_error(code, err, *fragments)


@pytest.mark.slow
def test_bench_mixed_through_the_command_line_prints_the_table_and_writes_the_json(cli, tmp_path):
    out = tmp_path / "mixed.json"
    result = cli(
        "bench",
        "--mixed",
        "--model",
        str(DEMO_MODEL),
        "--source_length",
        "12",
        "--mixed_batch_size",
        "4",
        "--mixed_tasks",
        "1",
        "4",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--init_args",
        "{compacter: {bottleneck: 8, n: 4}}",
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[1/1] mixed: one-task batch" in result.stderr
    assert "mixed / K batches" in result.stdout and "4/4" in result.stdout
    report = json.loads(out.read_text())
    assert [entry["tasks"] for entry in report["mixed"]["tasks"]] == [1, 4]
    assert report["options"]["mixed"] is True and report["options"]["tasks"] == [1, 4]
