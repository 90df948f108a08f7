"""`cli.py report`: numbers equal a hand computation on a fixed results file; the figure is a valid PNG; a corrupt
line is reported and left in place; results.jsonl appends never tear a line; a search's configuration is chosen
on validation only; full-data tables go beside the paper's shipped numbers."""

import csv
import json
import multiprocessing

import matplotlib.image
import pytest
import yaml

from compacter_pl.cli import main
from compacter_pl.errors import UserError
from compacter_pl.tools.sweep.report import write_report
from compacter_pl.tools.sweep.results import append_result, read_results

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def record(task, method, size, seed, score=None, trainable=(100, 100), **metrics):
    """A results line as the sweep writes it (test metrics; the score is their mean unless given)."""
    metrics = metrics or {"accuracy": score}
    test = {**metrics, "score": score if score is not None else sum(metrics.values()) / len(metrics)}
    return {
        "run": f"{task}-{method}-n{size or 'full'}-s{seed}",
        "task": task,
        "method": method,
        "size": size,
        "seed": seed,
        "val": {"score": 0.5},
        "test": test,
        "trainable_params": trainable[0],
        "total_params": trainable[1],
        "wall_time_s": 1.0,
        "log_dir": "runs/x",
    }


LOW_RESOURCE = [
    # rte full n=100: 60, 62, 64 -> 62.00 +- 2.00;  cpp n=100: 70, 70, 73 -> 71.00 +- 1.73
    *(record("rte", "full", 100, s, v) for s, v in enumerate([0.60, 0.62, 0.64])),
    *(record("rte", "cpp", 100, s, v) for s, v in enumerate([0.70, 0.70, 0.73])),
    # mrpc full n=100 (score = mean of accuracy and F1): 80, 84, 88 -> 84.00 +- 4.00
    *(record("mrpc", "full", 100, s, accuracy=v - 0.02, f1=v + 0.02) for s, v in enumerate([0.80, 0.84, 0.88])),
    # n=1000: rte full 66, 68 (two seeds); mrpc full 90, 90, 90; cpp only rte, one seed: 75
    *(record("rte", "full", 1000, s, v) for s, v in enumerate([0.66, 0.68])),
    *(record("mrpc", "full", 1000, s, accuracy=0.90, f1=0.90) for s in range(3)),
    record("rte", "cpp", 1000, 0, 0.75),
]
FULL_DATA = [
    *(record("rte", "full", None, s, accuracy=v, trainable=(1000, 1000)) for s, v in enumerate([0.70, 0.74])),
    *(
        record("mrpc", "full", None, s, accuracy=a, f1=f, trainable=(1000, 1000))
        for s, (a, f) in enumerate([(0.86, 0.90), (0.88, 0.92)])
    ),
    record("rte", "cpp", None, 0, accuracy=0.75, trainable=(47, 100_000)),
    record("mrpc", "cpp", None, 0, accuracy=0.80, f1=0.84, trainable=(47, 100_000)),
]


def write_results(directory, records, extra_lines=()):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "results.jsonl"
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        for line in extra_lines:
            f.write(line + "\n")
    return path


def table_rows(markdown: str, first_cell: str) -> list[list[str]]:
    rows = []
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            rows.append(cells)
    return rows


