"""Checkpoints that cannot be loaded and faults while writing them: one line naming the file and what is wrong with
it, nothing run from a file, nothing the user had lost, and the option named is the one the user gave."""

import json
import os
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from safetensors.torch import save_file

from compacter_pl.errors import UserError
from compacter_pl.export import CONFIG_FILE, WEIGHTS_FILE
from compacter_pl.hub import load_t5
from compacter_pl.training.checkpoints import AtomicCheckpointIO
from tests.helpers import ROOT, error_line, in_process, one_line_error, quiet_trainer, run_demo

DEMO = str(ROOT / "configs/demo.yaml")
MARKER = "ran-pickled-code"  # the crafted checkpoints' payload creates this file if unpickled without weights_only


class Case(NamedTuple):
    """One bad input: its id, the argv ({files} stands for the folder of `bad_files`), the exit code, and the words
    its one `error:` line holds."""

    id: str
    argv: list[str]
    code: int
    words: list[str]


class RunsCode:
    """Unpickles as a call of os.system (a `posix.system` global), as a crafted checkpoint would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def architecture() -> dict:
    from compacter_pl.export import architecture_of

    return architecture_of(load_t5(str(ROOT / "demo/tiny-t5")).config)


def compacter_checkpoint(method: dict) -> dict:
    """The keys `export` reads from a checkpoint that fit wrote (no training needed to export it)."""
    return {
        "state_dict": {"model.shared.weight": torch.ones(4, 2)},
        "hyper_parameters": {
            "method": method,
            "model_name_or_path": "demo/tiny-t5",
            "base_architecture": architecture(),
            "task": "rte",
        },
        "epoch": 0,
        "global_step": 1,
    }


FULL_FINE_TUNING = {"class_path": "compacter_pl.methods.FullFineTuning", "init_args": {}}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> Path:
    """Every kind of file that is not a checkpoint, and checkpoints that must not load, in one folder."""
    files = tmp_path_factory.mktemp("bad-checkpoints")
    whole = files / "whole.ckpt"
    torch.save({"state_dict": {"model.w": torch.ones(10_000)}, "hyper_parameters": {}}, whole)
    (files / "truncated.ckpt").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    (files / "notes.txt").write_text("epoch 3: val/score 0.71\n")
    save_file({"shared.weight": torch.ones(2, 2)}, str(files / "adapter.safetensors"))
    torch.save(torch.ones(3), files / "tensor.ckpt")
    torch.save({"epoch": 1, "optimizer_states": []}, files / "no_state_dict.ckpt")
    (files / "checkpoints").mkdir()
    torch.save({"state_dict": {}, "hyper_parameters": {}, "extra": RunsCode(files / MARKER)}, files / "payload.ckpt")
    torch.save(compacter_checkpoint({"class_path": "os.system", "init_args": {}}), files / "os_system_method.ckpt")
    torch.save(compacter_checkpoint(FULL_FINE_TUNING), files / "compacter.ckpt")
    (files / "existing_export").mkdir()
    (files / "existing_export" / CONFIG_FILE).write_text("{}\n")
    (files / "a_file").write_text("")
    return files


BAD_CHECKPOINTS = {  # file: the words that say what it is
    "nope.ckpt": ["nope.ckpt does not exist", "--ckpt_path"],
    "truncated.ckpt": ["truncated.ckpt", "truncated or corrupt"],
    "notes.txt": ["notes.txt is not a checkpoint"],
    "adapter.safetensors": ["adapter.safetensors is a safetensors file", "not a Lightning checkpoint"],
    "tensor.ckpt": ["tensor.ckpt holds a Tensor", "not a Lightning checkpoint"],
    "no_state_dict.ckpt": ["no_state_dict.ckpt has no state_dict", "epoch, optimizer_states"],
    "checkpoints": ["checkpoints is a directory", "--ckpt_path"],
    "payload.ckpt": ["payload.ckpt holds objects other than tensors", "posix.system", "was NOT loaded"],
}


def _command(command: str, ckpt: str) -> list[str]:
    if command == "export":
        return ["export", "--ckpt_path", f"{{files}}/{ckpt}", "--out", f"{{files}}/export-{ckpt}"]
    return [command, "--config", DEMO, "--ckpt_path", f"{{files}}/{ckpt}"]


CASES = [
    *(
        Case(f"{command}-{Path(ckpt).stem}", _command(command, ckpt), 2, words)
        for ckpt, words in BAD_CHECKPOINTS.items()
        for command in ("fit", "validate", "test", "predict", "export")
    ),
    Case("export-os-system-method", _command("export", "os_system_method.ckpt"), 2, ["names method 'os.system'"]),
    Case(
        "test-os-system-method",
        _command("test", "os_system_method.ckpt"),
        2,
        ["os_system_method.ckpt holds hyper-parameters", "os.system"],
    ),
    Case(
        "export-over-an-export",
        ["export", "--ckpt_path", "{files}/compacter.ckpt", "--out", "{files}/existing_export"],
        2,
        ["existing_export already holds files", "--overwrite"],
    ),
    Case(
        "export-out-is-a-file",
        ["export", "--ckpt_path", "{files}/compacter.ckpt", "--out", "{files}/a_file"],
        2,
        ["--out", "a_file is a file"],
    ),
    Case(
        "export-out-unwritable",
        ["export", "--ckpt_path", "{files}/compacter.ckpt", "--out", "{unwritable}/export"],
        2,
        ["cannot write", "choose another --out"],
    ),
]


@pytest.fixture(scope="module")
def unwritable(tmp_path_factory) -> Path:
    """A folder in which nothing can be created (root writes through permission bits: sysfs refuses it too)."""
    if os.geteuid() == 0:
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no read-only location available")
        return Path("/sys/kernel")
    locked = tmp_path_factory.mktemp("locked")
    locked.chmod(0o555)
    return locked


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_checkpoints_and_export_targets_are_one_line(capsys, bad_files, unwritable, case):
    argv = [arg.format(files=bad_files, unwritable=unwritable) for arg in case.argv]
    code, _, err = in_process(capsys, *argv)
    assert code == case.code, err[-2000:]
    line = error_line(err, *case.words)
    assert "weights_only" not in line and not (bad_files / MARKER).exists()


def test_every_checkpoint_load_is_weights_only_whatever_the_environment_says(monkeypatch, bad_files, tmp_path):
    """Lightning's own loads (trainer.fit(ckpt_path=...) resuming) go through the strategy's checkpoint IO with
    weights_only=None, which TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 turns into a full unpickle: the plugin refuses."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    trainer = quiet_trainer(default_root_dir=tmp_path)  # the project's plugin: AtomicCheckpointIO
    with pytest.raises(UserError, match="holds objects other than tensors .* was NOT loaded"):
        trainer.strategy.load_checkpoint(bad_files / "payload.ckpt")  # what resume_start calls
    with pytest.raises(UserError, match="was NOT loaded"):
        AtomicCheckpointIO().load_checkpoint(bad_files / "payload.ckpt", weights_only=False)
    assert not (bad_files / MARKER).exists()
    assert trainer.strategy.load_checkpoint(bad_files / "whole.ckpt")["state_dict"]["model.w"].shape == (10_000,)


