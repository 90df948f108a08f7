"""`--adapter EXPORT` on validate / test / predict: refused in one line where it cannot mean anything (fit, beside
--ckpt_path), and compared with the options a command gives as a checkpoint is (the export's identity)."""

import pytest
from huggingface_hub import constants

from compacter_pl.export import write_export
from tests.helpers import ROOT, in_process, one_line_error, random_export


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return write_export(random_export("bitfit", "rte", 0), tmp_path_factory.mktemp("adapter") / "rte_bitfit")


def test_an_adapter_is_refused_where_it_cannot_run(capsys, export, tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    demo = ["--config", str(ROOT / "configs/demo.yaml"), "--trainer.default_root_dir", str(tmp_path)]
    cases = {
        ("fit", "--adapter", str(export)): ["--adapter is for validate, test and predict"],
        ("test", "--adapter", str(export), "--ckpt_path", str(tmp_path / "x.ckpt")): [
            f"--adapter {export} and --ckpt_path {tmp_path / 'x.ckpt'} both name the weights to run; pass one"
        ],
        ("test", "--adapter", str(export), "--data.task", "cola"): [
            f"--adapter {export} is a run of another kind: --data.task 'rte' (the export) vs 'cola'",
            "leave them out (the export's are used)",
            "--eval_other_task true",
        ],
        ("predict", "--adapter", str(export), "--model.method", "Compacter"): [
            "--model.method BitFit(",
            "(the export) vs Compacter(",
        ],
        ("validate", "--adapter", "demo-user/not-cached"): [
            "adapter export 'demo-user/not-cached' is not a local directory, and HF_HUB_OFFLINE is set"
        ],
    }
    for argv, words in cases.items():
        code, _, err = in_process(capsys, argv[0], *demo, *argv[1:])
        one_line_error(code, err, *words)
