"""`cli.py sweep`: the grid read from YAML, search axes, shards, resuming, and bad input as one-line errors (the
runs end to end: test_sweep_end_to_end.py)."""

import json
import re

import pytest
import yaml

from compacter_pl.architectures import t5_config
from compacter_pl.tasks import TASKS
from compacter_pl.tools.sweep.grid import shard_of
from compacter_pl.tools.sweep.runner import duration, resolved_configs
from compacter_pl.tools.sweep.sweep_file import load_sweep, resolve_method
from tests.helpers import DEMO_SWEEP, DURATION, ROOT, in_process, one_line_error, write_sweep

SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))


def sweep_in_process(capsys, *args):
    """`cli.py sweep ARGS` in this process: (exit code, stdout, stderr)."""
    return in_process(capsys, "sweep", *args)


# --- the grid --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SWEEPS, ids=[p.name for p in SWEEPS])
def test_every_shipped_sweep_validates_and_parses(path):
    sweep = load_sweep(path)
    assert sweep.runs()
    configs = resolved_configs(sweep)  # each task, method and size through cli.py's own parser
    assert set(configs) == set(sweep.tasks)
    assert "python cli.py sweep --config" in path.read_text().split("\n\n")[0]
    base_model = yaml.safe_load(sweep.base_config.read_text())["model"]["model_name_or_path"]
    model = sweep.overrides.get("model.model_name_or_path", base_model)  # table9.yaml: T5-small for every run
    assert {(c["model"]["model_name_or_path"], c["data"]["tokenizer"]) for c in configs.values()} == {(model, model)}
    architecture = t5_config(model)  # offline: a known architecture or the demo's directory
    for method in sweep.methods.values():  # e.g. n divides the width and every bottleneck searched
        for config in method.configs:
            resolve_method(method.class_path, method.name)(**method.config(config)["init_args"]).check(architecture)


def test_the_low_resource_sweep_is_the_papers_figure_4_grid():
    sweep = load_sweep(ROOT / "configs" / "sweeps" / "low_resource.yaml")
    assert list(sweep.tasks) == ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"]
    assert {n: o["trainer.max_epochs"] for n, o in sweep.sizes.items()} == {
        100: 1000,
        500: 200,
        1000: 100,
        2000: 50,
        4000: 25,
    }
    assert sweep.seeds == (0, 1, 2, 3, 4)
    assert sweep.overrides == {
        "data.batch_size": 40,
        "trainer.val_check_interval": 250,
        "trainer.check_val_every_n_epoch": None,
    }
    rates = {name: m.overrides["model.learning_rate"] for name, m in sweep.methods.items()}
    assert rates == {"full": 3e-4, "compacter++": 3e-3}
    assert sweep.methods["compacter++"].class_path.endswith("CompacterPlusPlus")
    assert len(sweep.runs()) == 8 * 5 * 2 * 5 - 2 * 2 * 5  # RTE and MRPC have fewer than 4000 examples


PAPER_RATES = [3e-5, 3e-4, 3e-3, 3e-2, 3e-1]  # Appendix A
NOT_ADAPTERS = ("FullFineTuning", "PromptTuning", "IntrinsicSAID", "BitFit")


def header(sweep) -> str:
    return sweep.path.read_text().split("\n\n")[0]


def assert_size(sweep, runs: int, cells: int) -> None:
    """The grid has `runs` runs in `cells` cells, and the file's header says so."""
    grid = sweep.runs()
    assert (len(grid), len({run.cell for run in grid})) == (runs, cells)
    assert f"{runs:,} runs" in header(sweep) and f"{cells} cells" in header(sweep)


def adapter_based(method) -> bool:
    return not method.class_path.endswith(NOT_ADAPTERS)


