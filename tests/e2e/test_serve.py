"""`cli.py serve` as a user runs it: a real server in a subprocess on a free localhost port, on exports of four
methods (compacter, LoRA, prompt tuning mixed; full fine-tuning as a batch of its own). Concurrent requests of
several adapters get the answers `AdapterBank` gives each alone; bad requests get a 4xx with a one-line detail and
the server keeps answering; SIGTERM and Ctrl-C answer the requests in flight, then the server exits cleanly."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from compacter_pl.adapter_bank import AdapterBank
from compacter_pl.export import write_export
from compacter_pl.hub import load_t5, load_tokenizer
from compacter_pl.tasks import get_task
from tests.helpers import DEMO_DATA, DEMO_MODEL, ROOT, assert_one_line_error, random_export, run_cli

ADAPTERS = {
    "rte": ("compacter", "rte"),
    "cb": ("lora", "cb"),
    "cola": ("prompt_random", "cola"),
    "stsb": ("full", "stsb"),
}
LABELS = {  # the predictions each can give
    "rte": ["entailment", "not_entailment"],
    "cb": ["entailment", "contradiction", "neutral"],
    "cola": ["unacceptable", "acceptable"],
    "stsb": [round(0.2 * i, 1) for i in range(26)],
}
READY_TIMEOUT = 300  # seconds for the server to start (interpreters, imports, the model) on loaded cores
SHAPE = 'send a JSON object {"adapter": NAME, "input": RECORD_OR_TEXT} with Content-Type: application/json'


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    for seed, (name, (method, task)) in enumerate(ADAPTERS.items()):
        write_export(random_export(method, task, seed), root / name)
    return root


def bank_of(exports, max_new_tokens: int) -> AdapterBank:
    """The adapters in this process, to answer each input alone."""
    bank = AdapterBank(load_t5(str(DEMO_MODEL)), load_tokenizer(str(DEMO_MODEL)), max_new_tokens=max_new_tokens)
    for name in ADAPTERS:
        bank.add(name, exports / name)
    return bank


def records(name: str, count: int) -> list[dict]:
    """The first validation records of the adapter's task, as a user has them: its input fields only."""
    task = get_task(ADAPTERS[name][1])
    lines = (DEMO_DATA / task.name / "validation.jsonl").read_text().splitlines()[:count]
    return [{field: json.loads(line)[field] for field in task.input_fields} for line in lines]


