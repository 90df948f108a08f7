"""PHM-Adapter, Compacter and Compacter++: adapters whose projections are (low-rank) PHM layers.

Flow: CLI -> LightningModule -> method (this file; placement and training in `adapters.AdapterMethod`) ->
layers (`compacter_pl.layers.phm`).

- PHM-Adapter: `W = sum_i A_i (x) B_i`, every layer with its own A (N(0, 0.01^2)) and B.
- Compacter: `W = sum_i A_i (x) (s_i t_i)`, s and t rank r, and ONE A for the whole model
  (N(0, 1e-4^2)): a `SharedPHMRules` attached once as `model.shared_phm_rules`, which every LPHM layer reads
  (encoder and decoder, down and up), so its gradient sums the contributions of all of them.
- Compacter++: Compacter with adapters after the feed-forward only.

B, s and t start as in the authors' code: glorot-uniform, Xavier uniform with gain sqrt(2) on each 2-D slice
B_i, s_i, t_i (`compacter_pl.layers.inits`); biases zero; the A's std (0.01, 1e-4) are the authors' too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from jsonargparse.typing import PositiveInt
from torch import nn
from transformers import T5ForConditionalGeneration

from compacter_pl.errors import UserError
from compacter_pl.layers import LowRankPHMLinear, PHMLinear, SharedPHMRules
from compacter_pl.layers.inits import GLOROT_INITS
from compacter_pl.layers.phm import LPHM_MODES
from compacter_pl.methods.adapters import AdapterMethod, Sublayer, WeightInit, positive_int, weight_init
from compacter_pl.methods.registry import register_method

if TYPE_CHECKING:  # a Literal built at run time: a plain string to a type checker
    LPHMForm = str
else:
    LPHMForm = Literal[LPHM_MODES]
SHARED_RULES = "shared_phm_rules"  # the attribute of the model that holds Compacter's shared A
PHM_A_INIT_STD = 0.01  # PHM-Adapter's per-layer A (the authors' code)
SHARED_A_INIT_STD = 1e-4  # Compacter's shared A (the authors' code)


def _adapterhub_init(fields: Mapping) -> dict:
    """The init of AdapterHub's PHM weights (`hypercomplex_nonlinearity`) as ours, where we have it (it only says
    how training started)."""
    init = fields["hypercomplex_nonlinearity"]
    return {"init": init} if init in GLOROT_INITS else {}


def _compacter_arguments(fields: Mapping, sublayers: list[str]) -> dict | None:
    """Compacter's arguments for an AdapterHub config of shared A and factored weights (its `CompacterConfig`)."""
    if not (fields["phm_layer"] and fields["shared_phm_rule"] and fields["factorized_phm_W"]):
        return None
    return {"n": fields["phm_dim"], "rank": fields["phm_rank"], "sublayers": sublayers, **_adapterhub_init(fields)}


class PHMAdapter(AdapterMethod):
    """PHM-Adapter: Houlsby adapters with PHM projections, each layer with its own A.

    T5-base, n 12, d 24: 398,976 trainable (with the layer norms). Each B_i (64, 2) of a down-projection, (2, 64)
    of an up-projection, starts glorot-uniform with gain sqrt(2) (bound 0.426), each A ~ N(0, 0.01^2), biases zero.
    Its other arguments are those of every adapter method (`AdapterMethod`).

    Args:
        n: The number of Kronecker products; must divide d_model and the bottleneck (the paper searched 4, 8, 12).
        init: How each B_i starts: glorot-uniform (the authors' default: Xavier uniform with gain sqrt(2)) or
            glorot-normal (Xavier normal, gain sqrt(2)), each B_i as its own matrix; A and the biases as always.
    """

    def __init__(self, n: PositiveInt = 12, init: WeightInit = "glorot-uniform", **kwargs) -> None:
        super().__init__(**kwargs)
        self.n = positive_int("n", n)
        self.init = weight_init(init)

    @property
    def phm_n(self) -> int:
        return self.n

    def projection(self, in_features: int, out_features: int) -> nn.Module:
        return PHMLinear(in_features, out_features, self.n, a_init_std=PHM_A_INIT_STD, w_init=self.init)

    adapterhub_names = {"A": "phm_rule", "B": "W", "bias": "b"}

    def adapterhub_fields(self) -> dict:
        return {
            "phm_layer": True,
            "phm_dim": self.n,
            "shared_phm_rule": False,
            "factorized_phm_W": False,
            "hypercomplex_nonlinearity": self.init,
        }

    @classmethod
    def adapterhub_arguments(cls, fields: Mapping, sublayers: list[str]) -> dict | None:
        """AdapterHub's PHM layers with an A of their own and unfactored weights."""
        if not fields["phm_layer"] or fields["shared_phm_rule"] or fields["factorized_phm_W"]:
            return None
        return {"n": fields["phm_dim"], "sublayers": sublayers, **_adapterhub_init(fields)}