def csv_value(rows, **match) -> dict:
    found = [r for r in rows if all(r[k] == str(v) for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


def test_low_resource_numbers_equal_a_hand_computation(tmp_path):
    write_results(tmp_path, LOW_RESOURCE)
    written = write_report([tmp_path])
    markdown = written["markdown"].read_text()
    # columns: method | n | seeds | MRPC | RTE | the average of the 2 of GLUE's 8 tasks (in the paper's order)
    assert "| method | n | seeds | MRPC | RTE | GLUE avg (2/8 tasks) |" in markdown
    full = table_rows(markdown, "full")
    # the average per seed: (60+80)/2, (62+84)/2, (64+88)/2 = 70, 73, 76
    assert full[0] == ["full", "100", "3", "84.00 ± 4.00", "62.00 ± 2.00", "73.00 ± 3.00"]
    # n=1000: rte has seeds 0, 1; mrpc 0, 1, 2: the average uses the common seeds: (66+90)/2, (68+90)/2
    assert full[1] == ["full", "1000", "2-3", "90.00 ± 0.00", "67.00 ± 1.41", "78.50 ± 0.71"]
    cpp = table_rows(markdown, "cpp")
    assert cpp[0] == ["cpp", "100", "3", "—", "71.00 ± 1.73", "71.00 ± 1.73 (1/2 tasks)"]
    assert cpp[1] == ["cpp", "1000", "1", "—", "75.00", "75.00 (1/2 tasks)"]  # one seed: no std

    rows = list(csv.DictReader(written["csv"].open()))
    cell = csv_value(rows, table="figure4", method="cpp", size=100, task="rte")
    assert float(cell["mean"]) == pytest.approx(71.0) and float(cell["std"]) == pytest.approx(3**0.5)
    assert cell["runs"] == "3" and cell["metric"] == "test/score"
    average = csv_value(rows, table="figure4", method="full", size=100, task="GLUE avg (2/8 tasks)")
    assert float(average["mean"]) == pytest.approx(73.0) and float(average["std"]) == pytest.approx(3.0)
    assert csv_value(rows, table="figure4", method="cpp", size=1000, task="rte")["std"] == ""


def test_full_data_runs_make_a_table_1(tmp_path):
    write_results(tmp_path, FULL_DATA)
    written = write_report([tmp_path])
    markdown = written["markdown"].read_text()
    assert "figure" not in written  # no training sizes: no Figure 4
    assert "| method | trainable | % | MRPC (accuracy/f1) | RTE (accuracy) | GLUE avg (2/8 tasks) |" in markdown
    # the average counts every metric once (the paper's Table 1): seed 0 (70+86+90)/3 = 82, seed 1 (74+88+92)/3
    assert table_rows(markdown, "full")[0] == [
        "full",
        "1,000",
        "100",
        "87.00 ± 1.41 / 91.00 ± 1.41",
        "72.00 ± 2.83",
        "83.33 ± 1.89",
    ]
    assert table_rows(markdown, "cpp")[0] == ["cpp", "47", "0.047", "80.00 / 84.00", "75.00", "79.67"]
    rows = list(csv.DictReader(written["csv"].open()))
    assert float(csv_value(rows, method="cpp", metric="trainable_percent")["mean"]) == pytest.approx(0.047)
    f1 = csv_value(rows, table="table1", method="full", task="mrpc", metric="test/f1")
    assert float(f1["mean"]) == pytest.approx(91.0) and float(f1["std"]) == pytest.approx(2**0.5)


GLUE_TASKS = ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"]


@pytest.mark.parametrize("size", [100, None])
def test_an_average_over_some_of_a_benchmarks_tasks_says_so(tmp_path, capsys, size):
    one = tmp_path / "rte"  # a sweep of RTE alone (the demo's): its average is RTE's, never called GLUE's
    write_results(one, [record("rte", "full", size, s, v) for s, v in enumerate([0.60, 0.64])])
    main(["report", str(one)])
    markdown = (one / "report.md").read_text()
    assert "GLUE avg (1/8 tasks) |" in markdown and "GLUE avg |" not in markdown
    rows = list(csv.DictReader((one / "report.csv").open()))
    assert [r["task"] for r in rows if "avg" in r["task"]] == ["GLUE avg (1/8 tasks)"]

    every = tmp_path / "glue"  # all of GLUE's tasks: the GLUE average
    write_results(every, [record(t, "full", size, s, 0.6 + s / 10) for t in GLUE_TASKS for s in range(2)])
    main(["report", str(every)])
    markdown = (every / "report.md").read_text()
    assert "| GLUE avg |" in markdown and "tasks) |" not in markdown
    rows = list(csv.DictReader((every / "report.csv").open()))
    assert [r["task"] for r in rows if "avg" in r["task"]] == ["GLUE avg"]
    average = csv_value(rows, task="GLUE avg")
    assert float(average["mean"]) == pytest.approx(65.0) and average["runs"] == "2"


def test_the_figure_is_a_valid_png(tmp_path):
    write_results(tmp_path, LOW_RESOURCE)
    written = write_report([tmp_path], out=tmp_path / "out")
    png = tmp_path / "out" / "figure4.png"
    assert written["figure"] == png
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400  # 3 panels: MRPC, RTE, average
    assert image.std() > 0.01  # not a blank canvas


def test_report_command_writes_markdown_csv_png_and_val_metric(tmp_path, capsys):
    write_results(tmp_path, LOW_RESOURCE + FULL_DATA)
    main(["report", str(tmp_path), "--metric", "val/score", "--out", str(tmp_path / "val")])
    out = capsys.readouterr().out
    assert "Low-resource" in out and "Full data" in out and "wrote" in out
    assert "50.00 ± 0.00" in (tmp_path / "val" / "report.md").read_text()  # every val score is 0.5
    assert {p.name for p in (tmp_path / "val").iterdir()} == {"report.md", "report.csv", "figure4.png"}


def test_a_corrupt_line_is_reported_ignored_and_left_in_place(tmp_path, capsys):
    path = write_results(
        tmp_path,
        LOW_RESOURCE,
        extra_lines=['{"run": "rte-full-n100-s9", "task": "rte", "me', "not json at all", '{"run": 1}'],
    )
    before = path.read_bytes()
    main(["report", str(tmp_path)])
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 3, captured.err
    assert f"{path} line {len(LOW_RESOURCE) + 1}: not valid JSON" in warnings[0]
    assert "left in the file" in warnings[0]
    assert "Traceback" not in captured.err
    assert path.read_bytes() == before  # never rewritten
    assert "62.00 ± 2.00" in captured.out  # the valid lines still make the report


@pytest.mark.parametrize(
    "bad, message",
    [
        (["--metric", "test/nope"], "no result has test/nope; the results have"),
        (["--metric", "score"], "--metric must be val/<name> or test/<name>"),
    ],
)
def test_bad_report_arguments_are_one_line_errors(tmp_path, capsys, bad, message):
    write_results(tmp_path, LOW_RESOURCE)
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path), *bad])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], errors