def alone(bank: AdapterBank, name: str, record: dict, eval_mode: str) -> dict:
    """The answer the server should give: the bank's for this input alone (its output text, read in the task's
    terms as `AdapterBank.predict` reads it)."""
    text = bank.outputs(name, [record], eval_mode)[0]
    return {
        "adapter": name,
        "task": ADAPTERS[name][1],
        "prediction": bank.task(name).prediction(text),
        "generated": text,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`python cli.py serve --exports EXPORTS --port PORT OPTIONS` in a subprocess (its own process group: a
    Ctrl-C reaches the group), its output collected as it comes."""

    def __init__(self, exports, *options: str) -> None:
        self.port = free_port()
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        command = [sys.executable, str(ROOT / "cli.py"), "serve", "--exports", str(exports), "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--accelerator", "cpu", *options],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=lambda s=s, lines=lines: lines.extend(s), daemon=True)
            for s, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err))
        ]
        for reader in self.readers:
            reader.start()

    def request(self, method: str, path: str, body: bytes | None = None, json_body=None) -> tuple[int, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            if json_body is not None:
                body = json.dumps(json_body).encode()
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, json.loads(data) if data.startswith((b"{", b"[")) else {"text": data.decode()}
        finally:
            connection.close()

    def predict(self, body: dict | bytes) -> tuple[int, dict]:
        """POST /predict with `body` as JSON (bytes: as they are)."""
        if isinstance(body, bytes):
            return self.request("POST", "/predict", body=body)
        return self.request("POST", "/predict", json_body=body)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"serve exited {self.process.returncode}: {self.log()[-3000:]}"
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:  # not listening yet
                pass
            time.sleep(0.2)
        raise AssertionError(f"serve was not ready in {READY_TIMEOUT} s: {self.log()[-3000:]}")

    def batches(self) -> list[int]:
        """The size of every batch the worker started (its `batch of N: ...` lines)."""
        return [int(line.split()[2].rstrip(":")) for line in list(self.err) if line.startswith("batch of ")]

    def stop(self, sig: int = signal.SIGTERM, group: bool = False) -> int:
        if group:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=120)
        for reader in self.readers:
            reader.join(timeout=10)
        return code

    def log(self) -> str:
        return "".join(self.out) + "".join(self.err)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:  # a failed test: end the whole group (the server, its workers)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=60)


@pytest.mark.slow
def test_concurrent_requests_of_many_adapters_get_the_answers_each_gets_alone_and_bad_ones_a_one_line_4xx(exports):
    good = [(name, record) for name in ADAPTERS for record in records(name, 4)] + [("cola", records("cola", 5)[4])]
    cb = records("cb", 1)[0]
    bad = {  # body -> (status, the start of the detail)
        json.dumps({"adapter": "rtf", "input": cb}).encode(): (
            404,
            "no adapter named 'rtf'; this server has cb, cola, rte, stsb",
        ),
        json.dumps({"adapter": "cb", "input": {"premise": "A man."}}).encode(): (
            422,
            "adapter 'cb': the input lacks field 'hypothesis'; cb reads premise, hypothesis",
        ),
        json.dumps({"adapter": "cb", "input": {**cb, "premise": 7}}).encode(): (
            422,
            "adapter 'cb': the input: field premise is an integer, expected a string",
        ),
        json.dumps({"adapter": "cb", "input": ["x"]}).encode(): (422, "adapter 'cb': the input must be a record"),
        json.dumps({"adapter": "cb", "input": {**cb, "premise": "a man walks " * 40}}).encode(): (
            413,
            "adapter 'cb': the input is ",
        ),
        json.dumps({"task": "cb", "input": cb}).encode(): (422, 'the body lacks "adapter"'),
        b'{"adapter": "cb", "input": ': (400, "the body is not valid JSON"),
        b"[1, 2]": (422, "the body is not a JSON object"),
    }
    with Server(exports, "--eval_mode", "rank", "--max_source_length", "96", "--batch_timeout", "0.05") as server:
        bank = bank_of(exports, max_new_tokens=16)  # while the server starts
        expected = [alone(bank, name, record, "rank") for name, record in good]
        assert [answer["prediction"] for answer in expected] == [bank.predict(n, [r], "rank")[0] for n, r in good]
        assert {type(answer["prediction"]) for answer in expected} == {str, float}  # labels; STS-B's scores
        server.wait_ready()
        listing = [
            {"name": n, "task": ADAPTERS[n][1], "method": ADAPTERS[n][0], "labels": LABELS[n]} for n in sorted(ADAPTERS)
        ]
        assert server.request("GET", "/adapters") == (200, {"adapters": listing})  # --exports: by folder name
        bodies = [{"adapter": name, "input": record} for name, record in good[:-1]] + list(bad)
        with ThreadPoolExecutor(len(bodies)) as pool:  # every request at once: good and bad ones share batches
            answers = list(pool.map(server.predict, bodies))
        assert answers[: len(good) - 1] == [(200, answer) for answer in expected[:-1]]
        for (status, answer), (code, start) in zip(answers[len(good) - 1 :], bad.values(), strict=True):
            assert status == code and answer["detail"].startswith(start) and "\n" not in answer["detail"], answer
            if "body" in start:
                assert answer["detail"].endswith(SHAPE)
        assert server.predict({"adapter": "cola", "input": good[-1][1]}) == (200, expected[-1])  # still serving
        assert server.stop() == 0
    assert "Traceback" not in server.log() and "stopped (SIGTERM)" in server.log()
    # each request through the worker once, but those FastAPI refused (not JSON, not an object, no adapter)
    assert sum(server.batches()) == len(bodies) - 3 + 1


@pytest.mark.slow
@pytest.mark.parametrize("ctrl_c", [False, True], ids=["SIGTERM to the server", "Ctrl-C to its process group"])
def test_a_stop_answers_the_requests_in_flight_then_the_server_exits_cleanly(exports, ctrl_c):
    rows = [(name, record) for name in ADAPTERS for record in records(name, 2)]
    with Server(exports, "--max_new_tokens", "24", "--batch_timeout", "0.05") as server:
        bank = bank_of(exports, max_new_tokens=24)  # while the server starts
        expected = [(200, alone(bank, name, record, "generate")) for name, record in rows]
        server.wait_ready()
        with ThreadPoolExecutor(len(rows)) as pool:
            answers = pool.map(server.predict, [{"adapter": name, "input": record} for name, record in rows])
            deadline = time.monotonic() + READY_TIMEOUT
            while sum(server.batches()) < len(rows):  # every request is in a batch the worker has started
                assert time.monotonic() < deadline and server.process.poll() is None, server.log()[-3000:]
                time.sleep(0.01)
            code = server.stop(signal.SIGINT if ctrl_c else signal.SIGTERM, group=ctrl_c)
            answers = list(answers)
    assert code == 0, server.log()[-3000:]
    assert answers == expected
    log = server.log()
    assert "Traceback" not in log and f"stopped ({'SIGINT' if ctrl_c else 'SIGTERM'})" in log, log[-3000:]


@pytest.mark.slow
def test_a_model_the_worker_cannot_load_is_one_line(exports, tmp_path):
    result = run_cli(
        "serve", "--exports", str(exports), "--model", str(tmp_path), "--port", str(free_port()), timeout=600
    )
    assert result.returncode == 2
    assert_one_line_error(result, f"cannot load the model from directory {tmp_path}")
