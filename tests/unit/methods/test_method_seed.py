"""The run's seed reaches the methods' own randomness (issue 13): prompt tuning's initial vectors and sampled
vocabulary ids, Intrinsic-SAID's Fastfood projections. A sweep seeds each run through seed_everything, which
LightningCLI applies before it builds the model; a method's explicit `seed` wins; the seed used is what the
checkpoint and the export record, so they reload with the very same prompt and projections.

Runs are built in this process with the project's CLI (`build_cli(..., run=False)`), not in subprocesses.
"""

import json

import lightning as L
import pytest
import torch
import yaml

from compacter_pl.cli import build_cli
from compacter_pl.data import TextToTextDataModule
from compacter_pl.errors import UserError
from compacter_pl.export import apply_export, export_checkpoint, load_export, method_from_config, read_checkpoint
from compacter_pl.hub import load_t5
from compacter_pl.methods import IntrinsicSAID, PromptTuning
from compacter_pl.tools.sweep.sweep_file import load_sweep
from compacter_pl.training.module import TextToTextModule
from tests.helpers import DEMO_DATA, DEMO_MODEL, ROOT, quiet_trainer, tiny_batch

METHODS = {  # by registry key, as the sweep names methods
    "prompt_random": {"class_path": "compacter_pl.methods.PromptTuning", "init_args": {"num_tokens": 5}},
    "prompt_vocab": {
        "class_path": "compacter_pl.methods.PromptTuning",
        "init_args": {"num_tokens": 5, "init": "vocab", "init_vocab_size": 200},
    },
    "intrinsic_said": {"class_path": "compacter_pl.methods.IntrinsicSAID", "init_args": {"intrinsic_dim": 500}},
}


def local_args(tmp_path) -> list[str]:
    return [
        f"--data.data_dir={DEMO_DATA / 'rte'}",
        f"--data.cache_dir={tmp_path / 'cache'}",
        f"--model.model_name_or_path={DEMO_MODEL}",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
    ]


def built(tmp_path, *args: str, config=ROOT / "configs/demo.yaml"):
    """The run's LightningCLI, parsed, seeded and built as `cli.py fit` would, nothing run."""
    return build_cli(["--config", str(config), *args, *local_args(tmp_path)], run=False)


def start_of(model) -> torch.Tensor:
    """What the method drew at random: the initial prompt, or P_i z for a fixed z of every tensor i."""
    prompt = getattr(model.encoder, "prompt", None)
    if prompt is not None:
        return prompt.weight.detach().clone()
    state = model.intrinsic_said
    with torch.no_grad():
        state.z.copy_(torch.linspace(-1, 1, state.z.numel()))
        return torch.cat([state.project(i) for i in range(len(state.shapes))])


@pytest.fixture(scope="module")
def sweep_runs(tmp_path_factory):
    """The demo sweep's grid with the seeded methods, seeds 0 and 1: {(method, seed): (method seed, start)}."""
    root = tmp_path_factory.mktemp("seeds")
    spec = yaml.safe_load((ROOT / "configs/sweeps/demo.yaml").read_text())
    spec.update(
        base_config=str(ROOT / spec["base_config"]),
        methods=METHODS,
        sizes={100: {}},
        seeds=[0, 1],
        out_dir=str(root / "out"),
    )
    path = root / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    sweep = load_sweep(path)
    results = {}
    for run in sweep.runs():
        cli = built(root, *run.args(), config=sweep.base_config)  # as the sweep runs it
        module = cli.model
        assert module.hparams["method"]["init_args"]["seed"] == module.method.seed  # what the checkpoint records
        results[(run.method.name, run.seed)] = (module.method.seed, start_of(module.model))
    return results, root


@pytest.mark.parametrize("method", list(METHODS))
def test_each_sweep_seed_draws_its_own_prompt_and_projection(sweep_runs, method):
    results, _ = sweep_runs
    (seed_0, start_0), (seed_1, start_1) = results[(method, 0)], results[(method, 1)]
    assert (seed_0, seed_1) == (0, 1)
    assert not torch.equal(start_0, start_1)


@pytest.mark.parametrize("method", list(METHODS))
def test_the_same_seed_draws_the_same_again(sweep_runs, method):
    results, root = sweep_runs
    cli = built(root, "--seed_everything=1", f"--model.method={json.dumps(METHODS[method])}")
    assert cli.model.method.seed == 1
    assert torch.equal(start_of(cli.model.model), results[(method, 1)][1])


def test_an_explicit_method_seed_wins_over_the_run_seed(tmp_path):
    starts = []
    for run_seed in (0, 1):
        method = {**METHODS["prompt_random"], "init_args": {"num_tokens": 5, "seed": 5}}
        cli = built(tmp_path, f"--seed_everything={run_seed}", f"--model.method={json.dumps(method)}")
        assert cli.model.method.seed == 5 and cli.model.hparams["method"]["init_args"]["seed"] == 5
        starts.append(start_of(cli.model.model))
    assert torch.equal(*starts)