@pytest.mark.parametrize(
    "name, runs, cells, methods, bottlenecks",
    [
        ("table1", 1040, 160, 12, [24, 48, 96]),
        ("table2", 210, 120, 3, [24, 48, 96]),
        ("appendix_b", 560, 40, 14, None),  # bottleneck 24, set in init_args; Intrinsic-SAID per d'
        ("table7", 1600, 160, 14, [24, 48, 96]),  # Appendix C
        ("table8", 810, 90, 9, [24, 48, 96]),
        ("table9", 1760, 160, 18, [16, 32, 64]),  # Appendix E, T5-small
    ],
)
def test_the_protocol_sweeps_search_the_papers_space_and_say_their_size(name, runs, cells, methods, bottlenecks):
    sweep = load_sweep(ROOT / "configs" / "sweeps" / f"{name}.yaml")
    assert_size(sweep, runs, cells)
    assert len(sweep.methods) == methods and sweep.sizes == {None: {}}
    for method in sweep.methods.values():
        axes = {key: sorted({c.values[key] for c in method.configs}) for key in method.configs[0].values}
        assert axes.pop("model.learning_rate") == PAPER_RATES
        assert axes == ({"init_args.bottleneck": bottlenecks} if adapter_based(method) and bottlenecks else {})
        if adapter_based(method):  # the authors' activation, named (its default was gelu before)
            assert method.init_args["non_linearity"] == "gelu_new", method.name
    base_task = yaml.safe_load(sweep.base_config.read_text())["data"]["task"]
    benchmark = TASKS[base_task].benchmark
    assert [t for t, task in TASKS.items() if task.benchmark == benchmark] == list(sweep.tasks)
    base_epochs = yaml.safe_load(sweep.base_config.read_text())["trainer"]["max_epochs"]
    epochs = {t: o.get("trainer.max_epochs", base_epochs) for t, o in sweep.tasks.items()}
    assert epochs == {t: 20 if TASKS[t].small else 3 for t in sweep.tasks}  # the paper's Appendix A


def per_n(sweep) -> dict[str, list[int]]:
    """PHM-Adapter, Compacter and Compacter++: the n of their methods, one method per n."""
    classes = ("PHMAdapter", "Compacter", "CompacterPlusPlus")
    return {
        cls: sorted(m.init_args["n"] for m in sweep.methods.values() if m.class_path.rpartition(".")[2] == cls)
        for cls in classes
    }


def test_table7_trains_the_output_layer_of_each_of_its_methods():
    sweep = load_sweep(ROOT / "configs" / "sweeps" / "table7.yaml")
    assert all(m.init_args["train_output_layer"] is True for m in sweep.methods.values())
    classes = {m.class_path.rpartition(".")[2] for m in sweep.methods.values()}
    assert classes == {"Adapter", "PfeifferAdapter", "AdapterDrop", "AdapterLowRank", "BitFit"} | set(per_n(sweep))
    assert per_n(sweep) == dict.fromkeys(per_n(sweep), [4, 8, 12])


def test_table8_is_each_phm_method_once_per_n_on_superglue():
    sweep = load_sweep(ROOT / "configs" / "sweeps" / "table8.yaml")
    assert per_n(sweep) == dict.fromkeys(per_n(sweep), [4, 8, 12]) and len(sweep.methods) == 9
    assert sweep.tasks == load_sweep(ROOT / "configs" / "sweeps" / "table2.yaml").tasks  # ReCoRD's own settings


def test_table9_runs_every_method_on_t5_small_with_appendix_e_sizes():
    sweep = load_sweep(ROOT / "configs" / "sweeps" / "table9.yaml")
    assert {run.overrides["model.model_name_or_path"] for run in sweep.runs()} == {"google-t5/t5-small"}
    names = {m.name.rsplit("-n", 1)[0] for m in sweep.methods.values()}  # phm_adapter-n4 is phm_adapter's n 4
    assert names == set(load_sweep(ROOT / "configs" / "sweeps" / "table1.yaml").methods)  # Table 9's 12 methods
    assert per_n(sweep) == dict.fromkeys(per_n(sweep), [4, 8, 16])  # each divides 512, 16, 32, 64: checked above
    assert sweep.methods["intrinsic_said"].init_args["intrinsic_dim"] == 20_000  # Table 9: 0.033% of 60,506,624
    assert {m.init_args["num_tokens"] for m in sweep.methods.values() if m.class_path.endswith("PromptTuning")} == {100}


