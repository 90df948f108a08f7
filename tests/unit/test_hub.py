"""Loading a model by Hub name: offline, with the Hub unreachable (at once, never through retries), from the Hub cache,
and from a Hub that answers. Endpoints are local (a closed port, a tiny HTTP server): nothing reaches the internet."""

import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading

import pytest
from huggingface_hub import constants

from compacter_pl import hub
from compacter_pl.errors import UserError
from tests.helpers import DEMO_MODEL, ROOT


def closed_port_endpoint() -> str:
    """An endpoint on this machine that refuses connections (a port just freed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def unreachable_hub(monkeypatch):
    monkeypatch.setattr(constants, "ENDPOINT", closed_port_endpoint())
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    hub.hub_connection_error.cache_clear()
    yield
    hub.hub_connection_error.cache_clear()


def test_an_unreachable_hub_is_one_line_at_once_saying_how_to_work_offline(unreachable_hub, caplog):
    with pytest.raises(UserError) as error:
        hub.load_t5("no-such-org/no-such-t5")
    message = str(error.value)
    assert "\n" not in message
    for fragment in (
        "'no-such-org/no-such-t5' is not a local directory",
        "cannot be reached",
        "save_pretrained(DIR)",
        "--model.model_name_or_path DIR",
        f"models--no-such-org--no-such-t5 into {constants.HF_HUB_CACHE}",
    ):
        assert fragment in message, message
    assert "model.model_name_or_path=" not in message  # a syntax the CLI does not accept
    assert not [r for r in caplog.records if "Retrying" in r.getMessage()]  # no retries, so no wait


def test_hf_hub_offline_says_how_to_work_offline(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="HF_HUB_OFFLINE is set.*--model.model_name_or_path DIR"):
        hub.load_tokenizer("no-such-org/no-such-t5")


def test_a_bad_local_directory_names_it():
    with pytest.raises(UserError, match=f"cannot load the model from directory {ROOT / 'demo'}"):
        hub.load_t5(str(ROOT / "demo"))


def load_in_subprocess(name: str, env: dict) -> subprocess.CompletedProcess:
    script = (
        "import sys\n"
        "from compacter_pl.errors import UserError\n"
        "from compacter_pl.hub import load_t5, load_tokenizer\n"
        "try:\n"
        f"    print(type(load_t5({name!r})).__name__, load_tokenizer({name!r})('a b').input_ids)\n"
        "except UserError as error:\n"
        "    print(f'error: {error}', file=sys.stderr)\n"
    )
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", **env}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=full_env, timeout=300)


def test_a_model_in_the_hub_cache_loads_at_once_while_the_hub_is_unreachable(tmp_path):
    commit = "0" * 40
    repo = tmp_path / "models--demo-org--tiny-t5"
    shutil.copytree(DEMO_MODEL, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    result = load_in_subprocess(
        "demo-org/tiny-t5", {"HF_ENDPOINT": closed_port_endpoint(), "HF_HUB_CACHE": str(tmp_path)}
    )
    assert "Retrying" not in result.stderr  # e.g. for adapter_config.json, which no cache holds
    assert result.stdout.startswith("T5ForConditionalGeneration [") and "error:" not in result.stderr, result.stderr


class NotFound(http.server.BaseHTTPRequestHandler):
    """A Hub that answers every request: no such repository."""

    def _not_found(self):
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = _not_found

    def log_message(self, *args):
        pass


def test_a_reachable_hub_is_asked_and_its_answer_reported(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        result = load_in_subprocess("no-such-org/no-such-t5", {"HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(tmp_path)})
    finally:
        server.shutdown()
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "nor a model on the Hugging Face Hub" in errors[0] and "cannot be reached" not in errors[0], errors[0]


def test_a_hub_dataset_with_the_hub_unreachable_is_one_line_at_once_naming_data_dir(tmp_path):
    """datasets has no local_files_only: without a network it retried the Hub for about 31 s before failing."""
    script = (
        "import sys\n"
        "from compacter_pl.errors import UserError\n"
        "from compacter_pl.data.sources import load_hub_split\n"
        "from compacter_pl.tasks import get_task\n"
        "try:\n"
        "    load_hub_split(get_task('rte'), 'train', None)\n"
        "except UserError as error:\n"
        "    print(f'error: {error}', file=sys.stderr)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "HF_ENDPOINT": closed_port_endpoint(),
        "HF_HOME": str(tmp_path),  # an empty Hub and datasets cache
    }
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert "Retrying" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for fragment in ("nyu-mll/glue (rte, train)", "cannot be reached", "--data.data_dir DIR"):
        assert fragment in errors[0], errors[0]
