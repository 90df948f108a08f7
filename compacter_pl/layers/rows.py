"""Row-routed parts: one T5 whose rows each run with their own task's adaptation (`compacter_pl.mixing`).

A mixed batch gives every row a slot (slot 0: the base model alone, 1..S: the adapters). `RowRouting` holds the
slots of the batch running; every part below reads them and applies, to each row, what its slot declared:

- `RowAdapters`: bottleneck adapters `y + up(act(down(y)))` on a sublayer's output, every slot's projections as
  one dense (in, out) matrix, stacked, so a batch gathers each row's matrices and runs one batched matmul per
  projection whatever the number of adapters. A slot without an adapter there has zero matrices: `y + 0`. The
  decoding loop's steps gather them once per call, not once per token.
- `RowLayerNorm`: T5's RMS layer norm with a weight per slot (adapters train every layer norm).
- `RowLinear`: a Linear with a weight per slot (an output layer that trained), run once per distinct weight.
- `RowBias`: a bias per slot added to a module's output (BitFit's).
- `RowPrompts`: soft prompts per slot in front of the encoder's input; shorter prompts are padded on the left and
  masked, so every row's tokens keep the relative positions they have alone.
- `RowKeyword`: a keyword argument per row for a module that takes one (PEFT's `adapter_names`).

Every part is exact per row: a row's numbers are those of its adapter alone, up to the order of float additions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import cast

import torch
from torch import Tensor, nn
from torch.func import functional_call
from transformers.activations import ACT2FN

from compacter_pl.layers.fused_adapter import two_factors
from compacter_pl.layers.prompt import stack_kwargs
from compacter_pl.layers.regions import region

DenseAdapter = tuple[str, Tensor, Tensor, Tensor, Tensor]  # activation, down (d, b) and bias, up (b, d) and bias


class RowRouting:
    """The slot of every row of the batch running (a LongTensor of shape (batch,)); None outside a routed call.
    Also what the parts gathered for these rows and keep for the rest of the call (`gathered`)."""

    def __init__(self) -> None:
        self._slots: Tensor | None = None
        self._kept: dict[tuple, Tensor] = {}

    @contextlib.contextmanager
    def route(self, slots: Tensor) -> Iterator[None]:
        previous, self._slots, self._kept = (self._slots, self._kept), slots, {}
        try:
            yield
        finally:
            self._slots, self._kept = previous

    def gathered(self, stacked: Tensor, slots: Tensor, dtype: torch.dtype, keep: bool) -> Tensor:
        """Each row's slice of `stacked` (by slot), in `dtype`; with `keep`, gathered once and kept until the routed
        call ends (its rows and their slots do not change within it)."""
        key = (id(stacked), dtype)
        kept = self._kept.get(key)
        if kept is None:
            kept = stacked.index_select(0, slots).to(dtype)  # whole slices copied: 3x faster than [slots] on CPU
            if keep:
                self._kept[key] = kept
        return kept

    def slots(self, batch: int) -> Tensor:
        if self._slots is None:
            raise RuntimeError("a mixed model ran outside MixedModel.route(...): its rows have no adapters")
        if self._slots.shape[0] != batch:
            raise RuntimeError(f"a mixed model routed {self._slots.shape[0]} rows got a batch of {batch}")
        return self._slots


def _stack_by_slot(values: dict[int, Tensor], num_slots: int, default: Tensor) -> Tensor:
    """(num_slots + 1, *shape): slot s's value, `default` where a slot has none."""
    return torch.stack([values.get(slot, default) for slot in range(num_slots + 1)])