# The learning rates the paper selected: Table 4 (GLUE, the runs of Table 1) and Table 11 (SuperGLUE, Table 2).
SELECTED_RATES = {
    "table1_selected": {
        "full": 3e-4,
        "adapter": 3e-4,
        "pfeiffer": 3e-4,
        "adapterdrop": 3e-4,
        "adapter_lowrank": 3e-3,
        "prompt_random": 3e-2,
        "prompt_vocab": 3e-1,
        "intrinsic_said": 3e-2,
        "bitfit": 3e-4,
        "phm_adapter": 3e-3,
        "compacter": 3e-3,
        "compacter++": 3e-3,
    },
    "table2_selected": {
        "full": 3e-4,
        "adapter": 3e-4,
        "pfeiffer": 3e-4,
        "adapterdrop": 3e-4,
        "adapter_lowrank": 3e-3,
        "prompt_random": 3e-2,
        "prompt_vocab": 3e-1,
        "intrinsic_said": 3e-3,
        "bitfit": 3e-4,
        "phm_adapter": 3e-3,
        "compacter": 3e-3,
        "compacter++": 3e-3,
    },
}


@pytest.mark.parametrize(
    "name, runs, cells, n",
    [
        ("table1_selected", 96, 8, {"phm_adapter": 12, "compacter": 4, "compacter++": 4}),  # Table 1's rows
        ("table2_selected", 72, 6, {"phm_adapter": 4, "compacter": 12, "compacter++": 12}),  # Table 2's rows
    ],
)
def test_the_selected_sweeps_run_the_papers_selected_configuration_once(name, runs, cells, n):
    sweep = load_sweep(ROOT / "configs" / "sweeps" / f"{name}.yaml")
    assert_size(sweep, runs, cells)
    assert list(sweep.methods) == list(load_sweep(ROOT / "configs" / "sweeps" / "table1.yaml").methods)
    assert all(len(m.configs) == 1 and not m.configs[0].values for m in sweep.methods.values())  # no search
    assert {name: m.overrides["model.learning_rate"] for name, m in sweep.methods.items()} == SELECTED_RATES[name]
    assert {name: m.init_args["n"] for name, m in sweep.methods.items() if "n" in m.init_args} == n
    adapters = [m for m in sweep.methods.values() if adapter_based(m)]
    assert len(adapters) == 7 and all(m.init_args["bottleneck"] == 24 for m in adapters)
    assert all(m.init_args["non_linearity"] == "gelu_new" for m in adapters)
    benchmark = "GLUE" if name == "table1_selected" else "SuperGLUE"
    assert list(sweep.tasks) == [t for t, task in TASKS.items() if task.benchmark == benchmark]


def test_runs_carry_their_coordinates_and_overrides(tmp_path):
    sweep = load_sweep(DEMO_SWEEP, out_dir=tmp_path)
    runs = sweep.runs()
    assert [r.name for r in runs[:4]] == [
        "rte-full-n100-s0",
        "rte-compacter++-n100-s0",
        "rte-full-n600-s0",
        "rte-compacter++-n600-s0",
    ]
    args = runs[1].args()
    for expected in (
        "--data.task=rte",
        "--data.train_size=100",
        "--seed_everything=0",
        "--model.learning_rate=0.03",
        "--trainer.max_epochs=10",
        "--model.method=null",
    ):
        assert expected in args, args
    assert json.loads(args[args.index("--model.method=null") + 1].split("=", 1)[1])["init_args"]["bottleneck"] == 8


def test_shards_are_disjoint_and_cover_the_grid():
    runs = load_sweep(ROOT / "configs" / "sweeps" / "low_resource.yaml").runs()
    for count in range(1, 8):
        shards = [shard_of(runs, (index, count)) for index in range(count)]
        names = [run.name for shard in shards for run in shard]
        assert sorted(names) == sorted(run.name for run in runs)  # cover, and no run twice
        cells = [{(run.seed, run.task, run.size) for run in shard} for shard in shards]
        assert sum(map(len, cells)) == len(set.union(*cells))  # a cell's methods all run in one shard


def test_dry_run_lists_the_runs_of_a_shard(tmp_path, capsys):
    code, out, _ = sweep_in_process(
        capsys, "--config", str(DEMO_SWEEP), "--out", str(tmp_path), "--dry_run", "--shard", "1/3"
    )
    assert code == 0
    expected = [run.describe() for run in shard_of(load_sweep(DEMO_SWEEP).runs(), (1, 3))]
    listed = re.findall(r"^\[\d/(\d)\] (rte \S+ n=\d+ seed=\d) \(to run\)", out, re.M)
    assert listed == [(str(len(expected)), what) for what in expected] and len(expected) == 2
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