@pytest.mark.slow
@pytest.mark.faults
def test_a_crafted_last_checkpoint_runs_no_code_when_the_environment_allows_pickles(cli, tmp_path):
    checkpoints = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save({"state_dict": {}, "extra": RunsCode(tmp_path / MARKER)}, checkpoints / "last.ckpt")
    result = run_demo(cli, tmp_path, "--ckpt_path", "last", env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    one_line_error(result.returncode, result.stderr, f"{checkpoints / 'last.ckpt'} holds objects other than tensors")
    assert not (tmp_path / MARKER).exists()


def test_a_failed_write_removes_its_temporary_file_and_a_new_run_removes_those_of_killed_ones(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "best-0-19.ckpt.tmp").write_bytes(b"half of a checkpoint a killed run left")
    (folder / "notes.tmp").write_text("not ours: kept")
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, folder / "last.ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "notes.tmp"]

    def full_disk(obj, f):
        f.write(b"x" * 100)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 923328 vs 923220") from (
            OSError(28, "No space left on device")
        )

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError) as error:
        io.save_checkpoint({"step": 2}, folder / "last.ckpt")
    assert error.value.errno == 28 and error.value.filename == str(folder / "last.ckpt")
    monkeypatch.undo()
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "notes.tmp"]
    assert torch.load(folder / "last.ckpt", weights_only=True) == {"step": 1}  # the older one, intact