def test_a_directory_without_results_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["report", str(tmp_path)])
    assert "has no results.jsonl; run `python cli.py sweep" in capsys.readouterr().err


def test_an_append_after_a_torn_line_starts_its_own_line(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(LOW_RESOURCE[0]) + "\n" + '{"run": "torn')  # a crash mid-line of another writer
    append_result(path, LOW_RESOURCE[1])
    results = read_results(path)
    assert [r["run"] for r in results.records] == [LOW_RESOURCE[0]["run"], LOW_RESOURCE[1]["run"]]
    assert len(results.problems) == 1 and "line 2" in results.problems[0]
    assert path.read_text().splitlines()[1] == '{"run": "torn'  # kept, not repaired away


def _append_many(path, worker):
    for i in range(40):
        append_result(path, {**LOW_RESOURCE[0], "run": f"w{worker}-{i}", "padding": "x" * 5000})


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "results.jsonl"
    processes = [multiprocessing.get_context("fork").Process(target=_append_many, args=(path, w)) for w in range(4)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    results = read_results(path)
    assert results.problems == []
    assert sorted(r["run"] for r in results.records) == sorted(f"w{w}-{i}" for w in range(4) for i in range(40))


# --- choosing a configuration on validation ----------------------------------------------------------------------


def searched(task, config, seed, val, test, method="cpp", size=None, class_path="CompacterPlusPlus", n=4, **metrics):
    """A results line of one configuration of a search: `config` is {name: {axis: value}}. The report names its
    method by the key of its class and arguments (compacter++), whatever name it was recorded under."""
    ((name, values),) = config.items()
    line = record(task, method, size, seed, test, **metrics)
    return {
        **line,
        "run": f"{task}-{method}-{name}-n{size or 'full'}-s{seed}",
        "val": {"score": val},
        "config": name,
        "search": values,
        "class_path": f"compacter_pl.methods.compacter.{class_path}",
        "init_args": {"n": n},
    }


LR_SMALL, LR_LARGE = {"lr3e-4": {"model.learning_rate": 3e-4}}, {"lr3e-3": {"model.learning_rate": 3e-3}}
LR_HUGE = {"lr3e-1": {"model.learning_rate": 3e-1}}
SEARCH = [
    # rte: lr3e-3 is best on validation (mean 0.80 against 0.70) though worse on test: it is the one reported
    *(searched("rte", LR_SMALL, s, v, t) for s, v, t in [(0, 0.70, 0.90), (1, 0.70, 0.92), (2, 0.70, 0.94)]),
    *(searched("rte", LR_LARGE, s, v, t) for s, v, t in [(0, 0.78, 0.60), (1, 0.80, 0.62), (2, 0.82, 0.64)]),
    # ... and lr3e-1 has a better validation score but only one of the three seeds: it is left out, not compared
    searched("rte", LR_HUGE, 0, 0.99, 0.99),
    # mrpc: a tie on validation (0.85 both): the smaller learning rate wins
    *(
        searched("mrpc", c, s, 0.85, t, accuracy=t, f1=t)
        for c, t in [(LR_SMALL, 0.80), (LR_LARGE, 0.70)]
        for s in range(3)
    ),
]


def test_the_configuration_with_the_best_mean_validation_score_is_reported(tmp_path):
    write_results(tmp_path, SEARCH)
    written = write_report([tmp_path])
    markdown = written["markdown"].read_text()
    # rte reports lr3e-3's test scores 60, 62, 64; mrpc the tie's smaller learning rate, lr3e-4 (80 / 80)
    assert table_rows(markdown, "compacter++")[1][3:5] == ["80.00 ± 0.00 / 80.00 ± 0.00", "62.00 ± 2.00"]
    chosen = table_rows(markdown, "compacter++")[0]
    assert chosen == ["compacter++", "full", "lr3e-4: 85.00 ± 0.00 (best of 2)", "lr3e-3: 80.00 ± 2.00 (best of 2)"]
    assert "left out rte compacter++ n=full: lr3e-1 (1 of 3 seeds)" in markdown
    rows = list(csv.DictReader(written["csv"].open()))
    assert csv_value(rows, table="selection", task="rte")["config"] == "lr3e-3"
    assert csv_value(rows, table="table1", task="rte", metric="test/accuracy")["config"] == "lr3e-3"


def test_selection_per_size_and_a_diverged_configuration_loses(tmp_path):
    lines = [
        *(searched("rte", c, 0, v, t, size=100) for c, v, t in [(LR_SMALL, 0.6, 0.6), (LR_LARGE, 0.9, 0.8)]),
        *(searched("rte", c, 0, v, t, size=500) for c, v, t in [(LR_SMALL, 0.7, 0.7), (LR_LARGE, 0.9, 0.9)]),
        searched("rte", LR_HUGE, 0, float("nan"), 0.95, size=500),
    ]
    write_results(tmp_path, lines)
    markdown = write_report([tmp_path])["markdown"].read_text()
    assert [row[:3] for row in table_rows(markdown, "compacter++")] == [
        ["compacter++", "100", "lr3e-3: 90.00 (best of 2)"],
        ["compacter++", "500", "lr3e-3: 90.00 (best of 3)"],
        ["compacter++", "100", "1"],
        ["compacter++", "500", "1"],
    ]
    assert [row[3] for row in table_rows(markdown, "compacter++")[2:]] == ["80.00", "90.00"]


def test_no_option_selects_on_test(tmp_path, capsys):
    write_results(tmp_path, SEARCH)
    with pytest.raises(UserError, match="must be val/<name>"):
        write_report([tmp_path], select_on="test/score")
    for option in ("test/score", "test/accuracy", "score"):
        with pytest.raises(SystemExit) as exit_info:
            main(["report", str(tmp_path), "--select_on", option])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --select_on must be val/<name>") and "optimistic" in err
    assert not (tmp_path / "report.md").exists()
    main(["report", str(tmp_path), "--select_on", "val/score", "--metric", "val/score"])  # validation is fine
    assert "80.00 ± 2.00" in (tmp_path / "report.md").read_text()


# --- beside the paper --------------------------------------------------------------------------------------------


BASE, SMALL = "google-t5/t5-base", "google-t5/t5-small"


def ran(line: dict, class_path: str, model: str | None = BASE, learning_rate=None, **init_args) -> dict:
    """A results line with the method and model the run had, as the sweep records them."""
    return {**line, "class_path": class_path, "init_args": init_args, "model": model, "learning_rate": learning_rate}


def section(markdown: str, title: str) -> str:
    """One `## ...` section of the report."""
    start = markdown.index(f"## {title}")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end > 0 else len(markdown)]