ALSO_SET = "is also set in init_args or overrides: set it in one place"
SEARCHED = {
    "class_path": "CompacterPlusPlus",
    "init_args": {"bottleneck": 8, "sublayers": ["feed_forward"]},
    "search": {"model.learning_rate": [3.0e-4, 3.0e-3], "init_args.n": [4, 8]},
}


def test_search_axes_make_one_named_configuration_per_combination(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, methods={"compacter++": SEARCHED}, sizes={100: None}, seeds=[0]))
    runs = sweep.runs()
    assert [r.name for r in runs] == [
        "rte-compacter++-lr3e-4_n4-n100-s0",
        "rte-compacter++-lr3e-4_n8-n100-s0",
        "rte-compacter++-lr3e-3_n4-n100-s0",
        "rte-compacter++-lr3e-3_n8-n100-s0",
    ]
    assert runs[3].config.values == {"model.learning_rate": 3e-3, "init_args.n": 8}
    args = runs[3].args()
    assert "--model.learning_rate=0.003" in args
    method = json.loads(next(a for a in args if a.startswith("--model.method={")).split("=", 1)[1])
    # the search's init_args join the method's own; a list in init_args is the argument's value, not an axis
    assert method["init_args"] == {"bottleneck": 8, "sublayers": ["feed_forward"], "n": 8}
    assert len({r.fingerprint(sweep.base_content()) for r in runs}) == 4


def test_a_sweep_without_search_keeps_its_run_names_fingerprints_and_cells(tmp_path):
    """Fingerprints computed by the sweep code before search axes existed: its results.jsonl still counts."""
    base = tmp_path / "base.yaml"
    base.write_text("model:\n  learning_rate: 0.003\ntrainer:\n  max_epochs: 2\n")
    path = tmp_path / "sweep.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "base_config": str(base),
                "tasks": ["rte", "cb"],
                "sizes": {100: {"trainer.max_epochs": 3}, "full": None},
                "methods": {
                    "compacter++": {
                        "class_path": "CompacterPlusPlus",
                        "init_args": {"n": 4, "sublayers": ["feed_forward"]},
                    },
                    "full": {"class_path": "FullFineTuning", "overrides": {"model.learning_rate": 3e-4}},
                },
                "seeds": [0, 1],
            }
        )
    )
    sweep = load_sweep(path)
    runs = sweep.runs()
    fingerprints = {r.name: r.fingerprint(sweep.base_content()) for r in runs}
    assert {
        name: fingerprints[name]
        for name in ("rte-compacter++-n100-s0", "rte-full-n100-s0", "rte-compacter++-nfull-s0", "cb-full-nfull-s1")
    } == {
        "rte-compacter++-n100-s0": "6937d8ce71484c49",
        "rte-full-n100-s0": "c9c2825a7a36df19",
        "rte-compacter++-nfull-s0": "0f1711eb60089e59",
        "cb-full-nfull-s1": "c83e5f506e45433f",
    }
    assert [r.cell for r in runs] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]


def test_shards_of_a_search_are_disjoint_cover_it_and_keep_a_configuration_of_a_cell_together(tmp_path):
    rates = {"model.learning_rate": [3.0e-4, 3.0e-3]}
    methods = {
        "compacter++": SEARCHED,
        "full": {"class_path": "FullFineTuning", "search": rates},
        "bitfit": {"class_path": "BitFit", "search": rates},
    }
    runs = load_sweep(write_sweep(tmp_path, methods=methods)).runs()
    assert len(runs) == (4 + 2 + 2) * 2 * 2  # configurations x sizes x seeds
    for count in range(1, 9):
        shards = [shard_of(runs, (index, count)) for index in range(count)]
        assert sorted(r.name for shard in shards for r in shard) == sorted(r.name for r in runs)
        cells = [{(r.seed, r.task, r.size, r.config.name) for r in shard} for shard in shards]
        assert sum(map(len, cells)) == len(set.union(*cells))  # the methods of one configuration: one shard
    # a cell: one seed, task, size and configuration name: lr3e-4 holds full and bitfit, lr3e-4_n4 compacter++ alone
    cells = {}
    for run in runs:
        cells.setdefault(run.cell, set()).add((run.seed, run.size, run.config.name, run.method.name))
    assert len(cells) == (4 + 2) * 2 * 2
    assert sorted(len(members) for members in cells.values()) == [1] * 16 + [2] * 8


