"""The HTTP API of `serve`, on LitServe: `POST /predict` answers one input with one adapter; the requests that
arrive together, of any adapters, run as one `AdapterBank` call (one mixed batch).

A request is checked alone, in `decode_request`, and a bad one is answered alone: LitServe fails every request
of a batch when one raises (its batched loop decodes, predicts and encodes the batch in one `try`), so a refused
request travels through the batch as a `Refusal` and its response carries the status (`Refusal.response`).
Statuses: 400 a body that is not JSON, 422 a body of the wrong shape or an input its task cannot read (a missing
field, a field of the wrong type), 404 an unknown adapter, 413 an input over max_source_length tokens when one is
given (never cut; without it an adapter cuts as its training did). Each has a one-line `detail`, as FastAPI's
errors have.

LitServe pickles the API into each inference worker (a spawned process), whose `setup` loads the base model, its
tokenizer and every adapter once; the serving processes (uvicorn) never load the model.
"""

import logging
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

import litserve as ls
import transformers
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from compacter_pl.adapter_bank import AdapterBank, InputTooLong
from compacter_pl.errors import UserError
from compacter_pl.hub import load_t5, load_tokenizer
from compacter_pl.tools.serve.adapters import ServedAdapter

SHAPE = 'send a JSON object {"adapter": NAME, "input": RECORD_OR_TEXT} with Content-Type: application/json'


class PredictRequest(BaseModel):
    """The body of `POST /predict`: the adapter's name and one input, a record in its task's fields
    (`{"sentence1": ..., "sentence2": ...}` for RTE) or a source text already rendered."""

    model_config = ConfigDict(extra="forbid")
    adapter: str
    input: Any


@dataclass(frozen=True)
class Row:
    """A request `decode_request` accepted: its adapter and the token ids the bank read its input as."""

    adapter: str
    ids: list[int]


@dataclass(frozen=True)
class Refusal:
    """A request `decode_request` refused, answered with `status` and a one-line `detail`."""

    status: int
    detail: str

    def response(self) -> JSONResponse:
        return JSONResponse({"detail": self.detail}, status_code=self.status)


class AdapterAPI(ls.LitAPI):
    """`POST /predict` with every adapter of one base model.

    Args:
        model: The base model: a Hub name or a folder saved with save_pretrained.
        adapters: The adapters by name: their export folders.
        eval_mode: generate or rank (`AdapterBank.predict`).
        max_new_tokens, max_source_length: `AdapterBank`'s.
        errors: Where a worker whose setup fails sends its one-line error (the sending end of a pipe), for the
            command to print.
        litapi: LitAPI's own arguments (max_batch_size, batch_timeout).
    """

    def __init__(
        self,
        model: str,
        adapters: dict[str, str],
        eval_mode: str,
        max_new_tokens: int,
        max_source_length: int | None,
        errors: Any,
        **litapi: Any,
    ) -> None:
        super().__init__(**litapi)
        self.model, self.adapters, self.eval_mode = model, adapters, eval_mode
        self.max_new_tokens, self.max_source_length = max_new_tokens, max_source_length
        self.errors = errors
        self.bank: AdapterBank | None = None

    def setup(self, device: str) -> None:
        # Ctrl-C reaches every process of the terminal's group: the server's main process stops the serving
        # processes first, which wait for the requests in flight, and this worker last, which answers them.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # A fresh process (spawned): quiet as the command line quiets its own (no progress bar per weight file)
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        try:
            bank = AdapterBank(
                load_t5(self.model), load_tokenizer(self.model), self.max_new_tokens, self.max_source_length
            )
            for name, folder in self.adapters.items():
                bank.add(name, folder)
        except UserError as error:
            self.errors.send(str(error))
            # LitServe logs the traceback of a failed setup; the command prints this one line instead.
            logging.getLogger("litserve.loops.loops").setLevel(logging.CRITICAL + 1)
            raise
        for model in (bank.base, *bank.models.values()):  # the copies share the base's tensors: moved once
            model.to(device)
        bank.not_mixed()  # builds the mixed model now rather than in the first request
        self.bank = bank

    def decode_request(self, request: PredictRequest) -> Row | Refusal:
        """The request alone, checked: a Refusal instead of an exception, which would fail its whole batch."""
        assert self.bank is not None  # set up
        if request.adapter not in self.bank.models:
            names = ", ".join(self.bank.names)
            return Refusal(404, f"no adapter named {request.adapter!r}; this server has {names} (GET /adapters)")
        try:
            return Row(request.adapter, self.bank.input_ids(request.adapter, request.input, position=None))
        except InputTooLong as error:
            return Refusal(413, str(error))
        except UserError as error:
            return Refusal(422, str(error))

    def predict(self, x: Any) -> Any:
        """The batch's accepted rows in one `AdapterBank` call; refusals pass through. Without batching
        (max_batch_size 1) LitServe passes one request, not a list."""
        batch = x if self.max_batch_size > 1 else [x]
        answers = self.answer(batch)
        return answers if self.max_batch_size > 1 else answers[0]

    def answer(self, batch: list[Row | Refusal]) -> list[dict | Refusal]:
        assert self.bank is not None  # set up
        accepted = [(i, item) for i, item in enumerate(batch) if isinstance(item, Row)]
        adapters, ids = [row.adapter for _, row in accepted], [row.ids for _, row in accepted]
        print(describe_batch(adapters, len(batch) - len(accepted), self.bank.not_mixed()), file=sys.stderr, flush=True)
        texts = self.bank.outputs_of_ids(adapters, ids, self.eval_mode) if accepted else []
        answers: list[dict | Refusal] = [item if isinstance(item, Refusal) else {} for item in batch]
        for (i, row), text in zip(accepted, texts, strict=True):
            task = self.bank.task(row.adapter)
            answers[i] = {
                "adapter": row.adapter,
                "task": task.name,
                "prediction": task.prediction(text),
                "generated": text,
            }
        return answers

    def encode_response(self, output: dict | Refusal):  # no return annotation: LitServe would make it the schema
        """An answer as JSON, as `cli.py predict` writes one (with the adapter and its task); a refusal as a
        response with its status (LitServe returns a Response as it is)."""
        return output.response() if isinstance(output, Refusal) else output