COMPACTER = "compacter_pl.methods.compacter.Compacter"


def test_full_data_goes_beside_the_rows_of_the_papers_tables_it_matches(tmp_path):
    lines = [
        {**searched("rte", LR_LARGE, 0, 0.8, 0.75, class_path="Compacter", method="compacter"), "model": BASE},
        ran(record("rte", "adapter", None, 0, 0.72), "compacter_pl.methods.adapters.Adapter", learning_rate=3e-4),
        ran(record("rte", "small", None, 0, 0.60), COMPACTER, SMALL, n=4),
        *(
            ran(record("cb", method, None, 0, accuracy=0.90, macro_f1=0.80), COMPACTER, n=n)
            for method, n in (("compacter-n12", 12), ("compacter-n8", 8), ("compacter-n16", 16))
        ),
        ran(record("rte", "lora", None, 0, 0.70), "compacter_pl.methods.hf_peft.Peft"),
        ran(record("rte", "tiny", None, 0, 0.70), COMPACTER, "demo/tiny-t5"),
    ]
    write_results(tmp_path, lines)
    written = write_report([tmp_path])
    markdown = written["markdown"].read_text()
    # Compacter's runs are named by its key and what sets them apart: n and the model (recorded as compacter,
    # small, compacter-n12, ..., tiny)
    base, small, tiny = (f"compacter (n = 4, model = {model})" for model in (BASE, SMALL, "demo/tiny-t5"))
    n12, n8, n16 = (f"compacter (n = {n}, model = google-t5/t5-base)" for n in (12, 8, 16))
    table1 = section(markdown, "Beside the paper's Table 1 (GLUE test, T5-base)")
    assert "| method |  | RTE (accuracy) | GLUE avg |" in table1
    assert table_rows(table1, base) == [[base, "ours", "75.00", "75.00 (1/8 tasks)"]]
    assert table_rows(table1, "adapter") == [["adapter", "ours", "72.00", "72.00 (1/8 tasks)"]]
    assert table_rows(table1, "") == [
        ["", "paper: Compacter (n = 4)", "77.70", "86.62"],
        ["", "difference", "-2.70", ""],  # the average: not over the same tasks
        ["", "paper: Adapter", "71.94", "85.78"],
        ["", "difference", "+0.06", ""],
    ]
    assert "adapter ran one configuration each (no search)" in table1
    assert "adapter at the learning rate the paper selected (Table 4)" in table1
    # Table 6 has n = 4 too (not the adapters); Table 9 is the T5-small run's, never Table 1
    table6 = section(markdown, "Beside the paper's Table 6")
    assert [r[0] for r in table_rows(table6, base)] == [base] and "adapter" not in table6
    table9 = section(markdown, "Beside the paper's Table 9 (GLUE test, T5-small")
    assert table_rows(table9, small) == [[small, "ours", "60.00", "60.00 (1/8 tasks)"]]
    assert table_rows(table9, "")[0] == ["", "paper: Compacter (n = 4)", "64.03", "80.90"]
    assert small not in table1 and small not in table6
    # SuperGLUE: n 12 in Tables 2 and 8, n 8 only in Table 8, n 16 nowhere
    table2 = section(markdown, "Beside the paper's Table 2")
    assert table_rows(table2, n12) == [[n12, "ours", "90.00 / 80.00", "85.00 (1/6 tasks)"]]
    assert table_rows(table2, "")[:2] == [
        ["", "paper: Compacter (n = 12)", "96.43 / 87.44", "71.57"],
        ["", "difference", "-6.43 / -7.44", ""],
    ]
    table8 = section(markdown, "Beside the paper's Table 8")
    assert {r[0] for r in [*table_rows(table8, n12), *table_rows(table8, n8)]} == {n12, n8}
    assert ["", "paper: Compacter (n = 8)", "85.71 / 80.06", "71.19"] in table_rows(table8, "")
    assert n16 not in table2 + table8
    assert (
        f"The paper has no row for: {tiny}; {n16}; lora (google-t5/t5-base). "
        "Its tables are for google-t5/t5-base and google-t5/t5-small" in markdown
    )
    rows = list(csv.DictReader(written["csv"].open()))
    assert csv_value(rows, table="paper Table 9", method=small, metric="test/accuracy")["mean"] == "64.030000"
    assert csv_value(rows, table="paper Table 1", method="adapter")["config"] == "Adapter"