def test_a_finished_run_of_a_search_counts_on_resume(tmp_path, capsys):
    path = write_sweep(tmp_path, methods={"compacter++": SEARCHED}, sizes={100: None}, seeds=[0])
    sweep = load_sweep(path)
    run = sweep.runs()[2]
    results = tmp_path / "out" / "results.jsonl"
    results.parent.mkdir()
    results.write_text(
        json.dumps(
            {
                "run": run.name,
                "task": "rte",
                "method": "compacter++",
                "size": 100,
                "seed": 0,
                "config": run.config.name,
                "val": {"score": 1.0},
                "test": {"score": 1.0},
                "fingerprint": run.fingerprint(sweep.base_content()),
            }
        )
        + "\n"
    )
    code, out, _ = sweep_in_process(capsys, "--config", str(path), "--dry_run")
    assert code == 0 and "4 runs in the grid, 1 finished, 3 to run" in out
    assert "rte compacter++ lr3e-3_n4 n=100 seed=0 (finished)" in out
    counts = out[out.index("runs per method and task") :].splitlines()
    assert counts[1].split() == ["method", "configurations", "rte", "total"]
    assert counts[2].split() == ["compacter++", "4", "4", "4"] and counts[3].split() == ["total", "4", "4"]
    wider = {**SEARCHED, "search": {"model.learning_rate": [3.0e-4, 3.0e-3, 3.0e-2], "init_args.n": [4, 8]}}
    path = write_sweep(tmp_path, methods={"compacter++": wider}, sizes={100: None}, seeds=[0])
    code, out, _ = sweep_in_process(capsys, "--config", str(path), "--dry_run")  # a value more: 2 runs more
    assert code == 0 and "6 runs in the grid, 1 finished, 5 to run" in out


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0.04, "0.0s"),
        (55.54, "55.5s"),
        (63.2, "1m03s"),
        (3599.4, "59m59s"),
        (3600, "1h00m"),
        (7530, "2h05m"),
        (90061, "25h01m"),
    ],
)
def test_durations_read_as_seconds_minutes_or_hours(seconds, text):
    assert duration(seconds) == text
    assert re.fullmatch(DURATION, text)  # the pattern the output checks use


