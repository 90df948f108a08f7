"""The paper's numbers shipped in the package (compacter_pl/tools/paper_results.yaml, read by compacter_pl.tools.paper):
every table complete and consistent with itself, the registry and, where the transcription is at hand, with it;
and the rule that matches a run to the paper's rows."""

import pytest
import yaml

import compacter_pl.methods as methods
from compacter_pl.methods.registry import complete_init_args, entry_of_config, method_entry
from compacter_pl.tasks import TASKS
from compacter_pl.tools.methods import paper_learning_rate, paper_methods
from compacter_pl.tools.paper import FILE, PACKAGE, PaperFileError, _score_table, matching_rows, paper
from tests.helpers import ROOT

TRANSCRIPTION = ROOT.parent / "shared" / "paper_tables.yaml"  # the cross-checked transcription, when at hand


def test_every_table_of_the_paper_is_shipped():
    data = paper()
    assert [t.number for t in data.scores] == [1, 2, 6, 7, 8, 9]
    assert [t.number for t in data.learning_rates] == [4, 5, 10, 11]
    assert data.efficiency.number == 3
    assert [len(t.rows) for t in data.scores] == [12, 12, 14, 14, 9, 18]  # 79 score rows
    assert "2106.04647v2" in data.source


@pytest.mark.parametrize("table", [t.number for t in paper().scores])
def test_each_row_averages_as_printed_and_names_its_source(table):
    table = paper().table(table)
    for row in table.rows:
        assert row.source == f"arXiv 2106.04647v2, Table {table.number}"
        method_entry(row.method)  # a registered key
        # every task of the table, every metric of each task, once: the paper averages all metric cells
        assert list(row.scores) == list(table.tasks)
        for task, metrics in row.scores.items():
            assert TASKS[task].benchmark == table.benchmark
            assert sorted(metrics) == sorted(TASKS[task].metrics), (row.method, task)
        cells = row.cells()
        assert len(cells) == (11 if table.benchmark == "GLUE" else 9)
        assert sum(cells) / len(cells) == pytest.approx(row.average, abs=0.01), (table.number, row.method, row.args)
        assert set(row.marks) <= set(table.tasks) and (not row.marks or row.notes)


def test_a_table_has_one_row_per_method_and_arguments():
    for table in paper().scores:
        keys = [(row.method, tuple(sorted(row.args.items()))) for row in table.rows]
        assert len(keys) == len(set(keys)), table.number


def test_the_learning_rates_the_tools_read_by_key_are_table_4s():
    table4 = next(r for r in paper().learning_rates if r.number == 4)
    assert set(table4.rates) == {e.key for e in paper_methods()}
    for entry in paper_methods():
        assert paper_learning_rate(entry.key) == table4.rates[entry.key], entry.key


def test_each_learning_rate_table_belongs_to_its_score_table():
    data = paper()
    for rates in data.learning_rates:
        table = data.table(rates.for_table)
        assert table.learning_rates == rates.number and data.rates_for(table) is rates
        assert (rates.model, rates.benchmark) == (table.model, table.benchmark)
        assert set(rates.rates) == {row.method for row in table.rows}  # a rate for each method of its table
        assert set(rates.rates.values()) <= {3e-5, 3e-4, 3e-3, 3e-2, 3e-1}  # Appendix A's grid
    assert data.rates_for(data.table(6)) is None and data.rates_for(data.table(8)) is None  # not published


def test_table_3_deltas_recomputed_against_t5_base():
    efficiency = paper().efficiency
    reference = efficiency.row("full")
    assert (reference.memory_mb, reference.time_min) == (167.99, 42.13)
    assert efficiency.memory_delta("adapter") == pytest.approx(-26.17, abs=0.005)  # printed: -35.45
    for row in efficiency.rows:
        if row.method == "full":
            continue
        # the time deltas are printed against T5 fine-tuning, the memory deltas against the method's own memory
        assert efficiency.time_delta(row.method) == pytest.approx(row.time_delta_printed, abs=0.01), row.method
        own = 100 * (row.memory_mb - reference.memory_mb) / row.memory_mb
        assert own == pytest.approx(row.memory_delta_printed, abs=0.01), row.method
    assert {row.method for row in efficiency.rows} == {e.key for e in paper_methods()}