def describe_batch(adapters: list[str], refused: int, not_mixed: dict[str, str]) -> str:
    """The line a worker prints as a batch starts: its requests by adapter, those that run as a batch of their own,
    and how many were refused."""
    counts = Counter(adapters)
    line = f"batch of {len(adapters) + refused}: " + ", ".join(f"{name} {n}" for name, n in counts.items())
    apart = [name for name in counts if name in not_mixed]
    if apart and len(counts) > 1:
        line += f" ({', '.join(apart)} apart: {'its method does' if len(apart) == 1 else 'their methods do'} not mix)"
    return line + (f"{', ' if adapters else ''}{refused} refused" if refused else "")


def validation_refusal(errors: list[dict]) -> Refusal:
    """FastAPI's errors for a body that is not a PredictRequest, as one line (the first error)."""
    error = errors[0]
    kind, field = error["type"], ".".join(str(part) for part in error["loc"][1:])
    if kind == "json_invalid":
        return Refusal(400, f"the body is not valid JSON ({error.get('ctx', {}).get('error', error['msg'])}); {SHAPE}")
    if not field or not isinstance(error["loc"][1], str):  # the body as a whole: absent, not an object, not JSON
        return Refusal(422, f"the body is not a JSON object; {SHAPE}")
    if kind == "missing":
        return Refusal(422, f'the body lacks "{field}"; {SHAPE}')
    if kind == "extra_forbidden":
        return Refusal(422, f'the body has an unknown key "{field}"; {SHAPE}')
    return Refusal(422, f'"{field}": {error["msg"]}; {SHAPE}')


def add_routes(server: ls.LitServer, adapters: list[ServedAdapter]) -> None:
    """`GET /adapters` (the adapters with their tasks, methods and labels) and one-line errors for bodies FastAPI
    refuses, on the server's app (behind LitServe's authentication, as its own routes are)."""
    listing = {"adapters": [adapter.listing() for adapter in adapters]}

    async def list_adapters() -> dict:
        return listing

    async def refuse(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return validation_refusal(list(error.errors())).response()

    server.app.add_api_route("/adapters", list_adapters, methods=["GET"], dependencies=[Depends(server.setup_auth())])
    server.app.add_exception_handler(RequestValidationError, refuse)
