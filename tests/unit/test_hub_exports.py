"""Exports to and from the Hugging Face Hub, offline: a repository laid out in a Hub cache folder as huggingface_hub
lays out what it downloads loads through the same snapshot_download a download takes (HF_HUB_OFFLINE, and an
unreachable endpoint: one request, then the cache); `export --push_to_hub` fails in one line that keeps the local
export (offline, unreachable, refused by the Hub), and uploads with huggingface_hub's HfApi (its two methods
replaced here: no Hub to upload to)."""

import http.server
import os
import subprocess
import sys
import threading

import huggingface_hub
import pytest
import torch
from huggingface_hub import constants

from compacter_pl import hub
from compacter_pl.adapter_bank import AdapterBank
from compacter_pl.errors import UserError
from compacter_pl.export import export_source, write_export
from compacter_pl.hub import load_t5, load_tokenizer
from tests.helpers import DEMO_MODEL, ROOT, cache_hub_repository, closed_port_endpoint, in_process, random_export

REPO = "demo-user/rte-compacter"
COMMIT = "a" * 40


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return write_export(random_export("compacter", "rte", 1), tmp_path_factory.mktemp("export") / "rte")


@pytest.fixture
def hub_cache(tmp_path, exported, monkeypatch):
    """A Hub cache folder holding REPO at COMMIT (its main branch), the only cache huggingface_hub reads."""
    cache = tmp_path / "hub"
    cache_hub_repository(cache, REPO, exported, COMMIT)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    hub.hub_connection_error.cache_clear()
    yield cache
    hub.hub_connection_error.cache_clear()


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def unreachable(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", closed_port_endpoint())
    hub.hub_connection_error.cache_clear()


def bank() -> AdapterBank:
    return AdapterBank(load_t5(str(DEMO_MODEL)), load_tokenizer(str(DEMO_MODEL)), max_new_tokens=3)


RECORDS = [{"sentence1": "A cat sat on the mat.", "sentence2": "An animal sat."}]


@pytest.mark.parametrize("network", ["offline", "unreachable"])
def test_a_hub_repository_loads_from_the_cache_as_its_folder_does(network, request, hub_cache, exported, caplog):
    request.getfixturevalue(network)
    from_hub, from_folder = bank(), bank()
    from_hub.add("rte", REPO)
    from_hub.add("pinned", REPO, revision=COMMIT)
    from_folder.add("rte", exported)
    expected = from_folder.exports["rte"].state_dict
    for name in ("rte", "pinned"):
        assert all(torch.equal(expected[k], v) for k, v in from_hub.exports[name].state_dict.items())
    assert from_hub.generate("rte", RECORDS) == from_folder.generate("rte", RECORDS)
    assert export_source(REPO) == hub_cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT
    assert not [r for r in caplog.records if "Retrying" in r.getMessage()]


def test_what_the_cache_lacks_is_one_line_saying_why(hub_cache, offline, tmp_path):
    cases = {
        ("demo-user/not-cached", None): "adapter export 'demo-user/not-cached' is not a local directory, and "
        "HF_HUB_OFFLINE is set and the Hub cache does not hold it; to run without the Hub, download the repository",
        (REPO, "b" * 40): f"adapter export (revision {'b' * 40}) '{REPO}' is not a local directory",
        ("./no/such/folder", None): "export './no/such/folder' is neither an existing folder nor a Hugging Face Hub "
        "repository name (user/repo)",
        (str(tmp_path), "main"): f"revision 'main' is for a Hub repository; {tmp_path} is a local folder",
    }
    for (source, revision), message in cases.items():
        with pytest.raises(UserError) as error:
            export_source(source, revision)
        assert message in str(error.value) and "\n" not in str(error.value), str(error.value)
    readme_only = tmp_path / "readme_only"
    readme_only.mkdir()
    (readme_only / "README.md").write_text("# not an export\n")
    cache_hub_repository(hub_cache, "demo-user/not-an-export", readme_only)
    with pytest.raises(UserError, match="Hub repository demo-user/not-an-export holds no compacter-pl export"):
        export_source("demo-user/not-an-export")


def test_a_local_folder_is_a_folder_whatever_its_name(hub_cache, offline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    other = write_export(random_export("compacter", "rte", 2), tmp_path / REPO)  # ./demo-user/rte-compacter
    assert export_source(REPO) == other.relative_to(tmp_path)


@pytest.mark.slow  # a process of its own: about 10 s on idle cores, over 20 s on loaded ones
def test_the_environment_variables_reach_the_same_path(tmp_path, exported):
    """HF_ENDPOINT at a closed port and HF_HUB_CACHE set as a user sets them, in a process of their own."""
    cache_hub_repository(tmp_path, REPO, exported, COMMIT)
    script = (
        "from compacter_pl.adapter_bank import AdapterBank\n"
        "from compacter_pl.hub import load_t5, load_tokenizer\n"
        f"bank = AdapterBank(load_t5({str(DEMO_MODEL)!r}), load_tokenizer({str(DEMO_MODEL)!r}))\n"
        f"bank.add('rte', {REPO!r})\n"
        "print(bank.exports['rte'].config['trainable_parameters'])\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "0",
        "HF_ENDPOINT": closed_port_endpoint(),
        "HF_HUB_CACHE": str(tmp_path),
    }
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Retrying" not in result.stderr
    assert int(result.stdout) == random_export("compacter", "rte", 1).config["trainable_parameters"]


# --- export --push_to_hub -----------------------------------------------------------------------------------------


def push(capsys, trained, out, *extra: str) -> tuple[int, str, str]:
    return in_process(capsys, "export", "--ckpt_path", str(trained), "--out", str(out), *extra)


def assert_exported(out) -> None:
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "adapter.safetensors", "adapter_config.json"]


@pytest.mark.parametrize("network", ["offline", "unreachable"])
def test_a_push_without_the_hub_is_one_line_and_the_export_stays(network, request, trained, tmp_path, capsys):
    request.getfixturevalue(network)
    code, printed, err = push(capsys, trained, tmp_path / "out", "--push_to_hub", "demo-user/x")
    why = "HF_HUB_OFFLINE is set, so nothing was uploaded" if network == "offline" else "cannot be reached"
    assert code == 2, err
    line = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(line) == 1 and "Traceback" not in err, err
    for fragment in ("--push_to_hub demo-user/x:", why, f"the export stays in {tmp_path / 'out'}", "hf upload"):
        assert fragment in line[0], line[0]
    assert f"exported {trained} to {tmp_path / 'out'}" in printed
    assert_exported(tmp_path / "out")


class Unauthorized(http.server.BaseHTTPRequestHandler):
    """A Hub that refuses every request: no valid token."""

    def _refuse(self):
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = _refuse

    def log_message(self, *args):
        pass


def test_a_push_the_hub_refuses_says_how_to_log_in(trained, tmp_path, capsys, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unauthorized)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_valid_token")
    hub.hub_connection_error.cache_clear()
    try:
        code, _, err = push(capsys, trained, tmp_path / "out", "--push_to_hub", "demo-user/x")
    finally:
        server.shutdown()
        hub.hub_connection_error.cache_clear()
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: --push_to_hub demo-user/x: the upload failed: ") and "Traceback" not in err, err
    assert "log in with `hf auth login`, or set HF_TOKEN" in line and "the export stays in" in line
    assert_exported(tmp_path / "out")


def test_bad_push_options_are_refused_before_anything_is_written(trained, tmp_path, capsys):
    code, _, err = push(capsys, trained, tmp_path / "out", "--push_to_hub", "not a/repo name")
    assert code == 2 and "--push_to_hub 'not a/repo name' is not a Hugging Face Hub repository name" in err
    code, _, err = push(capsys, trained, tmp_path / "out", "--private", "true")
    assert code == 2 and "--private is for the repository --push_to_hub creates" in err
    assert not (tmp_path / "out").exists()


def test_a_push_creates_the_repository_and_uploads_the_folder(trained, tmp_path, capsys, monkeypatch):
    """huggingface_hub's HfApi.create_repo and upload_folder are replaced (no Hub to upload to offline); the rest,
    down to those calls, is the command's own."""
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, **kwargs):
        calls.append(("upload_folder", kwargs["repo_id"], {"files": sorted(os.listdir(kwargs["folder_path"]))}))

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_connection_error", lambda endpoint: None)  # the Hub answers
    out = tmp_path / "out"
    code, printed, err = push(capsys, trained, out, "--push_to_hub", "demo-user/x", "--private", "true")
    assert code == 0, err
    assert calls == [
        ("create_repo", "demo-user/x", {"private": True, "exist_ok": True}),
        ("upload_folder", "demo-user/x", {"files": ["README.md", "adapter.safetensors", "adapter_config.json"]}),
    ]
    assert f"pushed {out} to https://huggingface.co/demo-user/x" in printed
    assert 'bank.add("rte", "demo-user/x")' in (out / "README.md").read_text()  # the card names where it is