def test_a_plain_fit_seeds_the_method_with_seed_everything(tmp_path):
    method = f"--model.method={json.dumps(METHODS['intrinsic_said'])}"
    assert built(tmp_path, method).model.method.seed == 42  # configs/demo.yaml: seed_everything 42
    cli = built(tmp_path, method, "--seed_everything=true")  # a random seed, chosen by Lightning
    assert cli.model.method.seed == cli.config.seed_everything


def test_the_seed_is_the_run_seed_folded_into_the_seeds_range():
    torch.manual_seed(2**40 + 3)  # torch takes 64-bit seeds; seed_everything's range is [0, 2^32)
    assert IntrinsicSAID(intrinsic_dim=500).seed == 3 and PromptTuning().seed == 3
    assert PromptTuning(seed=0).seed == 0  # what old exports and configs say
    for bad in (-1, 2**32, 1.5, True):
        for make in (IntrinsicSAID, PromptTuning):
            with pytest.raises(UserError, match=r"seed=.* must be an integer in \[0, 4294967295\]"):
                make(seed=bad)


def test_said_projections_build_for_the_largest_seed():
    model = load_t5(str(DEMO_MODEL))
    IntrinsicSAID(intrinsic_dim=500, seed=2**32 - 1).apply(model)
    assert model.intrinsic_said.buffer_bytes() > 0  # every per-tensor generator seed was accepted


def fit_two_steps(tmp_path, method: dict) -> tuple[TextToTextModule, str]:
    L.seed_everything(7)
    module = TextToTextModule(str(DEMO_MODEL), method=method_from_config(method), task="rte", learning_rate=0.1)
    assert module.method.seed == 7
    dm = TextToTextDataModule(
        "rte", str(DEMO_MODEL), data_dir=str(DEMO_DATA / "rte"), batch_size=8, cache_dir=str(tmp_path / "cache")
    )
    trainer = quiet_trainer(max_steps=2, limit_val_batches=0, enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(module, dm)
    ckpt = tmp_path / "fit.ckpt"
    trainer.save_checkpoint(ckpt)
    return module, str(ckpt)


def logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**batch).logits


@pytest.mark.parametrize("method", ["prompt_random", "intrinsic_said"])
def test_checkpoint_and_export_reload_with_the_recorded_seed(tmp_path, method):
    module, ckpt = fit_two_steps(tmp_path, METHODS[method])
    assert read_checkpoint(ckpt)["hyper_parameters"]["method"]["init_args"]["seed"] == 7
    batch = tiny_batch()
    expected = logits(module.model, batch)

    L.seed_everything(123)  # another run seed: the reloads must not take it
    base = load_t5(str(DEMO_MODEL))
    apply_export(base, load_export(export_checkpoint(ckpt, tmp_path / "export")))
    assert torch.equal(logits(base, batch), expected)

    # `cli.py test --ckpt_path` with the run's own config (method seed null) and another seed_everything.
    cli = build_cli(
        [
            "test",
            "--config",
            str(ROOT / "configs/demo.yaml"),
            "--seed_everything=123",
            f"--model.method={json.dumps(METHODS[method])}",
            "--ckpt_path",
            ckpt,
            "--trainer.limit_test_batches=1",
            "--data.eval_batch_size=2",
            *local_args(tmp_path),
        ]
    )
    assert cli.model.method.seed == 7
    assert torch.equal(logits(cli.model.model, batch), expected)


def test_said_saved_before_projection_version_rebuilds_or_is_refused(tmp_path):
    # Checkpoints and exports from before projection_version was recorded were drawn from stream 1.
    said = METHODS["intrinsic_said"]
    method = {**said, "init_args": {**said["init_args"], "projection_version": 1}}
    module, ckpt = fit_two_steps(tmp_path, method)
    batch = tiny_batch()
    expected = logits(module.model, batch)
    checkpoint = torch.load(ckpt, weights_only=True)
    del checkpoint["hyper_parameters"]["method"]["init_args"]["projection_version"]
    old_ckpt = tmp_path / "old.ckpt"
    torch.save(checkpoint, old_ckpt)

    base = load_t5(str(DEMO_MODEL))
    apply_export(base, load_export(export_checkpoint(old_ckpt, tmp_path / "export")))  # rebuilt with stream 1
    assert base.intrinsic_said.projection_version == 1
    assert torch.equal(logits(base, batch), expected)

    args = [
        "test",
        "--config",
        str(ROOT / "configs/demo.yaml"),
        f"--model.method={json.dumps(METHODS['intrinsic_said'])}",
        "--ckpt_path",
        str(old_ckpt),
        "--trainer.limit_test_batches=1",
        "--data.eval_batch_size=2",
        *local_args(tmp_path),
    ]
    with pytest.raises(UserError, match="saved before it recorded projection_version.*projection_version 1"):
        build_cli(args)
    cli = build_cli([*args, "--model.method.init_args.projection_version=1"])
    assert torch.equal(logits(cli.model.model, batch), expected)
