"""Intrinsic-SAID (Aghajanyan et al. 2021): every weight tensor moves along a fixed random projection of one
small shared vector. theta_i = theta_i0 + lambda_i P_i z, with z of size d' - m and one lambda per tensor
(m of them): exactly d' numbers train, d' = 20,000 by default.

Flow: CLI -> LightningModule -> method (this file) -> layers (`IntrinsicSAIDState` over `FastfoodProjection`).

How, without forking T5: each weight becomes a `torch.nn.utils.parametrize` parametrization. The pretrained
tensor stays where parametrize keeps it (`...parametrizations.weight.original`), frozen and bit-identical;
`module.weight` is computed as `original + lambda_i P_i z` whenever T5 reads it, in training, evaluation and
`generate` alike. A tied tensor (T5's embedding and output layer) is one tensor with one lambda; every module
that holds it gets the same parametrization.

P_i, its memory and its speed: `compacter_pl.layers.intrinsic_said`. The paper measures Intrinsic-SAID as the
slowest method (+242% time).
"""

from __future__ import annotations

import torch
from jsonargparse.typing import PositiveInt
from torch import nn
from torch.nn.utils import parametrize
from transformers import T5Config, T5ForConditionalGeneration

from compacter_pl.errors import UserError
from compacter_pl.layers.fastfood import CURRENT_PROJECTION_VERSION, PROJECTION_VERSIONS
from compacter_pl.layers.intrinsic_said import IntrinsicSAIDState, SAIDWeight
from compacter_pl.methods.base import Method, freeze, option, resolve_seed
from compacter_pl.methods.registry import register_method

STATE = "intrinsic_said"  # the attribute of the model that holds z and the lambdas


class _ForwardBoundary:
    """Top-level forward hooks: mark where one forward of the model begins and ends (for the delta cache)."""

    def __init__(self, state: IntrinsicSAIDState, begin: bool):
        self.state, self.begin = state, begin

    def __call__(self, module, args, *output):
        if self.begin:
            self.state.begin_forward()
        else:
            self.state.end_forward()


def _holders(model: nn.Module) -> list[tuple[str, nn.Parameter, list[tuple[nn.Module, str]]]]:
    """Every parameter of the model once (by its first name), with each (module, attribute) that holds it:
    several for a tied tensor."""
    holders: dict[int, list] = {}
    for _, module in model.named_modules(remove_duplicate=False):
        for name, parameter in module._parameters.items():
            if parameter is not None:
                holders.setdefault(id(parameter), []).append((module, name))
    return [(name, p, holders[id(p)]) for name, p in model.named_parameters()]


def count_weight_tensors(config: T5Config) -> int:
    """m for a model of this config built by transformers (a tied embedding and output layer count once)."""
    with torch.device("meta"):
        return sum(1 for _ in T5ForConditionalGeneration(config).parameters())


class IntrinsicSAID(Method):
    """Intrinsic-SAID: theta_i = theta_i0 + lambda_i P_i z with Fastfood projections P_i, one lambda per weight
    tensor (m of them) and z of size d' - m; exactly d' numbers train (20,000 by default).

    Args:
        intrinsic_dim: d', the number of trainable numbers (the paper: 20,000; 1,400 in its efficiency table).
        seed: The seed of the random projections (they are rebuilt from it, never saved), in [0, 2^32); null
            (the default) takes the run's seed (seed_everything; a sweep sets one per run). Checkpoints and
            exports record the seed used. With seed_everything false each process draws its own: under DDP
            set a seed, or the processes would project along different directions.
        share_random_factors: Tensors of the same size share the Fastfood factors S, G, Pi and differ by their
            own random signs on z: about 0.4 GB of buffers on T5-base instead of about 3 GB for a full
            transform per tensor.
        projection_version: The random stream the projections are drawn from: 2 (the default; t5-base's build
            in seconds) or 1 (the original stream, bit-identical, whose draws took about 47 s on t5-base).
            Checkpoints and exports record it; those saved before it was recorded used 1: an export is rebuilt
            with 1, and `test --ckpt_path` of such a checkpoint is refused unless this is 1.
    """

    unmixable_reason = "every weight of the model moves with the task's vector (theta_0 + lambda P z)"

    def __init__(
        self,
        intrinsic_dim: PositiveInt = 20_000,
        seed: int | None = None,
        share_random_factors: bool = True,
        projection_version: int = CURRENT_PROJECTION_VERSION,
    ) -> None:
        if isinstance(intrinsic_dim, bool) or not isinstance(intrinsic_dim, int) or intrinsic_dim < 1:
            raise UserError(f"intrinsic_dim={intrinsic_dim!r} must be a positive integer")
        if isinstance(projection_version, bool) or projection_version not in PROJECTION_VERSIONS:
            raise UserError(
                f"projection_version={projection_version!r} must be one of {', '.join(map(str, PROJECTION_VERSIONS))}"
            )
        self.intrinsic_dim = int(intrinsic_dim)
        self.seed = resolve_seed(seed)
        self.share_random_factors = bool(share_random_factors)
        self.projection_version = int(projection_version)

    @classmethod
    def saved_init_args(cls, init_args: dict) -> dict:
        # Saved before projection_version was recorded: the projections were drawn from the original stream.
        return {"projection_version": 1, **init_args}

    def _check_dim(self, tensors: int) -> None:
        if self.intrinsic_dim <= tensors:
            raise UserError(
                f"intrinsic_dim={self.intrinsic_dim} must exceed the number of weight tensors "
                f"({tensors}, one lambda each): raise {option('intrinsic_dim')}"
            )

    def check(self, config: T5Config, max_source_length: int | None = None) -> None:
        self._check_dim(count_weight_tensors(config))

    def apply(self, model: T5ForConditionalGeneration) -> None:
        freeze(model)
        tensors = _holders(model)
        self._check_dim(len(tensors))
        reference = tensors[0][1]
        state = IntrinsicSAIDState(
            [n for n, _, _ in tensors],
            [p.shape for _, p, _ in tensors],
            self.intrinsic_dim,
            self.seed,
            self.share_random_factors,
            reference.device,
            torch.float32,
            self.projection_version,
        )
        for index, (_, _, holders) in enumerate(tensors):
            weight = SAIDWeight(state, index)
            for module, name in holders:
                # unsafe: no trial forward now (it would build the projections); shapes match by construction
                parametrize.register_parametrization(module, name, weight, unsafe=True)
        model.add_module(STATE, state)
        model.register_forward_pre_hook(_ForwardBoundary(state, begin=True))
        model.register_forward_hook(_ForwardBoundary(state, begin=False))


register_method(
    "intrinsic_said",
    IntrinsicSAID,
    name="Intrinsic-SAID",
    t5_base_params=20_000,
)