# --- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, fragments",
    [
        ({"seed": [0]}, ["unknown key 'seed'", "did you mean 'seeds'?"]),
        ({"tasks": ["rte", "rtee"]}, ["unknown task 'rtee'", "did you mean 'rte'?"]),
        (
            {"methods": {"compacter++": {"class_path": "compacter_pl.methods.CompacterPlusPlu"}}},
            ["unknown method 'compacter_pl.methods.CompacterPlusPlu'", "did you mean 'CompacterPlusPlus'?"],
        ),
        (
            {"methods": {"full": {"class_path": "compacter_pl.methods.FullFineTuning", "init_arg": {}}}},
            ["methods: unknown key 'init_arg' in {'class_path'", "did you mean 'init_args'?"],
        ),
        (
            {"methods": {"compacter++": {"class_path": "CompacterPlusPlus", "init_args": {"bottlenek": 8}}}},
            ["does not parse (check methods.compacter++)", "unknown key 'bottlenek'", "did you mean 'bottleneck'?"],
        ),
        ({"sizes": {100: {"trainer.max_epoch": 3}}}, ["does not parse (check sizes.100)", "trainer.max_epoch"]),
        ({"exclude": [{"task": "rte", "sise": 100}]}, ["exclude: unknown key 'sise'", "did you mean 'size'?"]),
        ({"seeds": [0, "one"]}, ["seeds:", "NonNegativeInt", "'one'"]),
        ({"tasks": 5}, ["tasks: expected one of list[str]", "got 5"]),
        ({"keep_checkpoints": "bst"}, ["keep_checkpoints: expected one of all, best, none", "did you mean 'best'?"]),
        ({"overrides": {"data.train_size": 5}}, ["cannot set data.train_size: the sweep sets it from sizes"]),
        ({"exclude": [{"task": "rte", "size": 200}]}, ["exclude[0].size 200 is not in the sweep's sizes"]),
        (
            {"sizes": {100: None, 1000: None}},
            ["size 1000 is larger than the training split of rte (600 examples)", "exclude"],
        ),
        (
            {"methods": {"compacter++": {**SEARCHED, "search": {"model.learning_rate": 3.0e-4}}}},
            [
                "methods.compacter++.search.model.learning_rate must be a list of values, got 0.0003",
                "belongs in the method's overrides",
            ],
        ),
        (
            {"methods": {"compacter++": {**SEARCHED, "search": {"init_args.n": []}}}},
            ["methods.compacter++.search.init_args.n must list distinct values"],
        ),
        (
            {"methods": {"compacter++": {**SEARCHED, "search": {"init_args.bottleneck": [8, 16]}}}},
            [f"methods.compacter++.search.init_args.bottleneck {ALSO_SET}"],
        ),
        (
            {"methods": {"compacter++": {**SEARCHED, "search": {"trainer.max_epochs": [1, 2]}}}},
            ["methods.compacter++.search.trainer.max_epochs is also set in init_args or overrides"],
        ),  # by sizes
        (
            {"methods": {"compacter++": {**SEARCHED, "search": {"model.method.init_args.n": [4]}}}},
            ["methods.compacter++.search cannot set model.method.init_args.n: the sweep sets it from methods"],
        ),
        (
            {"methods": {"compacter++": {**SEARCHED, "search": {"data.seed": [1, 2]}}}},
            ["methods.compacter++.search cannot set data.seed: the sweep sets it from seeds"],
        ),
        (
            {"methods": {"compacter++": {**SEARCHED, "search": {"init_args.nn": [4]}}}},
            ["does not parse (check methods.compacter++)", "unknown key 'nn'", "did you mean 'n'?"],
        ),
        (
            {"methods": {"compacter++": {**SEARCHED, "search": {"model.learning_rat": [0.1]}}}},
            ["does not parse (check methods.compacter++.search)", "model.learning_rat"],
        ),
    ],
)
def test_bad_sweep_files_are_one_line_errors(tmp_path, capsys, change, fragments):
    path = write_sweep(tmp_path, **change)
    code, _, err = sweep_in_process(capsys, "--config", str(path))
    one_line_error(code, err, str(path), *fragments)
    assert not (tmp_path / "out" / "runs").exists()  # nothing ran


def test_bad_shard_is_a_one_line_error(capsys):
    code, _, err = sweep_in_process(capsys, "--config", str(DEMO_SWEEP), "--shard", "3/3", "--dry_run")
    one_line_error(code, err, "--shard expects I/N with 0 <= I < N", "SLURM_ARRAY_TASK_ID")


def test_a_corrupt_results_line_is_reported_and_left_in_place(tmp_path, capsys):
    path = write_sweep(tmp_path)
    results = tmp_path / "out" / "results.jsonl"
    results.parent.mkdir()
    results.write_text('{"run": "rte-full-n100-s0", "task": "r\n')  # torn
    code, out, err = sweep_in_process(capsys, "--config", str(path), "--dry_run")
    assert code == 0 and "Traceback" not in err
    assert f"warning: {results} line 1: not valid JSON" in err
    assert "0 finished, 8 to run" in out  # the corrupt line does not count as a finished run
    assert results.read_text() == '{"run": "rte-full-n100-s0", "task": "r\n'


def test_a_finished_run_with_other_settings_is_an_error(tmp_path, capsys):
    path = write_sweep(tmp_path)
    results = tmp_path / "out" / "results.jsonl"
    results.parent.mkdir()
    line = {
        "run": "rte-full-n100-s0",
        "task": "rte",
        "method": "full",
        "size": 100,
        "seed": 0,
        "val": {"score": 1.0},
        "test": {"score": 1.0},
        "fingerprint": "made-with-another-learning-rate",
    }
    results.write_text(json.dumps(line) + "\n")
    code, _, err = sweep_in_process(capsys, "--config", str(path), "--dry_run")
    one_line_error(code, err, "holds run rte-full-n100-s0 made with other settings", "--out")