def test_a_daggered_cell_and_its_note_come_with_the_paper_row(tmp_path):
    prompt = "compacter_pl.methods.prompt.PromptTuning"
    write_results(tmp_path, [ran(record("cola", "prompt-r", None, 0, matthews=0.1), prompt, init="random")])
    table1 = section(write_report([tmp_path])["markdown"].read_text(), "Beside the paper's Table 1")
    assert ["", "paper: Prompt tuning-R", "0.47 †", "71.49"] in table_rows(table1, "")
    assert "best of 6 random seeds" in table1


def test_the_selected_learning_rate_of_the_paper_stands_beside_the_choice(tmp_path):
    lines = [
        {**searched("rte", LR_SMALL, 0, 0.7, 0.7, class_path="Compacter", method="compacter"), "model": BASE},
        {**searched("rte", LR_LARGE, 0, 0.8, 0.8, class_path="Compacter", method="compacter"), "model": BASE},
        {**searched("cb", LR_SMALL, 0, 0.7, 0.7, class_path="Compacter", method="cb-n12", n=12), "model": BASE},
        {**searched("cb", LR_SMALL, 0, 0.7, 0.7, class_path="Compacter", method="cb-n8", n=8), "model": BASE},
    ]
    write_results(tmp_path, lines)
    markdown = write_report([tmp_path])["markdown"].read_text()
    chosen = section(markdown, "Configurations chosen on validation")
    assert "| method | n | RTE | CB | the paper's learning rate |" in chosen
    # recorded as compacter, cb-n12 and cb-n8: the key and the n that sets each apart
    assert table_rows(chosen, "compacter (n = 4)")[0][-1] == "3e-3 (Table 4)"
    assert table_rows(chosen, "compacter (n = 12)")[0][-1] == "3e-3 (Table 11)"
    assert table_rows(chosen, "compacter (n = 8)")[0][-1] == "—"  # Table 8's rates are not published


