"""The LightningModule: hosts T5, lets the injected method change it, trains on the target loss, and
evaluates by greedy generation (or by ranking the task's closed label set) scored with the task's torchmetrics.

Efficiency options live here too, because they wrap the whole model whatever the method: gradient checkpointing
(also with a frozen base), an opt-in `torch.compile` of the training forward, fused AdamW.
"""

import functools
import json
from collections.abc import Mapping
from typing import Literal

import lightning as L
import torch
from jsonargparse.typing import NonNegativeInt, PositiveFloat
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics import Metric
from transformers import PreTrainedTokenizerBase, T5ForConditionalGeneration

from compacter_pl.architectures import local_t5_config
from compacter_pl.errors import UserError
from compacter_pl.export import architecture_of, check_architecture
from compacter_pl.hub import load_t5, load_tokenizer
from compacter_pl.methods import Method, trainable_names, trainable_parameters
from compacter_pl.methods.full import FullFineTuning
from compacter_pl.metrics import build_metrics, update_metrics
from compacter_pl.tasks import get_task
from compacter_pl.training.steps import (
    build_optimizer,
    enable_gradient_checkpointing,
    greedy_generate,
    label_log_likelihoods,
    linear_warmup_then_decay,
    padded_label_ids,
    training_loss,
)

STAGES = ("val", "test")
EvalMode = Literal["generate", "rank"]


