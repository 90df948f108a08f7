"""Many task adapters on one frozen base model; one call answers rows of different tasks.

The base model is loaded once. Each added export gets a light copy of the model that shares every base
tensor with it (nothing is duplicated) and owns only its method's modules and the parameters it trained. An export
of any registered method loads (`compacter_pl.methods.registry`), a user's own too once the module that registers
it is imported; any other class path is refused, like every export loader refuses it (`export.method_from_config`).

An input is a record in the task's fields (`{"sentence1": ..., "sentence2": ...}` for RTE), rendered with the
task's own template as training renders it, or a source text already rendered. It is tokenized as the adapter's
training tokenized it: cut to its max_source_length with its truncation mode (the export's data settings), unless
the bank is given a max_source_length, which is a hard limit (see `AdapterBank`). `predict` answers in the task's
terms, as `cli.py predict` does; `generate` returns the generated text. Each row names its adapter: one name for
all rows, or one name per row.

    bank = AdapterBank(load_t5("google-t5/t5-base"), load_tokenizer("google-t5/t5-base"))
    bank.add("rte", "exports/rte_compacter")
    bank.add("cola", "exports/cola_compacter++")
    bank.add("sst2", "user/sst2-compacter")                                 # a Hub repository (or its cache)
    bank.predict("rte", [{"sentence1": "...", "sentence2": "..."}])        # -> ["entailment"]
    bank.predict(["rte", "cola"], [{"sentence1": "...", "sentence2": "..."}, {"sentence": "..."}])
    bank.generate("rte", ["sentence1: ... sentence2: ..."])                # -> ["0"]

Rows of different adapters run as one batch (one encoder pass, one decoding loop), each row through its own
adapter: `compacter_pl.mixing`. The rows of an adapter whose method cannot be mixed (full fine-tuning,
Intrinsic-SAID: each holds a whole weight of its own) run as a batch of their own in the same call.
"""

import contextlib
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import T5ForConditionalGeneration

from compacter_pl.data.truncation import require_offsets, source_ids
from compacter_pl.data.validation import input_problem
from compacter_pl.errors import UserError
from compacter_pl.export import (
    AdapterExport,
    apply_export,
    method_from_config,
    own_trained_parameters,
    read_export,
    shared_base_copy,
)
from compacter_pl.mixing import MixedModel
from compacter_pl.tasks import Task, get_task
from compacter_pl.tasks.base import Spans
from compacter_pl.training.steps import (
    RANK_LOGITS_BUDGET,
    greedy_generate,
    label_log_likelihoods,
    padded_label_ids,
)

EVAL_MODES = ("generate", "rank")
DEFAULT_MAX_SOURCE_LENGTH = 512  # T5's: the length its tokenizers declare (model_max_length)


@contextlib.contextmanager
def _unrouted(rows, device):
    """An adapter's own model routes nothing."""
    yield


class InputTooLong(UserError):
    """An input with more tokens than max_source_length (never cut: a cut input would be answered as another)."""


