"""Where a command may write (`compacter_pl.files`): never over a file it reads, never into a folder that holds what
it reads, never over a folder that is not its own kind; and whole or not at all."""

import os

import pytest

from compacter_pl.errors import UserError
from compacter_pl.files import check_output_file, check_output_folder, write_atomically


@pytest.fixture
def run(tmp_path):
    """A run folder as fit leaves it: a checkpoint, its config and its events."""
    folder = tmp_path / "version_0"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    (folder / "config.yaml").write_text("model: {}\n")
    (folder / "events.out.tfevents.1").write_bytes(b"events")
    return folder


def test_an_output_file_that_is_an_input_is_refused_whatever_its_spelling(tmp_path, monkeypatch):
    data = tmp_path / "inputs.jsonl"
    data.write_text('{"premise": "p"}\n')
    (tmp_path / "link.jsonl").symlink_to(data)
    monkeypatch.chdir(tmp_path)
    for spelling in (data, "inputs.jsonl", "./inputs.jsonl", "link.jsonl", tmp_path / "sub" / ".." / "inputs.jsonl"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(UserError, match=r"^--predictions\.output .* is the file --data\.predict_file reads"):
            check_output_file(spelling, "--predictions.output", {"--data.predict_file": data})
    assert data.read_text() == '{"premise": "p"}\n'
    assert check_output_file("out.jsonl", "--predictions.output", {"--data.predict_file": data}).name == "out.jsonl"


def test_an_output_file_that_is_a_directory_is_refused(tmp_path):
    with pytest.raises(UserError, match="is a directory; pass a file name"):
        check_output_file(tmp_path, "--json", {})


def test_an_output_folder_holding_an_input_is_refused_even_with_overwrite(run):
    ckpt = run / "checkpoints" / "best.ckpt"
    for folder in (run, run / "checkpoints"):
        with pytest.raises(UserError, match=r"holds --ckpt_path .*best\.ckpt, which this command reads"):
            check_output_folder(folder, "--out", {"--ckpt_path": ckpt}, overwrite=True, is_own=lambda f: True)
    assert ckpt.read_bytes() == b"weights"


def test_overwrite_replaces_only_a_folder_of_its_own_kind(run, tmp_path):
    only_exports = lambda folder: {p.name for p in folder.iterdir()} <= {"adapter_config.json"}  # noqa: E731
    with pytest.raises(UserError, match="already holds files that are not an export, which this command never"):
        check_output_folder(run, "--out", {}, overwrite=True, is_own=only_exports, kind="an export")
    export = tmp_path / "export"
    export.mkdir()
    (export / "adapter_config.json").write_text("{}")
    with pytest.raises(UserError, match=r"already holds files \(an export\); pass --overwrite to replace them"):
        check_output_folder(export, "--out", {}, is_own=only_exports, kind="an export")
    assert check_output_folder(export, "--out", {}, overwrite=True, is_own=only_exports) == export
    assert check_output_folder(tmp_path / "new", "--out", {}) == tmp_path / "new"
    with pytest.raises(UserError, match="is a file; pass a directory for an export"):
        check_output_folder(run / "config.yaml", "--out", {}, kind="an export")


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_staging(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")

    class Unwritable:
        def __str__(self):
            raise RuntimeError("no")

    with pytest.raises(TypeError):
        write_atomically(path, Unwritable())  # type: ignore[arg-type]
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["results.json"]


def test_report_and_bench_never_write_over_what_they_read_or_into_a_folder_not_theirs(capsys, tmp_path):
    from tests.helpers import DEMO_DATA, in_process, one_line_error

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "report.md").write_text("my own notes\n")
    (notes / "todo.txt").write_text("keep me\n")
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "results.jsonl").write_text("")
    code, _, err = in_process(capsys, "report", str(sweep), "--out", str(notes))
    one_line_error(code, err, f"--out {notes} already holds files that are not a report")
    assert (notes / "report.md").read_text() == "my own notes\n"

    data = tmp_path / "rte"
    data.mkdir()
    for split in (DEMO_DATA / "rte").iterdir():
        (data / split.name).write_bytes(split.read_bytes())
    before = (data / "train.jsonl").read_bytes()
    code, _, err = in_process(
        capsys, "bench", "--data_dir", str(data), "--json", str(data / "train.jsonl"), "--model", "t5-small"
    )
    one_line_error(code, err, f"--json {data / 'train.jsonl'} is the file --data_dir (train.jsonl) reads")
    assert (data / "train.jsonl").read_bytes() == before


def test_a_sweep_writes_only_into_its_own_folder(capsys, tmp_path):
    from tests.helpers import in_process, one_line_error, write_sweep

    sweep = write_sweep(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("keep me\n")
    code, _, err = in_process(capsys, "sweep", "--config", str(sweep), "--dry_run")
    one_line_error(code, err, f"out_dir {tmp_path / 'out'} already holds files that are not a sweep")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["thesis.tex"]
    code, _, err = in_process(capsys, "sweep", "--config", str(sweep), "--out", str(tmp_path / "new"), "--dry_run")
    assert code in (0, None), err