class Compacter(AdapterMethod):
    """Compacter: Houlsby adapters with low-rank PHM (LPHM) projections and one A shared by all of them.

    T5-base, n 4, r 1, d 24: 161,728 trainable (with the layer norms). The paper uses n 4 on GLUE (Table 1)
    and n 12 on SuperGLUE (Table 2). s_i and t_i start glorot-uniform with gain sqrt(2), each slice as its own
    matrix (n 4, d 24: bound 0.249 for s_i (192, 1) and 1.309 for t_i (1, 6) of a down-projection, the other
    way round for an up-projection); the shared A ~ N(0, 1e-4^2); biases zero. Its other arguments are those of
    every adapter method (`AdapterMethod`).

    Args:
        n: The number of Kronecker products; must divide d_model and the bottleneck (the paper searched 4, 8, 12).
        rank: The rank r of every s_i t_i (1 in the paper).
        lphm_form: How an LPHM layer computes x W: "factored" never builds W, "materialized" builds it,
            "auto" picks whichever needs fewer multiply-adds for the batch at hand (same values either way).
        init: How each s_i and t_i starts: glorot-uniform (the authors' default: Xavier uniform with gain
            sqrt(2)) or glorot-normal (Xavier normal, gain sqrt(2)), each slice as its own matrix; the shared A
            and the biases as always.
    """

    def __init__(
        self,
        n: PositiveInt = 4,
        rank: PositiveInt = 1,
        lphm_form: LPHMForm = "auto",
        init: WeightInit = "glorot-uniform",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.n = positive_int("n", n)
        self.rank = positive_int("rank", rank)
        if lphm_form not in LPHM_MODES:
            raise UserError(f"unknown lphm_form {lphm_form!r}; choose one of {', '.join(LPHM_MODES)}")
        self.lphm_form = lphm_form
        self.init = weight_init(init)
        self._rules: SharedPHMRules | None = None

    @property
    def phm_n(self) -> int:
        return self.n

    def prepare(self, model: T5ForConditionalGeneration) -> None:
        if hasattr(model, SHARED_RULES):
            raise UserError(f"the model already has {SHARED_RULES}: apply a Compacter method once")
        reference = model.get_input_embeddings().weight
        self._rules = SharedPHMRules(self.n, std=SHARED_A_INIT_STD).to(device=reference.device, dtype=reference.dtype)
        model.add_module(SHARED_RULES, self._rules)

    def projection(self, in_features: int, out_features: int) -> nn.Module:
        return LowRankPHMLinear(
            in_features, out_features, self.n, self.rank, shared_A=self._rules, mode=self.lphm_form, w_init=self.init
        )

    def adapter_parameters(self, model: T5ForConditionalGeneration) -> list[nn.Parameter]:
        return [*super().adapter_parameters(model), getattr(model, SHARED_RULES).A]

    adapterhub_names = {"s": "W_left", "t": "W_right", "bias": "b"}
    adapterhub_shared = {f"{SHARED_RULES}.A": "phm_rule"}

    def adapterhub_fields(self) -> dict:
        return {
            "phm_layer": True,
            "phm_dim": self.n,
            "phm_rank": self.rank,
            "shared_phm_rule": True,
            "factorized_phm_W": True,
            "hypercomplex_nonlinearity": self.init,
        }

    @classmethod
    def adapterhub_arguments(cls, fields: Mapping, sublayers: list[str]) -> dict | None:
        """AdapterHub's Compacter (`CompacterConfig`: after both sublayers), or one after self-attention only."""
        return None if sublayers == ["feed_forward"] else _compacter_arguments(fields, sublayers)


class CompacterPlusPlus(Compacter):
    """Compacter++: Compacter with adapters after the feed-forward sublayer only.

    T5-base, n 4, r 1, d 24: 104,704 trainable (with the layer norms). Its other arguments are Compacter's.

    Args:
        sublayers: Where adapters go in every block (feed_forward only, which is what makes it Compacter++).
    """

    def __init__(self, sublayers: Sequence[Sublayer] = ("feed_forward",), **kwargs) -> None:
        super().__init__(sublayers=sublayers, **kwargs)

    @classmethod
    def adapterhub_arguments(cls, fields: Mapping, sublayers: list[str]) -> dict | None:
        """AdapterHub's Compacter++ (`CompacterPlusPlusConfig`)."""
        return _compacter_arguments(fields, sublayers) if sublayers == ["feed_forward"] else None


register_method(
    "phm_adapter",
    PHMAdapter,
    name="PHM-Adapter",
    t5_base_params=398_976,
)
register_method(
    "compacter",
    Compacter,
    name="Compacter",
    t5_base_params=161_728,
)
register_method(
    "compacter++",
    CompacterPlusPlus,
    name="Compacter++",
    t5_base_params=104_704,
)