def test_a_table_of_the_papers_selected_configuration_says_it_is_not_the_search(tmp_path):
    rates = {"compacter": 3e-3, "full": 3e-4}
    tasks = {"cola": {"matthews": 0.6}, "sst2": {"accuracy": 0.9}, "mrpc": {"accuracy": 0.9, "f1": 0.9}}
    tasks |= {"qqp": {"accuracy": 0.9, "f1": 0.9}, "stsb": {"pearson": 0.9, "spearman": 0.9}}
    tasks |= {"mnli": {"accuracy": 0.9}, "qnli": {"accuracy": 0.9}, "rte": {"accuracy": 0.9}}
    classes = {"compacter": COMPACTER, "full": "compacter_pl.methods.full.FullFineTuning"}
    lines = [
        ran(record(task, method, None, 0, **metrics), classes[method], learning_rate=rate)
        for method, rate in rates.items()
        for task, metrics in tasks.items()
    ]
    write_results(tmp_path, lines)
    table1 = section(write_report([tmp_path])["markdown"].read_text(), "Beside the paper's Table 1")
    assert "These runs re-run the paper's selected configuration" in table1
    assert "(one run per method and task at the learning rate of the paper's Table 4), not the paper's search" in table1
    # over all 8 tasks: the average's difference is shown (86.36 = the mean of the 11 cells x 100)
    assert table_rows(table1, "")[1][-1] == f"{(0.6 + 0.9 * 10) / 11 * 100 - 86.62:+.2f}"
    write_results(tmp_path, [{**line, "learning_rate": 1e-3} for line in lines])
    table1 = section(write_report([tmp_path])["markdown"].read_text(), "Beside the paper's Table 1")
    assert "re-run the paper's selected configuration" not in table1
    assert "compacter at 1e-3 (the paper's: 3e-3)" in table1 and "full at 1e-3 (the paper's: 3e-4)" in table1