class TextToTextModule(L.LightningModule):
    """T5 fine-tuned text-to-text with a pluggable method.

    Args:
        model_name_or_path: Hub name (e.g. google-t5/t5-base) or local directory of a T5 model.
        method: The fine-tuning method (class_path and init_args), e.g. compacter_pl.methods.Compacter;
            `--model.method.help Compacter` (or any method's class name) lists its arguments.
        task: The task whose metrics and label set are used (linked to data.task by the CLI).
        learning_rate: Peak learning rate of AdamW.
        warmup_steps: Linear warm-up steps, after which the rate decays linearly to 0 at the last step.
        weight_decay: AdamW weight decay.
        adam_epsilon: AdamW epsilon.
        max_new_tokens: Bound on generated tokens; None uses the task's longest target.
        eval_mode: How validation, test and predict choose an output. "generate": one greedy generation pass per
            batch, bounded by max_new_tokens (an output outside the label set counts as wrong). "rank": score
            every target of the task's closed label set by its log-likelihood (one encoder pass, the decoder on
            all labels at once) and take the best, so the output is always a valid label. Free-text tasks
            (ReCoRD) have no label set and always generate.
        gradient_checkpointing: Recompute activations in the backward instead of storing them (less memory,
            about a third more compute); works with a frozen base.
        compile: Compile the training forward with torch.compile (opt-in: the first steps pay the compilation;
            evaluation and generation stay eager).
        base_architecture: Leave unset. Checkpoints record the base model's shape here, and `test --ckpt_path`
            passes it back, so a checkpoint loaded onto another architecture is refused.
    """

    def __init__(
        self,
        model_name_or_path: str = "google-t5/t5-base",
        method: Method | None = None,
        task: str = "rte",
        learning_rate: PositiveFloat = 3e-4,
        warmup_steps: NonNegativeInt = 0,
        weight_decay: float = 0.0,
        adam_epsilon: float = 1e-8,
        max_new_tokens: int | None = None,
        eval_mode: EvalMode = "generate",
        gradient_checkpointing: bool = False,
        compile: bool = False,
        base_architecture: dict | None = None,
    ) -> None:
        super().__init__()
        self.method = method or FullFineTuning()
        self.task = get_task(task)
        self.save_hyperparameters(ignore=["method"])
        self.hparams["method"] = self.method.config()
        config = local_t5_config(model_name_or_path)  # known offline: bad hyper-parameters fail before weights load
        if config is not None:
            self.method.check(config)
        self.model = self.load_model(model_name_or_path).train()  # from_pretrained returns eval mode (no dropout)
        if base_architecture is not None:
            check_architecture(base_architecture, self.model.config)
        self.hparams["base_architecture"] = architecture_of(self.model.config)
        self.method.check(self.model.config)
        self.method.apply(self.model)
        if gradient_checkpointing:
            enable_gradient_checkpointing(self.model)
        # A plain attribute, not a submodule: the state dict and checkpoints keep seeing `model` only.
        object.__setattr__(self, "_training_model", torch.compile(self.model) if compile else self.model)
        self.max_new_tokens = max_new_tokens
        if eval_mode not in ("generate", "rank"):
            raise UserError(f"eval_mode must be generate or rank, got {eval_mode!r}")
        if eval_mode == "rank" and self.task.targets is None:
            rank_zero_warn(
                f"eval_mode rank needs a closed label set; {self.task.name} is free text, so it generates instead"
            )
        self.eval_mode = "rank" if eval_mode == "rank" and self.task.targets is not None else "generate"
        # ModuleDicts (registered, so they move with the module), read as the mappings they are
        self.metrics: Mapping[str, Mapping[str, Metric]] = nn.ModuleDict(  # type: ignore[assignment]
            {stage: nn.ModuleDict(build_metrics(self.task)) for stage in STAGES}
        )
        # Checkpoints hold only what trains; loading them onto the freshly built model must not demand the rest.
        self.strict_loading = False

    def load_model(self, model_name_or_path: str) -> T5ForConditionalGeneration:
        """The T5 the module hosts, with its pretrained weights (`bench` builds it with random ones)."""
        return load_t5(model_name_or_path)

    @functools.cached_property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The model's tokenizer, loaded when evaluation first needs it (training reads token ids only)."""
        return load_tokenizer(self.hparams["model_name_or_path"])

    @functools.cached_property
    def _label_ids(self) -> torch.Tensor | None:
        """The token ids of the task's closed label set, padded (None for free text)."""
        if self.task.targets is None:
            return None
        return padded_label_ids([self.tokenizer(t)["input_ids"] for t in self.task.targets])

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        self.method.check(self.model.config, getattr(datamodule, "max_source_length", None))  # e.g. prompt length
        max_target_tokens = getattr(datamodule, "max_target_tokens", None)
        if self.max_new_tokens is None and max_target_tokens:
            self.max_new_tokens = max_target_tokens

    def forward(self, input_ids, attention_mask, labels):
        return training_loss(self._training_model, input_ids, attention_mask, labels)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self(batch["input_ids"], batch["attention_mask"], batch["labels"])
        if not torch.isfinite(loss):  # stop before the optimizer writes NaN into the weights
            # the newest checkpoint: last.ckpt's callback (no monitor: its "best" is the latest) before the best one
            # (ModelCheckpoints, which Lightning's annotations type as their base class Checkpoint)
            callbacks = sorted(self.trainer.checkpoint_callbacks, key=lambda c: c.monitor is not None)  # type: ignore[attr-defined]
            last_good = next((c.best_model_path for c in callbacks if c.best_model_path), "")  # type: ignore[attr-defined]
            raise UserError(
                f"the loss is {loss.item()} at step {self.global_step} (epoch {self.current_epoch}); "
                f"training stopped, the last good checkpoint is {last_good or 'none yet'} (untouched). "
                f"Lower the learning rate or use bf16-mixed/32-true precision, then resume from it"
            )
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def generate(self, batch: dict) -> list[str]:
        """Greedy decoding, bounded by the task's longest target."""
        generated = greedy_generate(self.model, batch["input_ids"], batch["attention_mask"], self.max_new_tokens or 16)
        return self.tokenizer.batch_decode(generated, skip_special_tokens=True)

    def rank(self, batch: dict) -> list[str]:
        """The most likely target of the task's label set for each input (always a valid label)."""
        targets, label_ids = self.task.targets, self._label_ids
        assert targets is not None and label_ids is not None  # eval_mode is rank only for a closed label set
        scores = label_log_likelihoods(self.model, batch["input_ids"], batch["attention_mask"], label_ids)
        return [targets[i] for i in scores.argmax(-1).tolist()]

    def outputs(self, batch: dict) -> list[str]:
        """The output text of each input, by the module's eval_mode."""
        return self.rank(batch) if self.eval_mode == "rank" else self.generate(batch)

    def _evaluate(self, batch: dict, stage: str) -> None:
        texts = self.outputs(batch)
        scored = self.task.score(texts, batch["label"], batch["group"], batch["answers"])
        metrics = self.metrics[stage]
        device = next(iter(metrics.values())).device if len(metrics) else self.device
        scored.__dict__.update({k: v.to(device) for k, v in scored.__dict__.items()})
        update_metrics(metrics, scored)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        """One prediction per input: its record's id (its `idx`, carried as JSON text), the label in the task's
        terms (None if the generation is not a valid label) and the generated (or, ranking, the chosen) text."""
        texts = self.outputs(batch)
        return [
            {"id": json.loads(i), "prediction": self.task.prediction(t), "generated": t}
            for i, t in zip(batch["id"], texts, strict=True)
        ]

    def _log_epoch_metrics(self, stage: str) -> float:
        values = {}
        for name, metric in self.metrics[stage].items():
            # A correlation of constant predictions is undefined (NaN): it counts as no correlation.
            values[name] = torch.nan_to_num(metric.compute().float(), nan=0.0)
            metric.reset()
        score = torch.stack(list(values.values())).mean()
        self.log_dict({f"{stage}/{name}": v for name, v in values.items()}, sync_dist=False)
        self.log(f"{stage}/score", score, prog_bar=True)
        return float(score)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def configure_optimizers(self):
        parameters = [p for _, p in trainable_parameters(self.model)]
        optimizer = build_optimizer(
            parameters, self.hparams.learning_rate, self.hparams.weight_decay, self.hparams.adam_epsilon
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = LambdaLR(optimizer, linear_warmup_then_decay(self.hparams.warmup_steps, total))
        # named train/lr: LearningRateMonitor logs it in the train group, beside the loss
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step", "name": "train/lr"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep only what trains: the frozen base model is never written."""
        keep = {f"model.{name}" for name in trainable_names(self.model)}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["torch_rng_state"] = torch.get_rng_state()  # dropout continues as if never interrupted

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        expected = {f"model.{name}" for name in trainable_names(self.model)}
        saved = {k for k in checkpoint["state_dict"] if k.startswith("model.")}
        if saved != expected:
            missing, unexpected = sorted(expected - saved), sorted(saved - expected)
            detail = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
            raise UserError(
                f"the checkpoint does not match this model and method ({detail}; "
                f"{len(missing)} missing, {len(unexpected)} unexpected): load it with the config "
                f"it was trained with"
            )
        saved = checkpoint.get("hyper_parameters", {}).get("method", {})
        if saved.get("class_path") == self.method.config()["class_path"]:
            recorded, current = saved.get("init_args", {}), self.method.init_args()
            for key, value in type(self.method).saved_init_args(recorded).items():
                if key not in recorded and key in current and current[key] != value:  # saved before `key` existed
                    raise UserError(
                        f"the checkpoint's method was saved before it recorded {key}, which then was "
                        f"{value!r}; this run has {current[key]!r}: pass "
                        f"--model.method.init_args.{key} {value}"
                    )
        if "torch_rng_state" in checkpoint and self._trainer is not None and self._trainer.state.fn == "fit":
            torch.set_rng_state(checkpoint["torch_rng_state"])