class RowAdapters(nn.Module):
    """The bottleneck adapters of one sublayer, a row's own by its slot (see the module docstring).

    `adapters`: slot -> (activation name, down weight (d, b), down bias (b), up weight (b, d), up bias (d)).
    Adapters with other activations run as separate groups; bottlenecks of other sizes are padded with zeros.
    """

    def __init__(self, routing: RowRouting, adapters: dict[int, DenseAdapter], slots: int):
        super().__init__()
        self.routing = routing
        self.activations: list[str] = sorted({adapter[0] for adapter in adapters.values()})
        for g, activation in enumerate(self.activations):
            own = {slot: a[1:] for slot, a in adapters.items() if a[0] == activation}
            width = max(dw.shape[1] for dw, _, _, _ in own.values())
            d = next(iter(own.values()))[0].shape[0]
            pad = {slot: _padded(dw, db, uw, ub, width) for slot, (dw, db, uw, ub) in own.items()}
            reference = next(iter(own.values()))[0]
            zeros = [reference.new_zeros(shape) for shape in ((d, width), (width,), (width, d), (d,))]
            for k, name in enumerate(("down_weight", "down_bias", "up_weight", "up_bias")):
                stacked = _stack_by_slot({slot: p[k] for slot, p in pad.items()}, slots, zeros[k])
                self.register_buffer(f"{name}_{g}", stacked, persistent=False)

    def forward(self, y: Tensor) -> Tensor:
        with region("row adapters"):
            slots = self.routing.slots(y.shape[0])
            # One token per row: a decoding step, which every next token repeats with the same rows, so their
            # matrices are gathered once per call (B copies of them held until it ends), not once per token.
            keep = y.shape[-2] == 1
            out = y
            for g, activation in enumerate(self.activations):
                down_w, down_b, up_w, up_b = (
                    self.routing.gathered(getattr(self, f"{name}_{g}"), slots, y.dtype, keep)
                    for name in ("down_weight", "down_bias", "up_weight", "up_bias")
                )
                hidden = ACT2FN[activation](torch.baddbmm(down_b.unsqueeze(1), y, down_w))
                out = torch.baddbmm(out, hidden, up_w) + up_b.unsqueeze(1)
            return out


