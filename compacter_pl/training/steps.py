"""The training and evaluation maths, written once: the LightningModule calls these (`bench` times its training
step through the module, its evaluation with the functions here).

- training: `training_loss` (teacher-forced cross-entropy, no key/value cache), `build_optimizer` (AdamW over the
  trainable parameters only), `linear_warmup_then_decay` (the schedule), `enable_gradient_checkpointing`;
- evaluation: `greedy_generate` (one greedy pass bounded by the task's longest target) and
  `label_log_likelihoods` (rank classification of a closed label set in one encoder pass).
"""

import torch
from transformers import T5ForConditionalGeneration
from transformers.masking_utils import create_causal_mask

IGNORE_INDEX = -100
RANK_LOGITS_BUDGET = 2**26  # logits held at once while ranking labels (256 MiB in float32): bounds the row chunks


def training_loss(
    model: T5ForConditionalGeneration, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """The mean token cross-entropy of the targets (labels padded with -100), teacher-forced. No key/value cache in
    training: nothing reads it."""
    return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False).loss


def linear_warmup_then_decay(warmup_steps: int, total_steps: int):
    """The multiplier of the learning rate: 0 -> 1 over the warm-up, then linearly down to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def fused_adamw_supported(parameters: list[torch.Tensor]) -> bool:
    """True when torch's fused AdamW kernel takes these parameters: all floating point, all on one CUDA or CPU
    device (torch >= 2.4 has the fused kernel on both; on CPU it is several times faster than foreach)."""
    devices = {p.device for p in parameters}
    return (
        len(devices) == 1
        and next(iter(devices)).type in ("cuda", "cpu")
        and all(torch.is_floating_point(p) for p in parameters)
    )


def build_optimizer(
    parameters, learning_rate: float, weight_decay: float = 0.0, eps: float = 1e-8
) -> torch.optim.AdamW:
    """AdamW (0.9, 0.999) over exactly `parameters` (the trainable ones: a frozen weight gets no state): the fused
    kernel where supported, else the multi-tensor (foreach) one."""
    parameters = list(parameters)
    kernel = {"fused": True} if parameters and fused_adamw_supported(parameters) else {"foreach": True}
    return torch.optim.AdamW(
        parameters, lr=learning_rate, betas=(0.9, 0.999), eps=eps, weight_decay=weight_decay, **kernel
    )


def enable_gradient_checkpointing(model: T5ForConditionalGeneration) -> None:
    """Recompute each block's activations in the backward instead of keeping them (less memory, about a third
    more compute). Non-reentrant checkpointing, so the blocks' trainable parameters get gradients although the
    base is frozen; with a frozen input embedding its output is also made to require grad, as reentrant
    checkpointing (and some user code) needs an input that does."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers' name since 5.x; the old one warns
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if not model.get_input_embeddings().weight.requires_grad:
        model.enable_input_require_grads()


def greedy_generate(
    model: T5ForConditionalGeneration, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int
) -> torch.Tensor:
    """One greedy generation pass, at most `max_new_tokens` new tokens (the task's longest target)."""
    return model.generate(
        input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1
    )


def padded_label_ids(label_ids: list[list[int]], device=None) -> torch.Tensor:
    """Token ids of the candidate targets as one (candidates, longest) tensor, padded with -100."""
    longest = max(len(ids) for ids in label_ids)
    padded = torch.full((len(label_ids), longest), IGNORE_INDEX, dtype=torch.long, device=device)
    for i, ids in enumerate(label_ids):
        padded[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return padded


def label_log_likelihoods(
    model: T5ForConditionalGeneration, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Sequence log-likelihood of every candidate target for every input: (batch, candidates).

    `labels` (candidates, T) are the candidates' token ids padded with -100. One encoder pass; then the decoder
    runs once per example on all candidates packed into one sequence of candidates x T tokens, each attending
    causally within its own candidate only (a block-diagonal causal mask). T5's decoder has relative positions, so
    every candidate sees exactly the positions it would see alone, and the encoder's keys and values are
    computed once per example, not once per candidate. Rows are processed in chunks that bound the logits held.
    """
    num_labels, length = labels.shape
    encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
    labels = labels.to(input_ids.device)
    packed = model._shift_right(labels).reshape(1, num_labels * length)
    block = torch.arange(num_labels * length, device=input_ids.device) // length

    def same_candidate(batch_idx, head_idx, q_idx, kv_idx):
        return block[q_idx] == block[kv_idx]

    hidden = encoder_outputs.last_hidden_state
    rows = max(1, RANK_LOGITS_BUDGET // (num_labels * length * model.config.vocab_size))
    scores = []
    for start in range(0, hidden.shape[0], rows):
        stop = min(start + rows, hidden.shape[0])
        decoder_input_ids = packed.expand(stop - start, -1)
        embeds = model.get_input_embeddings()(decoder_input_ids[:1])
        mask = create_causal_mask(
            config=model.decoder.config,
            inputs_embeds=embeds.expand(stop - start, -1, -1),
            attention_mask=None,
            cache=None,  # transformers' name since it deprecated past_key_values here (removed in 5.40)
            and_mask_function=same_candidate,
        )
        chunk = type(encoder_outputs)(last_hidden_state=hidden[start:stop])
        logits = model(
            encoder_outputs=chunk,
            attention_mask=attention_mask[start:stop],
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=mask,
            use_cache=False,
        ).logits
        log_probs = logits.float().log_softmax(-1).view(stop - start, num_labels, length, -1)
        index = labels.clamp_min(0).view(1, num_labels, length, 1).expand(stop - start, -1, -1, 1)
        token_log_probs = log_probs.gather(-1, index).squeeze(-1)
        scores.append((token_log_probs * (labels >= 0)).sum(-1))
    return torch.cat(scores)