def test_a_killed_export_leaves_the_previous_export_and_the_next_one_cleans_up(
    capsys, bad_files, tmp_path, monkeypatch
):
    ckpt, out = str(bad_files / "compacter.ckpt"), tmp_path / "export"
    assert in_process(capsys, "export", "--ckpt_path", ckpt, "--out", str(out))[0] == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}  # its files and model card

    def killed(*args, **kwargs):  # the weights are written; the process dies before the config is
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dumps", killed)
    with pytest.raises(KeyboardInterrupt):
        in_process(capsys, "export", "--ckpt_path", ckpt, "--out", str(out), "--overwrite")
    monkeypatch.undo()
    assert {name: (out / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no half-written folder beside it

    (tmp_path / ".export.partial").mkdir()  # what a SIGKILL mid-export leaves
    (tmp_path / ".export.partial" / WEIGHTS_FILE).write_bytes(b"half")
    code, out_text, err = in_process(capsys, "export", "--ckpt_path", ckpt, "--out", str(out), "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


def _mount_tmpfs(folder: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.decode().strip()}")


@pytest.mark.slow
@pytest.mark.faults
def test_a_full_disk_says_so_naming_the_file_and_keeps_the_older_checkpoint(cli, tmp_path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "3m")  # a demo checkpoint is 2.2 MB: the best one fits, last.ckpt then does not
    try:
        result = cli(
            "fit",
            "--config",
            DEMO,
            "--trainer.max_epochs",
            "1",
            "--trainer.default_root_dir",
            str(disk),
            "--data.cache_dir",
            str(tmp_path / "cache"),
        )
        checkpoints = disk / "lightning_logs" / "version_0" / "checkpoints"
        one_line_error(
            result.returncode,
            result.stderr,
            f"the disk is full: cannot write {checkpoints / 'last.ckpt'}",
            "choose another --trainer.default_root_dir",
        )
        assert sorted(p.name for p in checkpoints.iterdir()) == ["best-0-19.ckpt"]  # no *.ckpt.tmp left
        assert torch.load(checkpoints / "best-0-19.ckpt", weights_only=True)["global_step"] == 19
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_checkpoint_of_another_method_than_the_command_names_is_refused_saying_what_differs(
    capsys, trained, tmp_path
):
    """A method the command names differs from the checkpoint's: refused (it was once loaded in its place with a
    warning, so a command that named BitFit scored a FullFineTuning run)."""
    code, _, err = in_process(
        capsys,
        "validate",
        "--config",
        DEMO,
        "--model.method.class_path",
        "compacter_pl.methods.BitFit",
        "--ckpt_path",
        str(trained),
        "--trainer.limit_val_batches",
        "1",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--data.cache_dir",
        str(trained.parents[3] / "cache"),
    )
    one_line_error(code, err, f"--ckpt_path {trained} is a run of another kind", "FullFineTuning() (the checkpoint)")
    assert "vs BitFit(" in err


def test_testing_without_a_checkpoint_says_the_model_is_untrained(capsys, trained, tmp_path):
    common = ["--trainer.limit_test_batches", "1", "--trainer.default_root_dir", str(tmp_path)]
    common += ["--data.cache_dir", str(trained.parents[3] / "cache")]
    code, _, err = in_process(capsys, "test", "--config", DEMO, *common)
    assert code == 0, err[-2000:]
    assert "warning: no --ckpt_path: testing the untrained model (demo/tiny-t5 with FullFineTuning" in err
    code, _, err = in_process(capsys, "test", "--config", DEMO, "--ckpt_path", str(trained), *common)
    assert code == 0 and "warning:" not in err, err[-2000:]


@pytest.mark.slow
def test_an_unwritable_predictions_file_names_its_option(capsys, trained, unwritable, tmp_path):
    code, _, err = in_process(
        capsys,
        "predict",
        "--config",
        DEMO,
        "--ckpt_path",
        str(trained),
        "--trainer.limit_predict_batches",
        "1",
        "--predictions.output",
        str(unwritable / "predictions" / "out.jsonl"),
        "--trainer.default_root_dir",
        str(tmp_path),
        "--data.cache_dir",
        str(trained.parents[3] / "cache"),
    )
    one_line_error(code, err, "cannot write", "choose another --predictions.output")


@pytest.mark.parametrize("out", ["run", "run/checkpoints", "notes"])
def test_export_overwrite_never_replaces_the_run_it_reads_or_a_folder_that_is_not_an_export(
    capsys, bad_files, tmp_path, out
):
    """`export --overwrite --out <the run folder>` once deleted the run, the exported checkpoint included."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "best.ckpt"
    ckpt.write_bytes((bad_files / "compacter.ckpt").read_bytes())
    (run / "config.yaml").write_text("model: {}\n")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, _, err = in_process(capsys, "export", "--ckpt_path", str(ckpt), "--out", str(tmp_path / out), "--overwrite")
    assert code == 2, err
    words = "not an export, which this command never replaces" if out == "notes" else "which this command reads"
    assert words in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
