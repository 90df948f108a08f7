"""`cli.py serve`'s options are checked before anything loads or listens: each mistake is one line naming the
option; and a body FastAPI refuses is answered in one line too."""

import json
import shutil
import socket
import sys

import pytest

from compacter_pl.export import CONFIG_FILE, WEIGHTS_FILE, write_export
from compacter_pl.tools.serve.api import validation_refusal
from tests.helpers import in_process, one_line_error, random_export


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Two exports (rte, cb) in one folder."""
    root = tmp_path_factory.mktemp("exports")
    write_export(random_export("compacter", "rte", seed=0), root / "rte")
    write_export(random_export("lora", "cb", seed=1), root / "cb")
    return root


@pytest.fixture
def nothing_starts(monkeypatch):
    """Fail the test if a server would start (a check came too late)."""
    import litserve

    def refuse(*args, **kwargs):
        raise AssertionError("the server started")

    monkeypatch.setattr(litserve.LitServer, "run", refuse)


def serve(capsys, *args: str) -> str:
    """The one error line of `serve ARGS`."""
    code, _, err = in_process(capsys, "serve", *args)
    return one_line_error(code, err)


def edited_config(tmp_path, exports, name: str, **changes):
    """A copy of export `name` whose config has `changes`."""
    folder = tmp_path / name
    shutil.copytree(exports / name, folder)
    config = json.loads((folder / CONFIG_FILE).read_text())
    (folder / CONFIG_FILE).write_text(json.dumps({**config, **changes}))
    return folder


def test_serve_refuses_bad_adapter_options_in_one_line_naming_the_option(capsys, tmp_path, exports, nothing_starts):
    (tmp_path / "empty").mkdir()
    assert "no adapters to serve: pass --exports DIR" in serve(capsys)
    assert f"--exports {tmp_path / 'nope'} is not a folder" in serve(capsys, "--exports", str(tmp_path / "nope"))
    line = serve(capsys, "--exports", str(tmp_path / "empty"))
    assert f"--exports {tmp_path / 'empty'} holds no export" in line and CONFIG_FILE in line
    line = serve(capsys, "--exports", str(exports / "rte"))
    assert "is an export itself" in line and f"--adapters NAME={exports / 'rte'}" in line
    assert "--adapters 'rte' is not NAME=PATH" in serve(capsys, "--adapters", "rte")
    assert "--adapters '=x' is not NAME=PATH" in serve(capsys, "--adapters", "=x")
    line = serve(capsys, "--adapters", f"a={tmp_path / 'nope'}")
    assert line.startswith(f"error: --adapters: {tmp_path / 'nope'} is not a folder")
    line = serve(capsys, "--exports", str(exports), "--adapters", f"rte={exports / 'cb'}")
    assert f"adapter name 'rte' is given twice (--exports {exports / 'rte'} and --adapters {exports / 'cb'})" in line
    line = serve(capsys, "--adapters", f"x={exports / 'rte'}", f"x={exports / 'cb'}")
    assert "adapter name 'x' is given twice" in line

    partial = tmp_path / "partial"
    shutil.copytree(exports / "rte", partial / "rte")
    (partial / "rte" / WEIGHTS_FILE).unlink()
    assert f"--exports: {partial / 'rte'} lacks {WEIGHTS_FILE}" in serve(capsys, "--exports", str(partial))
    shutil.copy(exports / "rte" / WEIGHTS_FILE, partial / "rte")
    (partial / "rte" / CONFIG_FILE).write_text("{not json")
    assert "cannot read adapter_config.json" in serve(capsys, "--adapters", f"rte={partial / 'rte'}")
    folder = edited_config(tmp_path, exports, "rte", task="rtf")
    assert f"--adapters: {folder}: unknown task 'rtf'" in serve(capsys, "--adapters", f"rte={folder}")
    folder = edited_config(tmp_path / "m", exports, "rte", method={"class_path": "os.system"})
    assert "unknown method 'os.system'" in serve(capsys, "--adapters", f"rte={folder}")
    folder = edited_config(tmp_path / "b", exports, "cb", base_model="google-t5/t5-base")
    line = serve(capsys, "--adapters", f"rte={exports / 'rte'}", f"cb={folder}")
    assert "the exports name different base models" in line and "cb: google-t5/t5-base" in line
    assert "pass the one to load with --model" in line


def test_serve_refuses_bad_server_options_in_one_line(capsys, exports, nothing_starts):
    assert "--port 80 is outside 1024 to 65535" in serve(capsys, "--exports", str(exports), "--port", "80")
    line = serve(capsys, "--exports", str(exports), "--host", "localhost")
    assert "host" in line and "127.0.0.1" in line
    assert "max_batch_size" in serve(capsys, "--exports", str(exports), "--max_batch_size", "0")
    assert "batch_timeout" in serve(capsys, "--exports", str(exports), "--batch_timeout", "-1")
    assert "did you mean 'rank'?" in serve(capsys, "--exports", str(exports), "--eval_mode", "ranks")
    assert "did you mean 'exports'?" in serve(capsys, "--export", str(exports))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = serve(capsys, "--exports", str(exports), "--port", str(port))
    assert f"--port {port}: cannot listen on 127.0.0.1:{port}" in line and "choose another --port" in line


def test_serve_on_cuda_without_a_gpu_is_one_line(capsys, exports, nothing_starts, monkeypatch):
    import litserve.connector

    monkeypatch.setattr(litserve.connector, "check_cuda_with_nvidia_smi", lambda: 0)
    line = serve(capsys, "--exports", str(exports), "--accelerator", "cuda")
    assert "--accelerator cuda: nvidia-smi lists no visible GPU" in line


def test_serve_without_litserve_says_how_to_install_it(capsys, exports, monkeypatch):
    monkeypatch.setitem(sys.modules, "litserve", None)  # `import litserve` raises ImportError
    line = serve(capsys, "--exports", str(exports))
    assert "serve needs LitServe, which is not installed: pip install 'compacter-pl[serve]'" in line


def test_serve_help_documents_the_options(capsys):
    code, out, _ = in_process(capsys, "serve", "--help")
    text = " ".join(out.split())
    assert code == 0 and "each subfolder with adapter_config.json and adapter.safetensors is served" in text
    assert "Seconds a batch waits for more requests" in text and "--adapters ADAPTERS [ADAPTERS ...]" in text


BODIES = [  # FastAPI's first error for a body -> the status and words of the one line
    ([{"type": "json_invalid", "loc": ("body", 1), "msg": "JSON decode error", "ctx": {"error": "Expecting value"}}],
     400, "the body is not valid JSON (Expecting value)"),
    ([{"type": "model_attributes_type", "loc": ("body",), "msg": "Input should be a valid dictionary"}],
     422, "the body is not a JSON object"),
    ([{"type": "missing", "loc": ("body", "adapter"), "msg": "Field required"},
      {"type": "extra_forbidden", "loc": ("body", "task"), "msg": "Extra inputs are not permitted"}],
     422, 'the body lacks "adapter"'),
    ([{"type": "extra_forbidden", "loc": ("body", "task"), "msg": "Extra inputs are not permitted"}],
     422, 'the body has an unknown key "task"'),
    ([{"type": "string_type", "loc": ("body", "adapter"), "msg": "Input should be a valid string"}],
     422, '"adapter": Input should be a valid string'),
]  # fmt: skip


@pytest.mark.parametrize(("errors", "status", "words"), BODIES, ids=[b[0][0]["type"] for b in BODIES])
def test_a_body_fastapi_refuses_is_one_line_with_the_shape_to_send(errors, status, words):
    refusal = validation_refusal(errors)
    assert refusal.status == status and refusal.detail.startswith(words) and "\n" not in refusal.detail
    assert refusal.detail.endswith(
        'send a JSON object {"adapter": NAME, "input": RECORD_OR_TEXT} with Content-Type: application/json'
    )