@pytest.mark.skipif(not TRANSCRIPTION.is_file(), reason="the shared transcription is not beside the project")
def test_every_cell_equals_the_transcription():
    source = yaml.safe_load(TRANSCRIPTION.read_text())["tables"]
    columns = {"cb_f1": "macro_f1", "multirc_f1a": "f1", "multirc_em": "question_exact_match"}
    columns |= {"record_f1": "token_f1", "record_em": "exact_match", "cola": "matthews"}
    compared = 0
    for table in paper().scores:
        rows = source[f"table{table.number}"]["rows"]
        assert len(rows) == len(table.rows)
        for theirs, ours in zip(rows, table.rows, strict=True):
            assert ours.trained == theirs["trained_per_task"] and ours.total_params == theirs["total_params"]
            assert ours.average == theirs["scores"]["avg"]
            for column, value in theirs["scores"].items():
                if column == "avg":
                    continue
                task, _, suffix = column.partition("_")
                metric = columns.get(column) or {"acc": "accuracy", "": "accuracy"}.get(suffix, suffix)
                assert ours.scores[task][metric] == value, (table.number, ours.method, column)
                compared += 1
    assert compared == 827  # 58 GLUE rows of 11 cells, 21 SuperGLUE rows of 9 (averages aside)
    for rates in paper().learning_rates:
        theirs = {r["method"]: float(r["lr"]) for r in source[f"table{rates.number}"]["rows"]}
        assert sorted(rates.rates.values()) == sorted(theirs.values())
    for row in source["table3"]["rows"]:
        ours = paper().efficiency.row("prompt_random" if row["method"] == "prompt-tuning" else _key(row["method"]))
        assert (ours.memory_mb, ours.time_min) == (row["values"]["memory_mb"], row["values"]["time_min_per_epoch"])


def _key(paper_id: str) -> str:
    keys = {"t5-finetune": "full", "pfeiffer-adapter": "pfeiffer", "adapter-lowrank": "adapter_lowrank"}
    return keys.get(paper_id, paper_id.replace("-", "_") if paper_id != "compacter++" else paper_id)


def _tables(cls, init_args, model="google-t5/t5-base", benchmark="GLUE"):
    entry = entry_of_config(cls, init_args)
    rows = matching_rows(entry.key, complete_init_args(cls, init_args), model, benchmark)
    return [(table.number, row.label()) for table, row in rows]


def test_a_run_matches_the_rows_of_its_method_arguments_and_model():
    assert _tables(methods.Compacter, {}) == [(1, "Compacter (n = 4)"), (6, "Compacter (n = 4)")]  # n 4: default
    assert _tables(methods.Compacter, {"n": 8}) == [(6, "Compacter (n = 8)")]
    assert _tables(methods.Compacter, {"n": 16}) == []  # the paper has no n = 16 on T5-base
    assert _tables(methods.Compacter, {"train_output_layer": True}) == [(7, "Compacter (n = 4)")]
    assert _tables(methods.Compacter, {"n": 8}, "t5-small") == [(9, "Compacter (n = 8)")]
    assert _tables(methods.Compacter, {"n": 12}, "google-t5/t5-small") == []  # Table 9: n 4, 8, 16
    assert _tables(methods.Compacter, {}, "demo/tiny-t5") == []
    assert _tables(methods.Compacter, {}, None) == []  # a run that does not say its model
    assert _tables(methods.Compacter, {"n": 12}, benchmark="SuperGLUE") == [
        (2, "Compacter (n = 12)"),
        (8, "Compacter (n = 12)"),
    ]
    assert _tables(methods.PromptTuning, {"init": "vocab"}) == [(1, "Prompt tuning-T")]
    assert _tables(methods.PromptTuning, {"num_tokens": 20}) == []  # the paper's prompts are 100 tokens
    assert _tables(methods.IntrinsicSAID, {}) == [
        (1, "Intrinsic-SAID (d' = 20,000)"),
        (6, "Intrinsic-SAID (d' = 20,000)"),
    ]
    assert _tables(methods.IntrinsicSAID, {"intrinsic_dim": 1400}) == [(6, "Intrinsic-SAID (d' = 1400)")]
    assert _tables(methods.IntrinsicSAID, {"intrinsic_dim": 1400}, "t5-small") == [(9, "Intrinsic-SAID")]  # d' unstated
    assert _tables(methods.FullFineTuning, {}, "t5-small") == [(9, "T5 fine-tuning")]
    assert _tables(methods.AdapterDrop, {"bottleneck": 96}) == [(1, "AdapterDrop")]  # the best bottleneck of 3


def test_a_malformed_paper_file_is_refused_naming_the_row():
    table = {"table": 1, "title": "t", "caption": "c", "model": "m", "benchmark": "GLUE", "tasks": ["rte"]}
    row = {"method": "full", "args": {}, "source": "s", "total_params": "1", "trained": "1%", "average": 1.0}
    with pytest.raises(PaperFileError, match=f"{FILE}: scores table 1 row 1 needs 'scores'"):
        _score_table({**table, "rows": [row]})
    with pytest.raises(PaperFileError, match="scores task 'cola', not one of the table's tasks"):
        _score_table({**table, "rows": [{**row, "scores": {"cola": {"matthews": 1.0}}}]})
    with pytest.raises(PaperFileError, match="score of rte that is not a number"):
        _score_table({**table, "rows": [{**row, "scores": {"rte": {"accuracy": "71.94"}}}]})
    scored = {**row, "scores": {"rte": {"accuracy": 71.94}}}
    with pytest.raises(PaperFileError, match="row 1 has counted_with that is not a mapping"):
        _score_table({**table, "rows": [{**scored, "counted_with": 16}]})
    assert _score_table({**table, "rows": [scored]}).rows[0].counted_with is None  # optional: Tables 1, 9 have it


def test_the_paper_file_ships_in_the_wheel():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert FILE in declared[PACKAGE]  # read with importlib.resources