def _finished_compacter_run(tmp_path, **record) -> tuple:
    """The demo sweep with one finished Compacter++ run (its fingerprint as the sweep computes it)."""
    path = write_sweep(tmp_path)
    sweep = load_sweep(path)
    run = next(r for r in sweep.runs() if r.method.name == "compacter++")
    results = tmp_path / "out" / "results.jsonl"
    results.parent.mkdir(exist_ok=True)
    line = {"run": run.name, "task": "rte", "method": "compacter++", "size": run.size, "seed": run.seed}
    line |= {"val": {"score": 1.0}, "test": {"score": 1.0}, "fingerprint": run.fingerprint(sweep.base_content())}
    results.write_text(json.dumps({**line, **record}) + "\n")
    return path, run


def test_a_finished_run_made_under_another_default_is_an_error_naming_the_argument(tmp_path, capsys):
    """The sweep file did not name non_linearity, whose default changed: the finished run is not this grid's."""
    ran = {"n": 4, "bottleneck": 8, "non_linearity": "gelu", "sublayers": ["feed_forward"], "init": "glorot-uniform"}
    path, run = _finished_compacter_run(tmp_path, method_init_args=ran)
    code, _, err = sweep_in_process(capsys, "--config", str(path), "--dry_run")
    one_line_error(code, err, f"holds run {run.name} made with non_linearity='gelu'", "'gelu_new'", "--out")
    assert "methods.compacter++.init_args" in err  # how to go on with those runs instead


def test_a_finished_run_recorded_before_its_arguments_were_reads_them_from_its_config(tmp_path, capsys):
    path, run = _finished_compacter_run(tmp_path, log_dir="runs/old")
    (tmp_path / "out" / "runs" / "old").mkdir(parents=True)
    config = {"model": {"method": {"class_path": "compacter_pl.methods.CompacterPlusPlus"}}}
    config["model"]["method"]["init_args"] = {"n": 4, "bottleneck": 8, "non_linearity": "gelu", "seed": None}
    (tmp_path / "out" / "runs" / "old" / "config.yaml").write_text(yaml.safe_dump(config))
    code, _, err = sweep_in_process(capsys, "--config", str(path), "--dry_run")
    one_line_error(code, err, f"holds run {run.name} made with non_linearity='gelu'")
    config["model"]["method"]["init_args"]["non_linearity"] = "gelu_new"  # the same run as now: it counts
    (tmp_path / "out" / "runs" / "old" / "config.yaml").write_text(yaml.safe_dump(config))
    code, out, _ = sweep_in_process(capsys, "--config", str(path), "--dry_run")
    assert code == 0 and "1 finished, 7 to run" in out


@pytest.mark.parametrize(
    "name, table, rows",
    [
        ("table1", 1, "all"),
        ("table1_selected", 1, "all"),
        ("table2", 2, ["full", "compacter", "compacter++"]),  # the three methods it searches
        ("table2_selected", 2, "all"),
        ("appendix_b", 6, "all"),
        ("table7", 7, "all"),
        ("table8", 8, "all"),
        ("table9", 9, "all"),
    ],
)
def test_each_table_of_the_paper_has_a_sweep_whose_runs_go_beside_its_rows(name, table, rows):
    """Every row of the table is some method of the sweep, as the report matches runs to rows (method, model,
    benchmark, the arguments the row stands for), and no method of the sweep lands in another table's row only."""
    import compacter_pl.methods  # noqa: F401
    from compacter_pl.methods.registry import complete_init_args, entry_of_config, method_class
    from compacter_pl.tools.paper import matching_rows, paper

    sweep = load_sweep(ROOT / "configs" / "sweeps" / f"{name}.yaml")
    base = yaml.safe_load(sweep.base_config.read_text())
    model = sweep.overrides.get("model.model_name_or_path", base["model"]["model_name_or_path"])
    benchmark = TASKS[next(iter(sweep.tasks))].benchmark
    reached = set()
    for method in sweep.methods.values():
        cls = method_class(method.class_path)
        arguments = complete_init_args(cls, method.init_args)
        found = matching_rows(entry_of_config(cls, method.init_args).key, arguments, model, benchmark)
        assert table in [t.number for t, _ in found], (name, method.name)
        reached |= {(t.number, t.rows.index(r)) for t, r in found if t.number == table}
    wanted = paper().table(table).rows
    expected = {(table, k) for k, r in enumerate(wanted) if rows == "all" or r.method in rows}
    assert reached == expected
