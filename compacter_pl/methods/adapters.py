"""Adapter-style methods: Adapter (Houlsby), Pfeiffer-Adapter, AdapterDrop, Adapter-LowRank.

Flow: CLI -> LightningModule -> method (this file) -> layers (`compacter_pl.layers.adapter`). `AdapterMethod`
holds what they share (and what PHM-Adapter, Compacter and Compacter++ in `compacter.py` reuse): the bottleneck
adapter `adapter(y) = y + U(act(D(y)))`, its placement, and what trains.

Placement (the paper's Section 3, as its authors' code does it), without forking T5: a forward hook on the
library's module whose output is the sublayer's y replaces y by adapter(y); T5 then adds the residual itself,
`h = h + dropout(adapter(y))`.
- "self_attention": the `SelfAttention` (T5Attention) of layer[0] of every block; its output is a tuple whose
  first element is y. None after cross-attention.
- "feed_forward": the `DenseReluDense` (ungated or gated) of the block's last layer; its output is y.
The adapter is registered as a child of the hooked module (`...SelfAttention.adapter`,
`...DenseReluDense.adapter`), so it is in `state_dict`, moves with `.to()`, and the hook finds it by name
(hooks are module-level functions: the model stays picklable and deep-copyable).

What trains: the adapters, all T5 layer norms (option `train_layer_norms`), and, as an option, the output layer.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, Literal, cast

from jsonargparse.typing import NonNegativeInt, PositiveInt
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration
from transformers.activations import ACT2FN

from compacter_pl.errors import UserError
from compacter_pl.layers.adapter import BottleneckAdapter, LowRankLinear, houlsby_linear
from compacter_pl.layers.inits import GLOROT_INITS
from compacter_pl.layers.rows import SlotParts
from compacter_pl.methods import t5_parts
from compacter_pl.methods.base import Method, freeze, option
from compacter_pl.methods.registry import register_method

SUBLAYERS = ("self_attention", "feed_forward")
# Types the CLI checks while parsing (a bad value is a one-line error there, before anything is built).
Sublayer = Literal["self_attention", "feed_forward"]
if TYPE_CHECKING:  # Literals built at run time from the tables: plain strings to a type checker
    NonLinearity = str
    WeightInit = str
else:
    NonLinearity = Literal[tuple(sorted(ACT2FN))]
    WeightInit = Literal[GLOROT_INITS]  # the authors' choices for PHM and low-rank factors (layers/inits.py)


def weight_init(value) -> str:
    """A PHM or low-rank factor init (a one-line UserError for anything else)."""
    if value not in GLOROT_INITS:
        raise UserError(f"unknown init {value!r}; choose one of {', '.join(GLOROT_INITS)}")
    return value


def _adapt_first_output(module: nn.Module, args, output):
    """Forward hook of a T5Attention: its output is (y, position_bias, weights); y becomes adapter(y)."""
    return (module.adapter(output[0]), *output[1:])  # type: ignore[operator]  # a submodule, not a Tensor


def _adapt_output(module: nn.Module, args, output):
    """Forward hook of a feed-forward: y becomes adapter(y)."""
    return module.adapter(output)  # type: ignore[operator]  # a submodule, not a Tensor


_HOSTS = {
    "self_attention": (t5_parts.self_attention, _adapt_first_output),
    "feed_forward": (t5_parts.feed_forward, _adapt_output),
}


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{name}={value!r} must be a positive integer")
    return int(value)


class AdapterMethod(Method):
    """Shared base of the adapter-style methods (abstract, not a method of its own: use one of its subclasses).

    Subclasses choose the projections (`projection`), where adapters go (`sublayers`, `adapted_blocks`) and
    their PHM `n` (`phm_n`, None for plain projections). They take the arguments below through `**kwargs` (a
    subclass names one itself only to change its default) and store their own under their names.

    Args:
        reduction_factor: The bottleneck is d_model // reduction_factor (768 // 32 = 24 for T5-base).
        bottleneck: The bottleneck size d, overriding reduction_factor (the paper searched 96, 48, 24).
        non_linearity: The activation between the projections, a transformers ACT2FN name (gelu_new, gelu, relu,
            swish, ...). Default gelu_new, GeLU's tanh approximation: the authors' code, which produced the
            paper's tables, uses it in every adapter (the paper says GeLU); gelu is the exact erf form.
        sublayers: Where adapters go in every block: self_attention and/or feed_forward (never cross-attention).
        train_layer_norms: Also train all T5 layer norms (the paper does: 62 in T5-base, 47,616 numbers).
        train_output_layer: Also train the output layer (the paper's Appendix C). A tied output layer is untied
            first: it gets its own copy of the embedding, which trains while the input embedding stays frozen.
    """

    @property
    def phm_n(self) -> int | None:
        """The n of PHM-based subclasses (n must divide the width and the bottleneck); None for plain projections."""
        return None

    def __init__(
        self,
        reduction_factor: PositiveInt = 32,
        bottleneck: PositiveInt | None = None,
        non_linearity: NonLinearity = "gelu_new",
        sublayers: Sequence[Sublayer] = ("self_attention", "feed_forward"),
        train_layer_norms: bool = True,
        train_output_layer: bool = False,
    ) -> None:
        # Single values are checked here (the CLI's types already reject them while parsing); what needs the
        # model or several arguments together is checked in `check`, which runs before the weights load.
        self.reduction_factor = positive_int("reduction_factor", reduction_factor)
        self.bottleneck = None if bottleneck is None else positive_int("bottleneck", bottleneck)
        if non_linearity not in ACT2FN:
            raise UserError(f"unknown non_linearity {non_linearity!r}; choose one of {', '.join(sorted(ACT2FN))}")
        self.non_linearity = non_linearity
        chosen: list[str] = [sublayers] if isinstance(sublayers, str) else list(dict.fromkeys(sublayers))
        unknown = [s for s in chosen if s not in SUBLAYERS]
        if unknown:
            raise UserError(
                f"unknown sublayer {unknown[0]!r}: choose among {', '.join(SUBLAYERS)} "
                f"(adapters never follow cross-attention)"
            )
        self.sublayers = chosen
        self.train_layer_norms = bool(train_layer_norms)
        self.train_output_layer = bool(train_output_layer)

    @classmethod
    def saved_init_args(cls, init_args: dict) -> dict:
        # The default was gelu until the authors' gelu_new replaced it: a saved config that does not name its
        # activation was trained with gelu, and must be rebuilt with it.
        return {"non_linearity": "gelu", **super().saved_init_args(init_args)}

    @staticmethod
    def _n_hint(n: int, d_model: int, bottleneck: int) -> str:
        """What to change when n does not fit: the values of n that divide both widths, and (when n divides d_model)
        a bottleneck that n divides."""
        choices = [k for k in range(1, min(d_model, bottleneck) + 1) if d_model % k == 0 and bottleneck % k == 0]
        hint = (
            f"set {option('n')} to one of {', '.join(map(str, choices))} (the values dividing both d_model "
            f"{d_model} and the bottleneck {bottleneck})"
        )
        if d_model % n == 0:
            hint += f", or {option('bottleneck')} to a multiple of {n}"
        return hint

    def bottleneck_size(self, d_model: int) -> int:
        """The bottleneck d: `bottleneck` if given, else d_model // reduction_factor."""
        return self.bottleneck if self.bottleneck is not None else d_model // self.reduction_factor

    def adapted_blocks(self, num_blocks: int) -> list[int]:
        """Indices of the blocks (of one stack) that get adapters: all of them unless a subclass says otherwise."""
        return list(range(num_blocks))

    def check(self, config: T5Config, max_source_length: int | None = None) -> None:
        d_model = config.d_model
        d = self.bottleneck_size(d_model)
        where = (
            f"bottleneck={d}"
            if self.bottleneck is not None
            else f"bottleneck {d} (d_model {d_model} // reduction_factor {self.reduction_factor})"
        )
        if d < 1:
            raise UserError(f"{where} is empty: lower {option('reduction_factor')} or set {option('bottleneck')}")
        if not self.sublayers:
            raise UserError(f"no sublayers given: set {option('sublayers')} to some of {', '.join(SUBLAYERS)}")
        n = self.phm_n
        if n is not None:
            if d_model % n:
                raise UserError(
                    f"n={n} does not divide the model width d_model={d_model}: {self._n_hint(n, d_model, d)}"
                )
            if d < n:
                raise UserError(
                    f"{where} is smaller than n={n}: a PHM layer needs bottleneck >= n; {self._n_hint(n, d_model, d)}"
                )
            if d % n:
                raise UserError(f"n={n} does not divide the {where}: {self._n_hint(n, d_model, d)}")
        counts = (config.num_layers, config.num_decoder_layers)  # T5Config sets the second from the first if None
        if not any(self.adapted_blocks(count) for count in counts):  # type: ignore[arg-type]
            raise UserError(
                f"{type(self).__name__} places no adapter in a model of {counts[0]} encoder and "
                f"{counts[1]} decoder blocks{self.no_adapter_hint()}"
            )

    def no_adapter_hint(self) -> str:
        """What to change when `adapted_blocks` leaves no block (a subclass that drops blocks names its option)."""
        return ""

    @abc.abstractmethod
    def projection(self, in_features: int, out_features: int) -> nn.Module:
        """The down- or up-projection of an adapter."""

    def prepare(self, model: T5ForConditionalGeneration) -> None:
        """Attach model-wide state before the adapters are built (Compacter's shared A)."""

    def make_adapter(self, d_model: int, bottleneck: int) -> BottleneckAdapter:
        return BottleneckAdapter(
            self.projection(d_model, bottleneck), self.projection(bottleneck, d_model), self.non_linearity
        )

    def apply(self, model: T5ForConditionalGeneration) -> None:
        self.check(model.config)
        freeze(model)
        reference = model.get_input_embeddings().weight
        d_model = model.config.d_model
        bottleneck = self.bottleneck_size(d_model)
        self.prepare(model)
        for stack in t5_parts.stacks(model).values():
            for index in self.adapted_blocks(len(stack.block)):
                for sublayer in self.sublayers:
                    find_host, hook = _HOSTS[sublayer]
                    host = find_host(stack.block[index])
                    adapter = self.make_adapter(d_model, bottleneck).to(device=reference.device, dtype=reference.dtype)
                    host.add_module("adapter", adapter)
                    host.register_forward_hook(hook)
        for parameter in self.adapter_parameters(model):
            parameter.requires_grad_(True)
        if self.train_layer_norms:
            t5_parts.train_layer_norms(model)
        if self.train_output_layer:
            t5_parts.train_output_layer(model)

    def mix(self, model: T5ForConditionalGeneration, parts: SlotParts) -> None:
        """Each adapter as dense matrices on its host's output, the layer norms and the output layer if they
        trained (every parameter the method added is the adapters' own, or shared by them: Compacter's A)."""
        for stack in t5_parts.stacks(model).values():
            for index in self.adapted_blocks(len(stack.block)):
                for sublayer in self.sublayers:
                    host = _HOSTS[sublayer][0](stack.block[index])
                    adapter = cast(BottleneckAdapter, host.adapter)
                    parts.adapter(host, adapter.down, adapter.up, self.non_linearity, owner=adapter)
        parts.cover(*self.adapter_parameters(model))
        if self.train_layer_norms:
            for norm in t5_parts.layer_norms(model):
                parts.scale(norm)
        if self.train_output_layer:
            parts.weight(model.lm_head)

    def adapter_parameters(self, model: T5ForConditionalGeneration) -> list[nn.Parameter]:
        """Every parameter the method added (adapters, and what `prepare` attached)."""
        return [p for name, p in model.named_parameters() if ".adapter." in f".{name}"]

    # --- AdapterHub's form (`compacter_pl.adapterhub`) -----------------------------------------------------------
    # A class has a form in AdapterHub's format only if it defines `adapterhub_arguments` itself: a subclass that
    # changes what its adapters are or where they go (AdapterDrop, Adapter-LowRank) does not inherit its parent's.

    # The names AdapterHub gives the parameters of a projection (ours -> its), and those of what `prepare` attached,
    # which it keeps in its `shared_parameters`.
    adapterhub_names: ClassVar[Mapping[str, str]] = {"weight": "weight", "bias": "bias"}
    adapterhub_shared: ClassVar[Mapping[str, str]] = {}

    def adapterhub_fields(self) -> dict:
        """The fields of AdapterHub's bottleneck config (`BnConfig`) that say what the projections are."""
        return {"phm_layer": False}

    @classmethod
    def adapterhub_arguments(cls, fields: Mapping, sublayers: list[str]) -> dict | None:
        """This class's own arguments for an AdapterHub bottleneck config (`fields`, every field given) whose adapters
        follow `sublayers`, or None where the config is not this method's form (the shared adapter options are
        read by `compacter_pl.adapterhub`)."""
        return None


class Adapter(AdapterMethod):
    """Adapter (Houlsby et al. 2019): a bottleneck adapter after self-attention and after the feed-forward.

    Down and up projections are dense layers with a near-identity init, as in the authors' code: weights
    N(0, 0.01^2) (not truncated), zero biases. T5-base, d 24: 48 adapters, 1,855,104 trainable with the layer norms.
    Its arguments are those of every adapter method (`AdapterMethod`).
    """

    def projection(self, in_features: int, out_features: int) -> nn.Module:
        return houlsby_linear(in_features, out_features)

    @classmethod
    def adapterhub_arguments(cls, fields: Mapping, sublayers: list[str]) -> dict | None:
        """AdapterHub's Houlsby adapter (`DoubleSeqBnConfig`): dense projections after both sublayers."""
        return {} if not fields["phm_layer"] and len(sublayers) == 2 else None


class PfeifferAdapter(Adapter):
    """Pfeiffer-Adapter: one adapter per block, after self-attention (the paper reports the better of the two
    placements; `sublayers: [feed_forward]` gives the other). T5-base, d 24: 951,360 trainable.

    Args:
        sublayers: Where the adapter goes in every block: self_attention or feed_forward.
    """

    def __init__(self, sublayers: Sequence[Sublayer] = ("self_attention",), **kwargs) -> None:
        super().__init__(sublayers=sublayers, **kwargs)

    @classmethod
    def adapterhub_arguments(cls, fields: Mapping, sublayers: list[str]) -> dict | None:
        """One dense adapter per block: AdapterHub's Pfeiffer adapter (`SeqBnConfig`, after the feed-forward) or one
        after self-attention (the paper's placement)."""
        return {"sublayers": sublayers} if not fields["phm_layer"] and len(sublayers) == 1 else None


class AdapterDrop(Adapter):
    """AdapterDrop (Rücklé et al. 2021): Houlsby adapters, none in the given blocks of encoder and decoder.

    T5-base, d 24, blocks 0-4 dropped: 28 adapters, 1,101,984 trainable.

    Args:
        dropped_blocks: Block indices (of the encoder and of the decoder alike) that get no adapter.
    """

    def __init__(self, dropped_blocks: Sequence[NonNegativeInt] = (0, 1, 2, 3, 4), **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(dropped_blocks, int):
            dropped_blocks = [dropped_blocks]
        dropped = list(dropped_blocks)
        if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in dropped):
            raise UserError(f"dropped_blocks={dropped!r} must be block indices (integers >= 0)")
        self.dropped_blocks = [int(i) for i in dropped]

    def adapted_blocks(self, num_blocks: int) -> list[int]:
        return [i for i in range(num_blocks) if i not in self.dropped_blocks]

    def no_adapter_hint(self) -> str:
        return f": drop fewer blocks with {option('dropped_blocks')}"


class AdapterLowRank(Adapter):
    """Adapter-LowRank: Houlsby adapters whose down and up projections are rank-r products u v (r = 1).

    u (in, r) and v (r, out) start as in the authors' code: glorot-uniform, i.e. Xavier uniform with gain
    sqrt(2) (for d 24: bound 0.125 for the down u (768, 1), 0.693 for its v (1, 24)); biases zero.
    T5-base, d 24: 161,664 trainable.

    Args:
        rank: The rank r of every projection's weight u v.
        init: How u and v start: glorot-uniform (the authors' default: Xavier uniform, gain sqrt(2)) or
            glorot-normal (Xavier normal, gain sqrt(2)), each factor as one matrix; biases start at zero.
    """

    def __init__(self, rank: PositiveInt = 1, init: WeightInit = "glorot-uniform", **kwargs) -> None:
        super().__init__(**kwargs)
        self.rank = positive_int("rank", rank)
        self.init = weight_init(init)

    def projection(self, in_features: int, out_features: int) -> nn.Module:
        return LowRankLinear(in_features, out_features, self.rank, init=self.init)


register_method(
    "adapter",
    Adapter,
    name="Adapter",
    t5_base_params=1_855_104,
)
register_method(
    "pfeiffer",
    PfeifferAdapter,
    name="Pfeiffer-Adapter",
    t5_base_params=951_360,
)
register_method(
    "adapterdrop",
    AdapterDrop,
    name="AdapterDrop",
    t5_base_params=1_101_984,
)
register_method(
    "adapter_lowrank",
    AdapterLowRank,
    name="Adapter-LowRank",
    t5_base_params=161_664,
)