def test_results_from_before_the_sweep_recorded_the_model_read_it_from_the_runs_config(tmp_path):
    line = {**record("rte", "compacter", None, 0, 0.7), "class_path": COMPACTER, "init_args": {}, "log_dir": "runs/a"}
    write_results(tmp_path, [line])
    assert "Beside the paper's" not in write_report([tmp_path])["markdown"].read_text()  # no model: no row
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "config.yaml").write_text(
        yaml.safe_dump({"model": {"model_name_or_path": "t5-base", "learning_rate": 3e-3}})
    )
    table1 = section(write_report([tmp_path])["markdown"].read_text(), "Beside the paper's Table 1")
    assert table_rows(table1, "compacter") == [["compacter", "ours", "70.00", "70.00 (1/8 tasks)"]]


# --- a run's method is its registry key ----------------------------------------------------------------------------


def old_line(task, method, seed, score, class_path, search=None, **init_args) -> dict:
    """A results line of a sweep file that named its methods freely (pfeiffer-adapter, compacter-n8)."""
    line = ran(record(task, method, None, seed, score), f"compacter_pl.methods.{class_path}", **init_args)
    config = "_".join(f"d{v}" for v in (search or {}).values())
    searched = {f"init_args.{k}": v for k, v in (search or {}).items()}
    run = f"{task}-{method}{'-' + config if config else ''}-nfull-s{seed}"
    return {**line, "run": run, "val": {"score": score}, "search": searched, "config": config or None}


def test_results_of_sweeps_that_named_methods_otherwise_report_under_their_keys(tmp_path):
    lines = [
        *(old_line("rte", "t5-finetune", s, 0.7, "full.FullFineTuning") for s in (0, 1)),
        *(old_line("rte", "pfeiffer-adapter", s, 0.6 + s / 10, "adapters.PfeifferAdapter") for s in (0, 1)),
        # Appendix B's n as methods of their own, the bottleneck searched: a row per n, never one per bottleneck
        *(
            old_line(
                "rte", f"compacter-n{n}", 0, 0.5 + n / 100 + b / 1000, "compacter.Compacter", {"bottleneck": b}, n=n
            )
            for n in (8, 4)
            for b in (24, 48)
        ),
    ]
    write_results(tmp_path, lines)
    (tmp_path / "sweep.yaml").write_text(  # the file's order: its names mapped to keys by class and arguments
        yaml.safe_dump(
            {
                "methods": {
                    "pfeiffer-adapter": {"class_path": "compacter_pl.methods.PfeifferAdapter"},
                    "t5-finetune": {"class_path": "compacter_pl.methods.FullFineTuning"},
                }
            }
        )
    )
    markdown = write_report([tmp_path])["markdown"].read_text()
    full_data = section(markdown, "Full data")
    assert [row[0] for row in table_rows(full_data, "pfeiffer")] == ["pfeiffer"]
    names = [line.split("|")[1].strip() for line in full_data.splitlines() if line.startswith("| ")][1:]
    assert names == ["pfeiffer", "full", "compacter (n = 4)", "compacter (n = 8)"]
    assert table_rows(full_data, "pfeiffer")[0][3] == "65.00 ± 7.07"  # both seeds, one row
    chosen = section(markdown, "Configurations chosen on validation")
    # the bottleneck is selected over (on validation), n is not
    assert [row[2] for row in table_rows(chosen, "compacter (n = 8)")] == ["d48: 62.80 (best of 2)"]
    assert [row[2] for row in table_rows(chosen, "compacter (n = 4)")] == ["d48: 58.80 (best of 2)"]
    table1 = section(markdown, "Beside the paper's Table 1")
    assert table_rows(table1, "pfeiffer")[0][:2] == ["pfeiffer", "ours"]
    assert "paper: Pfeiffer-Adapter" in table1  # the display name, the registry's


def test_a_seed_the_run_resolves_itself_does_not_split_a_method(tmp_path):
    prompt = "compacter_pl.methods.prompt.PromptTuning"
    lines = [  # the module records each run's own seed (its seed_everything): one method all the same
        {
            **ran(record("rte", "prompt_vocab", None, s, 0.6), prompt, init="vocab"),
            "method_init_args": {"init": "vocab", "seed": s},
        }
        for s in (0, 1)
    ]
    write_results(tmp_path, lines)
    full_data = section(write_report([tmp_path])["markdown"].read_text(), "Full data")
    assert [row[:2] for row in table_rows(full_data, "prompt_vocab")] == [["prompt_vocab", "100"]]
