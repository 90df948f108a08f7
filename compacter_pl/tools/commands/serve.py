"""The `serve` command: many task adapters on one base model over HTTP (LitServe, the `serve` extra).

Examples (after the program: `python cli.py`, `compacter-pl`):

    serve --exports exports                            # every export folder in exports/, named by its folder
    serve --exports exports --adapters rte_v2=runs/rte/export --port 8080 --max_batch_size 64
    serve --adapters rte=exports/rte cb=exports/cb --model google-t5/t5-base --eval_mode rank

    curl -X POST localhost:8000/predict -H 'Content-Type: application/json' \\
        -d '{"adapter": "rte", "input": {"sentence1": "A man sleeps.", "sentence2": "A person rests."}}'
    # {"adapter": "rte", "task": "rte", "prediction": "entailment", "generated": "0"}
    curl localhost:8000/adapters                       # each adapter's task, method and labels

Everything the options name is checked before anything loads. SIGTERM or Ctrl-C stops the server once the requests
in flight are answered (LitServe gives them 30 seconds).
"""

import multiprocessing
import os
import signal
import socket
import sys
from typing import Literal

from jsonargparse.typing import NonNegativeFloat, PositiveInt

from compacter_pl.config import run_command_line
from compacter_pl.errors import UserError
from compacter_pl.tools.serve.adapters import base_model_of, find_adapters

INSTALL = "pip install 'compacter-pl[serve]'"


def serve(
    model: str | None = None,
    exports: str | None = None,
    adapters: list[str] | None = None,
    host: Literal["127.0.0.1", "0.0.0.0", "::"] = "127.0.0.1",
    port: int = 8000,
    max_batch_size: PositiveInt = 32,
    batch_timeout: NonNegativeFloat = 0.01,
    eval_mode: Literal["generate", "rank"] = "generate",
    max_new_tokens: PositiveInt = 16,
    max_source_length: PositiveInt | None = None,
    accelerator: Literal["auto", "cpu", "cuda"] = "auto",
    workers_per_device: PositiveInt = 1,
) -> None:
    """Serve task adapters of one base model over HTTP with LitServe: POST /predict {"adapter": NAME, "input":
    RECORD_OR_TEXT} answers {"adapter", "task", "prediction", "generated"}; the requests that arrive together, of
    any adapters, run as one batch (full fine-tuning and Intrinsic-SAID adapters: a batch of their own). GET
    /adapters lists the adapters, GET /health says whether the server is ready.

    Args:
        model: The base model, a Hub name or a folder saved with save_pretrained (default: the base model the
            exports name, when they all name the same one).
        exports: A folder of exports: each subfolder with adapter_config.json and adapter.safetensors is served,
            named by its folder.
        adapters: More adapters as NAME=PATH (an export folder), space-separated.
        host: The address to listen on (LitServe takes these three; 0.0.0.0 and :: accept other machines).
        port: The port to listen on (1024 to 65535).
        max_batch_size: The most requests answered in one batch.
        batch_timeout: Seconds a batch waits for more requests before it runs.
        eval_mode: generate (the adapter's text, read as a label) or rank (the most likely of the task's labels;
            free-text tasks generate).
        max_new_tokens: The most tokens generated per input.
        max_source_length: The most tokens an input may have, for every adapter (a longer one is refused with
            413, never cut). Default: each adapter reads an input as its training did (cut to its training length
            with its truncation mode); an export without data settings refuses inputs over 512 tokens (413).
        accelerator: Where the model runs: auto (CUDA when a GPU is visible), cpu or cuda (every visible GPU).
        workers_per_device: Model copies (processes) per device.
    """
    try:
        import litserve as ls  # the optional extra
    except ImportError:
        raise UserError(f"serve needs LitServe, which is not installed: {INSTALL}") from None
    from litserve.connector import check_cuda_with_nvidia_smi

    from compacter_pl.tools.serve.api import AdapterAPI, add_routes

    if not 1024 <= port <= 65535:
        raise UserError(f"--port {port} is outside 1024 to 65535, the ports LitServe listens on")
    found = find_adapters(exports, adapters)
    model = model or base_model_of(found)
    if accelerator == "cuda" and check_cuda_with_nvidia_smi() == 0:  # LitServe would wait for no worker forever
        raise UserError("--accelerator cuda: nvidia-smi lists no visible GPU; pass --accelerator cpu or auto")
    _check_port_free(host, port)

    errors, worker_errors = multiprocessing.get_context("spawn").Pipe(duplex=False)
    api = AdapterAPI(
        model,
        {adapter.name: adapter.folder for adapter in found},
        eval_mode,
        max_new_tokens,
        max_source_length,
        worker_errors,
        max_batch_size=max_batch_size,
        batch_timeout=batch_timeout,
    )
    server = ls.LitServer(api, accelerator=accelerator, workers_per_device=workers_per_device)
    add_routes(server, found)
    listed = ", ".join(f"{adapter.name} ({adapter.method} on {adapter.task})" for adapter in found)
    print(f"loading {len(found)} adapters of {model} to serve on http://{host}:{port}: {listed}", flush=True)
    _run(server, host, port, errors)


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port the server could not listen on now (uvicorn would log the error and exit after the start)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as error:
            raise UserError(
                f"--port {port}: cannot listen on {host}:{port} ({error.strerror}); choose another --port"
            ) from None


def _run(server, host: str, port: int, errors) -> None:
    """Run the server until SIGTERM or Ctrl-C; a worker that could not load says why through `errors`."""
    stopped = _stop_gracefully_on((signal.SIGTERM, signal.SIGINT))
    try:
        server.run(host=host, port=port, generate_client_file=False)
    except RuntimeError as error:  # LitServe's "One or more workers failed to start"
        _end_children()
        line = errors.recv() if errors.poll(5) else None
        raise UserError(line or f"the server did not start: {error} (its log above says why)") from None
    except KeyboardInterrupt:  # a signal while the workers load, before LitServer.run stops on one itself
        _end_children()
        print(f"stopped ({signal.Signals(stopped[0]).name}) before the server started", flush=True)
        return
    print(f"stopped ({signal.Signals(stopped[0]).name})" if stopped else "stopped", flush=True)


def _end_children() -> None:
    """End what LitServer.run started when it stops before serving (workers still loading, its manager), which
    the interpreter would otherwise wait for at exit."""
    for child in multiprocessing.active_children():
        child.terminate()
        child.join(5)


def _stop_gracefully_on(signals: tuple[signal.Signals, ...]) -> list[int]:
    """The first of `signals` raises KeyboardInterrupt in this process, which LitServer.run takes as the order to
    stop: it stops its serving processes, each after answering its requests in flight, then its inference
    workers; later signals are ignored while it does. (Python's default for SIGTERM ends the process at once
    and leaves LitServe's processes serving.) Returns the list the signal is recorded in.

    The serving processes are forked from this one and keep this handler until uvicorn sets its own, which it
    raises again after its shutdown: there it ends the process quietly, as the default would."""
    main, received = os.getpid(), []

    def stop(signum, frame) -> None:
        if os.getpid() != main:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        received.append(signum)
        for other in signals:
            signal.signal(other, signal.SIG_IGN)
        print(f"{signal.Signals(signum).name}: answering the requests in flight, then stopping", file=sys.stderr)
        raise KeyboardInterrupt

    for each in signals:
        signal.signal(each, stop)
    return received


def main(argv: list[str]) -> None:
    run_command_line(serve, argv, "serve")