def _padded(dw: Tensor, db: Tensor, uw: Tensor, ub: Tensor, width: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    extra = width - dw.shape[1]
    if not extra:
        return dw, db, uw, ub
    return (
        torch.cat([dw, dw.new_zeros(dw.shape[0], extra)], 1),
        torch.cat([db, db.new_zeros(extra)]),
        torch.cat([uw, uw.new_zeros(extra, uw.shape[1])]),
        ub,
    )


class RowLayerNorm(nn.Module):
    """T5's RMS layer norm with a weight per slot: the library's norm computes the normalised input (run with a
    weight of ones, so its dtype handling is its own), then each row is scaled by its slot's weight."""

    ones: Tensor
    weights: Tensor

    def __init__(self, routing: RowRouting, norm: nn.Module, weights: dict[int, Tensor], slots: int):
        super().__init__()
        self.routing = routing
        self.norm = norm
        base = norm.weight.detach()  # type: ignore[union-attr,operator]
        self.register_buffer("ones", torch.ones_like(base), persistent=False)
        self.register_buffer("weights", _stack_by_slot(weights, slots, base), persistent=False)

    def forward(self, hidden: Tensor) -> Tensor:
        with region("row layer norms"):
            normed = functional_call(self.norm, {"weight": self.ones}, (hidden,))
            scale = self.weights.index_select(0, self.routing.slots(hidden.shape[0]))
            return normed * scale.view(scale.shape[0], *([1] * (normed.dim() - 2)), scale.shape[-1])


class RowLinear(nn.Module):
    """A Linear with a weight per slot (the base's elsewhere), run once per distinct weight among the rows."""

    chosen: Tensor

    def __init__(self, routing: RowRouting, linear: nn.Linear, weights: dict[int, Tensor], slots: int):
        super().__init__()
        self.routing = routing
        self.linear = linear
        self.own: dict[int, Tensor] = dict(weights)  # plain tensors: the per-task models hold them
        chosen = torch.zeros(slots + 1, dtype=torch.long, device=linear.weight.device)  # slot -> its weight's slot
        chosen[list(weights)] = torch.tensor(list(weights), device=linear.weight.device)
        self.register_buffer("chosen", chosen, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        slots = self.routing.slots(x.shape[0])
        out = torch.empty(*x.shape[:-1], self.linear.out_features, dtype=x.dtype, device=x.device)
        chosen = self.chosen[slots]
        for slot in chosen.unique().tolist():
            rows = (chosen == slot).nonzero().squeeze(1)
            weight = self.own.get(slot, self.linear.weight)
            out[rows] = nn.functional.linear(x[rows], weight.to(x.dtype), self.linear.bias)
        return out


class RowBias(nn.Module):
    """A bias per slot (zero elsewhere), added to the output of the module it hooks."""

    biases: Tensor

    def __init__(self, routing: RowRouting, biases: dict[int, Tensor], slots: int):
        super().__init__()
        self.routing = routing
        reference = next(iter(biases.values()))
        self.register_buffer("biases", _stack_by_slot(biases, slots, torch.zeros_like(reference)), persistent=False)

    def hook(self, module: nn.Module, args, output: Tensor) -> Tensor:
        bias = self.biases.index_select(0, self.routing.slots(output.shape[0])).to(output.dtype)
        return output + bias.view(bias.shape[0], *([1] * (output.dim() - 2)), bias.shape[-1])


class RowPrompts(nn.Module):
    """Soft prompts per slot in front of the encoder input (`hook_encoder`), and the matching ones in front of the
    decoder's cross-attention mask (`hook_decoder`). Prompts are stored right-aligned: a row whose prompt is shorter
    than the batch's longest gets masked padding on its left."""

    table: Tensor
    lengths: Tensor
    mask: Tensor

    def __init__(self, routing: RowRouting, prompts: dict[int, Tensor], slots: int):
        super().__init__()
        self.routing = routing
        longest = max(p.shape[0] for p in prompts.values())
        reference = next(iter(prompts.values()))
        table = reference.new_zeros(slots + 1, longest, reference.shape[1])
        lengths = torch.zeros(slots + 1, dtype=torch.long)
        for slot, prompt in prompts.items():
            table[slot, longest - prompt.shape[0] :] = prompt
            lengths[slot] = prompt.shape[0]
        mask = torch.arange(longest).unsqueeze(0) >= (longest - lengths).unsqueeze(1)
        self.register_buffer("table", table, persistent=False)
        self.register_buffer("lengths", lengths.to(reference.device), persistent=False)
        self.register_buffer("mask", mask.to(reference.device), persistent=False)

    def _prompt(self, batch: int) -> tuple[Tensor, int]:
        slots = self.routing.slots(batch)
        return slots, int(self.lengths[slots].max())

    def hook_encoder(self, encoder: nn.Module, args: tuple, kwargs: dict):
        kwargs = stack_kwargs(args, kwargs)
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            embeds = encoder.embed_tokens(kwargs["input_ids"])  # type: ignore[operator]  # a submodule
        slots, width = self._prompt(embeds.shape[0])
        if width == 0:
            return None
        vectors = self.table[slots, self.table.shape[1] - width :].to(embeds.dtype)
        kwargs["input_ids"] = None
        kwargs["inputs_embeds"] = torch.cat([vectors, embeds], dim=1)
        mask = kwargs.get("attention_mask")
        if mask is None:
            mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        kwargs["attention_mask"] = torch.cat([self._mask(slots, width, mask.dtype), mask], dim=1)
        return (), kwargs

    def hook_decoder(self, decoder: nn.Module, args: tuple, kwargs: dict):
        kwargs = stack_kwargs(args, kwargs)
        states = kwargs.get("encoder_hidden_states")
        if states is None:
            return None
        slots, width = self._prompt(states.shape[0])
        if width == 0:
            return None
        mask = kwargs.get("encoder_attention_mask")
        if mask is None:
            mask = torch.ones(states.shape[0], states.shape[1] - width, dtype=torch.long, device=states.device)
        if mask.shape[1] + width != states.shape[1]:
            return None
        kwargs["encoder_attention_mask"] = torch.cat([self._mask(slots, width, mask.dtype), mask], dim=1)
        return (), kwargs

    def _mask(self, slots: Tensor, width: int, dtype: torch.dtype) -> Tensor:
        return self.mask[slots, self.mask.shape[1] - width :].to(dtype)


class RowKeyword:
    """A forward pre-hook giving a module the keyword `name` as a list, one value per row (its slot's; `default`
    for the slots that declared none)."""

    def __init__(self, routing: RowRouting, name: str, values: dict[int, object], default: object):
        self.routing, self.name, self.values, self.default = routing, name, values, default

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict):
        batch = args[0].shape[0] if args else next(iter(kwargs.values())).shape[0]
        slots = self.routing.slots(batch).tolist()
        return args, {**kwargs, self.name: [self.values.get(s, self.default) for s in slots]}


# --- what a slot declares, and the mixed model built from the declarations ---------------------------------------


class NotMixable(Exception):
    """A method whose rows cannot share a batch with others (its message says why); they run as a batch of their
    own."""


def dense_projection(projection: nn.Module) -> tuple[Tensor, Tensor]:
    """An adapter projection as one (in, out) matrix and a bias: `projection(x) == x @ W + b`."""
    factors = two_factors(projection, 1 << 30)  # any form gives the same matrix
    if factors is None:
        raise NotMixable(f"its projection {type(projection).__name__} is not linear in two factors")
    p, q, bias = factors
    weight = (p if q is None else p @ q).detach()
    return weight, (bias.detach() if bias is not None else weight.new_zeros(weight.shape[1]))


class SlotParts:
    """What one adapter changes, declared by its method's `mix` on the task's own model (the base with the
    method applied and the export loaded): each declaration names a module of that model and the tensors that hold
    the adapter's numbers, and records the parameters it covers, so a mix that misses a trained parameter is seen
    (`MixedModel` then runs the adapter alone). The modules are found by name in the mixed model."""

    def __init__(self, model: nn.Module, key: str):
        self.key = key  # a name of this adapter's own (a valid module name) for what it injects
        self._paths = {id(module): name for name, module in model.named_modules(remove_duplicate=False)}
        self._parameter_names: dict[int, set[str]] = {}
        for name, parameter in model.named_parameters(remove_duplicate=False):
            self._parameter_names.setdefault(id(parameter), set()).add(name)
        self.covered: set[str] = set()
        self.adapters: dict[str, DenseAdapter] = {}
        self.scales: dict[str, Tensor] = {}
        self.weights: dict[str, Tensor] = {}
        self.biases: dict[str, Tensor] = {}
        self.keywords: dict[str, tuple[str, object, object]] = {}
        self.injections: list[Callable[[nn.Module], None]] = []
        self.prompt: Tensor | None = None

    def path(self, module: nn.Module) -> str:
        return self._paths[id(module)]

    def cover(self, *parameters: Tensor) -> None:
        for parameter in parameters:
            self.covered |= self._parameter_names.get(id(parameter), set())

    def adapter(self, host: nn.Module, down: nn.Module, up: nn.Module, activation: str, owner: nn.Module) -> None:
        """A bottleneck `y + up(act(down(y)))` on `host`'s output (its first element, if a tuple); `owner`: the
        module holding its parameters."""
        self.cover(*owner.parameters())
        self.adapters[self.path(host)] = (activation, *dense_projection(down), *dense_projection(up))

    def scale(self, norm: nn.Module) -> None:
        """A layer norm whose weight is the adapter's own."""
        weight = cast(Tensor, norm.weight)
        self.cover(weight)
        self.scales[self.path(norm)] = weight.detach()

    def weight(self, linear: nn.Linear) -> None:
        """A Linear whose weight is the adapter's own (e.g. an output layer that trained)."""
        self.cover(linear.weight)
        self.weights[self.path(linear)] = linear.weight.detach()

    def bias(self, module: nn.Module, bias: Tensor) -> None:
        """A bias added to `module`'s output."""
        self.cover(bias)
        self.biases[self.path(module)] = bias.detach()

    def prompt_vectors(self, prompt: Tensor) -> None:
        """Vectors in front of the encoder's input, (num_tokens, d_model)."""
        self.cover(prompt)
        self.prompt = prompt.detach()

    def inject(self, change: Callable[[nn.Module], None], *parameters: Tensor) -> None:
        """`change(mixed_model)` adds modules the adapter needs (holding `parameters`' numbers) to the mixed model."""
        self.cover(*parameters)
        self.injections.append(change)

    def keyword(self, module: nn.Module, name: str, value: object, default: object) -> None:
        """The module (one `inject` added) takes keyword `name`: `value` for this adapter's rows, `default` for
        others'."""
        self.keywords[self.path(module)] = (name, value, default)


def _replace(model: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, attribute = path.rpartition(".")
    setattr(model.get_submodule(parent), attribute, new)


def _by_path(plans: dict[int, SlotParts], field: str) -> dict[str, dict[int, object]]:
    table: dict[str, dict[int, object]] = {}
    for slot, parts in plans.items():
        for path, value in getattr(parts, field).items():
            table.setdefault(path, {})[slot] = value
    return table


def _adapt_output(parts: RowAdapters):
    def hook(module: nn.Module, args, output):
        if isinstance(output, tuple):
            return (parts(output[0]), *output[1:])
        return parts(output)

    return hook


def assemble(model: nn.Module, routing: RowRouting, plans: dict[int, SlotParts]) -> None:
    """Build every slot's declared parts into `model` (a copy of the base sharing its tensors): first the modules
    adapters inject, then the modules replaced (layer norms, Linears with weights per slot), then the hooks on
    outputs and inputs."""
    slots = max(plans, default=0)
    for parts in plans.values():
        for change in parts.injections:
            change(model)
    for path, weights in _by_path(plans, "scales").items():
        _replace(model, path, RowLayerNorm(routing, model.get_submodule(path), weights, slots))  # type: ignore[arg-type]
    for path, weights in _by_path(plans, "weights").items():
        _replace(model, path, RowLinear(routing, model.get_submodule(path), weights, slots))  # type: ignore[arg-type]
    for path, adapters in _by_path(plans, "adapters").items():
        host, row_adapters = model.get_submodule(path), RowAdapters(routing, adapters, slots)  # type: ignore[arg-type]
        host.add_module("row_adapters", row_adapters)
        host.register_forward_hook(_adapt_output(row_adapters))
    for path, biases in _by_path(plans, "biases").items():
        module, bias = model.get_submodule(path), RowBias(routing, biases, slots)  # type: ignore[arg-type]
        module.add_module("row_bias", bias)
        module.register_forward_hook(bias.hook)
    for path, keywords in _by_path(plans, "keywords").items():
        declared = cast(dict[int, tuple[str, object, object]], keywords)
        name, _, default = next(iter(declared.values()))
        values = {slot: keyword[1] for slot, keyword in declared.items()}
        model.get_submodule(path).register_forward_pre_hook(
            RowKeyword(routing, name, values, default), with_kwargs=True
        )
    prompts = {slot: parts.prompt for slot, parts in plans.items() if parts.prompt is not None}
    if prompts:
        encoder, decoder = model.get_submodule("encoder"), model.get_submodule("decoder")
        row_prompts = RowPrompts(routing, prompts, slots)
        encoder.add_module("row_prompts", row_prompts)
        encoder.register_forward_pre_hook(row_prompts.hook_encoder, with_kwargs=True)
        decoder.register_forward_pre_hook(row_prompts.hook_decoder, with_kwargs=True)