class AdapterBank:
    """One base model, any number of exported adapters; `predict` and `generate` take rows of any of them.

    Args:
        base_model: The frozen T5 every adapter was trained on (never written).
        tokenizer: Its tokenizer.
        max_new_tokens: The most tokens `generate` produces per row.
        max_source_length: A hard limit on an input's tokens (EOS included), for every adapter: a longer input is
            refused in one line, never cut (what a server that answers such inputs with an error wants). None (the
            default): each adapter reads an input as its training did, cut to the max_source_length it trained
            with, in its truncation mode (`end` or `fields`, `compacter_pl.data.truncation`); an export that
            records no data settings (written before they were recorded) refuses an input longer than the
            tokenizer's model_max_length (512 for T5) instead, as a source text does under `fields` truncation
            (it has no fields to cut).
    """

    def __init__(
        self,
        base_model: T5ForConditionalGeneration,
        tokenizer,
        max_new_tokens: int = 16,
        max_source_length: int | None = None,
    ) -> None:
        self.base = base_model.eval()
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        declared = getattr(tokenizer, "model_max_length", None)
        default = declared if isinstance(declared, int) and declared < 1_000_000 else DEFAULT_MAX_SOURCE_LENGTH
        self.hard_limit = max_source_length is not None  # refuse over it, for every adapter
        self.max_source_length = max_source_length or default
        self.models: dict[str, T5ForConditionalGeneration] = {}
        self.exports: dict[str, AdapterExport] = {}
        self._mixed: MixedModel | None = None  # built when a mixed call first needs it, again after an add
        self._label_ids: dict[str, list[list[int]]] = {}

    # --- adapters ---------------------------------------------------------------------------------------------

    def add(self, name: str, export: str | Path | AdapterExport, revision: str | None = None) -> None:
        """Add an export as adapter `name` (a name already taken is replaced): a folder (a Path, or a name of an
        existing path), a Hugging Face Hub repository `user/repo` at `revision` (downloaded into the Hub cache, or
        read from it without a network: `compacter_pl.export.export_source`), or an export already loaded."""
        if not isinstance(export, AdapterExport):
            export = read_export(export, revision)
        data = export.data
        if data is not None and data.get("truncation") == "fields":
            require_offsets(self.tokenizer, f"adapter {name!r} (trained with truncation fields)", "")
        model = shared_base_copy(self.base)
        base_ids = {id(p) for p in self.base.parameters()}
        requires_grad = {id(p): p.requires_grad for p in self.base.parameters()}
        try:
            apply_export(model, export, before_load=lambda m: own_trained_parameters(m, base_ids))
        finally:
            for p in self.base.parameters():  # the method may have flipped flags on shared tensors
                p.requires_grad_(requires_grad[id(p)])
        self.models[name] = model.eval()
        self.exports[name] = export
        self._mixed = None

    @property
    def names(self) -> list[str]:
        """The adapters' names, in the order they were added."""
        return list(self.models)

    def task(self, name: str) -> Task:
        """The task adapter `name` was trained on (its export's)."""
        self._require(name)
        task = self.exports[name].task
        if task is None:
            raise UserError(
                f"adapter {name!r} names no task (an AdapterHub adapter's config has none): give it source texts, "
                f"or add it as compacter_pl.adapterhub.read_adapterhub(folder, task=...)"
            )
        return get_task(task)

    def not_mixed(self) -> dict[str, str]:
        """The adapters whose rows run as a batch of their own in a mixed call, and why (their method's mix)."""
        return dict(self._mixed_model().not_mixed)

    # --- inputs -----------------------------------------------------------------------------------------------

    def source(self, name: str, text: dict | str, position: int | None = 0) -> str:
        """The source text of one input for adapter `name`: a record rendered with its task's template, or a text
        as given; checked (the task's fields, the length limit: `input_ids`), a UserError naming the input at
        `position` (None: "the input", for a caller with one), an InputTooLong for an input over the limit."""
        return self._checked(name, text, position)[0]

    def input_ids(self, name: str, text: dict | str, position: int | None = 0) -> list[int]:
        """The token ids adapter `name` reads for one input (a record or a source text): cut as its training cut
        them, or refused in one line over a hard limit (see `AdapterBank`'s max_source_length)."""
        return self._checked(name, text, position)[1]

    def _checked(self, name: str, text: dict | str, position: int | None) -> tuple[str, list[int]]:
        """One input's source text and token ids, rendered and tokenized once (`source`, `input_ids`)."""
        self._require(name)
        source, spans = (text, None) if isinstance(text, str) else self._rendered(name, position, text)
        data = self.exports[name].data
        if self.hard_limit or data is None or (spans is None and data["truncation"] == "fields"):
            ids = self.tokenizer(source)["input_ids"]
            limit = self.max_source_length
            if not self.hard_limit and data is not None:  # a text under fields truncation: its training's length
                limit = data["max_source_length"]
            if len(ids) > limit:
                raise InputTooLong(self._too_long(name, position, len(ids), limit, data))
            return source, ids
        cut = source_ids(self.tokenizer, [source], [spans or ()], data["max_source_length"], data["truncation"])
        return source, cut[0]

    def _too_long(self, name: str, position: int | None, length: int, limit: int, data: dict | None) -> str:
        message = f"adapter {name!r}: {_input(position)} is {length} tokens long, more than max_source_length {limit}"
        if self.hard_limit:
            return f"{message}; shorten it (inputs are never cut), or raise max_source_length"
        if data is None:
            return (
                f"{message}; shorten it: its export records no training settings to cut it with (re-export its "
                f"checkpoint with this version), or pass the bank a higher max_source_length"
            )
        return (
            f"{message}; it trained with truncation fields, which cuts a record's fields: pass the input as a "
            f"record ({', '.join(self.task(name).input_fields)}), or shorten it"
        )

    def _rows(self, names: str | Sequence[str], inputs: Sequence[dict | str]) -> tuple[list[str], list[list[int]]]:
        """Every row's adapter and checked token ids."""
        if isinstance(inputs, (str, dict)):
            raise UserError("inputs must be a list of records or texts (one per row), not a single one")
        rows = [names] * len(inputs) if isinstance(names, str) else list(names)
        if len(rows) != len(inputs):
            raise UserError(f"{len(rows)} adapter names for {len(inputs)} inputs: give one name per input, or one")
        for name in dict.fromkeys(rows):
            self._require(name)
        return rows, [self.input_ids(name, text, i) for i, (name, text) in enumerate(zip(rows, inputs, strict=True))]

    # --- answers ----------------------------------------------------------------------------------------------

    def predict(
        self, names: str | Sequence[str], inputs: Sequence[dict | str], eval_mode: str = "generate"
    ) -> list[str | float | None]:
        """Each input's answer in its task's terms: the class name (`entailment`), STS-B's score, ReCoRD's answer
        text; None when the generation is not one of the task's labels. `names`: the adapter of every row, or one
        for all. `eval_mode` "rank": the most likely of the task's labels (free-text tasks generate)."""
        texts = self.outputs(names, inputs, eval_mode)
        rows = [names] * len(texts) if isinstance(names, str) else list(names)
        return [self.task(name).prediction(text) for name, text in zip(rows, texts, strict=True)]

    def outputs(
        self, names: str | Sequence[str], inputs: Sequence[dict | str], eval_mode: str = "generate"
    ) -> list[str]:
        """Each row's output text, which `predict` reads in its task's terms: the generated text, or, with
        `eval_mode` "rank", the target of the label chosen (`cli.py predict` writes it as `generated`)."""
        rows, ids = self._rows(names, inputs)
        return self.outputs_of_ids(rows, ids, eval_mode)

    def outputs_of_ids(self, rows: list[str], ids: list[list[int]], eval_mode: str = "generate") -> list[str]:
        """`outputs` of inputs already read by `input_ids` (each row's adapter and token ids): a caller that checks
        every input alone first (the server) does not render or tokenize it twice."""
        if eval_mode not in EVAL_MODES:
            raise UserError(f"eval_mode must be one of {', '.join(EVAL_MODES)}, got {eval_mode!r}")
        for name in dict.fromkeys(rows):
            self._require(name)
        return self._outputs(rows, ids, eval_mode)

    def generate(self, names: str | Sequence[str], inputs: Sequence[dict | str]) -> list[str]:
        """The text each row's adapter generates for its input (a record in its task's fields, or a source text)."""
        rows, ids = self._rows(names, inputs)
        return self._outputs(rows, ids, "generate")

    def _outputs(self, rows: list[str], ids: list[list[int]], eval_mode: str) -> list[str]:
        """Output texts of the rows. Rows that rank (a closed label set, eval_mode rank) and rows that generate run
        apart; of each kind, the rows of all mixable adapters run as one batch (one adapter's rows alone: through its
        own model), and the rows of an adapter that cannot be mixed as a batch of their own."""
        modes = ["rank" if eval_mode == "rank" and self.task(name).targets is not None else "generate" for name in rows]
        outputs: list[str] = [""] * len(rows)
        for mode in dict.fromkeys(modes):
            of_mode = [i for i, m in enumerate(modes) if m == mode]
            for name, indices in self._batches([rows[i] for i in of_mode]):
                chosen = [of_mode[i] for i in indices]
                texts = self._run(name, [rows[i] for i in chosen], [ids[i] for i in chosen], mode)
                for i, text in zip(chosen, texts, strict=True):
                    outputs[i] = text
        return outputs

    def _batches(self, rows: list[str]) -> list[tuple[str | None, list[int]]]:
        """(adapter, row indices) per batch: None for the mixed model."""
        distinct = list(dict.fromkeys(rows))
        if len(distinct) == 1:
            return [(distinct[0], list(range(len(rows))))]
        mixed = self._mixed_model()
        batches: list[tuple[str | None, list[int]]] = []
        together = [i for i, name in enumerate(rows) if mixed.has(name)]
        if len({rows[i] for i in together}) == 1:  # one mixable adapter: its own model is the same and faster
            batches.append((rows[together[0]], together))
        elif together:
            batches.append((None, together))
        for name in distinct:
            if not mixed.has(name):
                batches.append((name, [i for i, row in enumerate(rows) if row == name]))
        return batches

    @torch.inference_mode()
    def _run(self, name: str | None, rows: list[str], ids: list[list[int]], mode: str) -> list[str]:
        """One batch, through adapter `name`'s own model or (None) the mixed model with every row routed."""
        device = self.base.device
        tokens = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt").to(device)
        if name is None:
            mixed = self._mixed_model()
            model, route = mixed.model, mixed.route
        else:
            model, route = self.models[name], _unrouted
        if mode == "rank":
            return self._rank(model, route, rows, tokens)
        with route(rows, device):
            generated = greedy_generate(model, tokens["input_ids"], tokens["attention_mask"], self.max_new_tokens)
        return self.tokenizer.batch_decode(generated, skip_special_tokens=True)

    def _rank(self, model: T5ForConditionalGeneration, route, rows: list[str], tokens) -> list[str]:
        """Each row's most likely target among its own task's labels. The candidates of all the rows' tasks are
        scored in one pass (a candidate's score does not depend on the others); each row picks among its own. Rows
        go in chunks that bound the logits held, as `label_log_likelihoods` chunks them."""
        candidates: dict[tuple[int, ...], int] = {}
        for name in dict.fromkeys(rows):
            for ids in self._targets(name):
                candidates.setdefault(tuple(ids), len(candidates))
        device = tokens["input_ids"].device
        labels = padded_label_ids([list(ids) for ids in candidates], device=device)
        chunk = max(1, RANK_LOGITS_BUDGET // (labels.numel() * self.base.config.vocab_size))
        parts = []
        for start in range(0, len(rows), chunk):
            stop = start + chunk
            with route(rows[start:stop], device):
                parts.append(
                    label_log_likelihoods(
                        model, tokens["input_ids"][start:stop], tokens["attention_mask"][start:stop], labels
                    )
                )
        scores = torch.cat(parts)
        chosen = []
        for row, name in enumerate(rows):
            own = [candidates[tuple(ids)] for ids in self._targets(name)]
            best = int(scores[row, own].argmax())
            chosen.append(self.task(name).targets[best])  # type: ignore[index]  # ranked rows have targets
        return chosen

    def _targets(self, name: str) -> list[list[int]]:
        if name not in self._label_ids:
            self._label_ids[name] = [self.tokenizer(t)["input_ids"] for t in self.task(name).targets or ()]
        return self._label_ids[name]

    def _mixed_model(self) -> MixedModel:
        if self._mixed is None:
            methods = {name: method_from_config(e.config["method"], saved=True) for name, e in self.exports.items()}
            trained = {name: set(e.state_dict) for name, e in self.exports.items()}
            self._mixed = MixedModel(self.base, self.models, methods, trained)
        return self._mixed

    def _require(self, name: str) -> None:
        if name not in self.models:
            raise UserError(
                f"no adapter named {name!r} in this AdapterBank; it has: {', '.join(self.models) or 'none'} "
                f"(add one with bank.add)"
            )

    def _render(self, name: str, position: int | None, record: dict) -> str:
        return self._rendered(name, position, record)[0]

    def _rendered(self, name: str, position: int | None, record: dict) -> tuple[str, Spans]:
        """A record as its adapter's training rendered it: the source text and its fields' spans."""
        task = self.task(name)
        if not isinstance(record, dict):
            raise UserError(
                f"adapter {name!r}: {_input(position)} must be a record (an object with "
                f"{', '.join(task.input_fields)}) or a source text, not {type(record).__name__}"
            )
        missing = [field for field in task.input_fields if field not in record]
        if missing:
            raise UserError(
                f"adapter {name!r}: {_input(position)} lacks field {missing[0]!r}; {task.name} reads "
                f"{', '.join(task.input_fields)}"
            )
        problem = input_problem(task, record)  # a field's type, as `cli.py predict` checks its inputs
        if problem is not None:
            raise UserError(f"adapter {name!r}: {_input(position)}: {problem}")
        data = self.exports[name].data
        if data is not None and data.get("template", task.template) != task.template:
            raise UserError(
                f"adapter {name!r} trained on inputs rendered as {data['template']!r}, but {task.name} renders "
                f"{task.template!r} in this version: pass source texts rendered as it trained"
            )
        try:
            return task.rendered(record)
        except ValueError as error:
            raise UserError(f"adapter {name!r}: {_input(position)}: {error}") from None


def _input(position: int | None) -> str:
    """How a message names the input at `position` (None: the caller's only one)."""
    return "the input" if position is None else f"input {position}"
