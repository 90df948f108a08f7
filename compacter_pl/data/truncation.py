"""Cutting a tokenized source to `max_source_length` tokens, its EOS included: the data option `truncation`.

`end`, the paper's: the tokenizer cuts the end of the source. A long first field can push the later ones out
entirely (at 128 T5 tokens RTE loses its whole hypothesis in about one validation example in ten).

`fields`: a source that fits is left as it is (token for token what `end` gives). A longer one is tokenized
whole once, each token is assigned by its character offsets to the field value it lies in (the rest, the
`name: ` prefixes and joining spaces, and special tokens such as EOS, is always kept), and tokens are dropped
from the end of the longest value, one at a time, until the source fits ("water-filling"; of equally long values
the later one gives up a token first). Every value then keeps at least one token, in the task's field order,
and the kept tokens are exactly those of the whole source. When the prefixes and EOS leave fewer tokens than
there are (non-empty) values, the source is cut at the end as in `end` mode. Needs a fast tokenizer (offsets).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast, get_args

from compacter_pl.errors import UserError

Truncation = Literal["end", "fields"]
TRUNCATION_MODES: tuple[str, ...] = get_args(Truncation)


@dataclass(frozen=True)
class Cut:
    """One source after truncation: its token ids, and per field value the tokens it had and those kept."""

    input_ids: list[int]
    value_tokens: tuple[int, ...]  # tokens of each value in the whole source
    kept: tuple[int, ...]  # tokens of each value left in input_ids
    truncated: bool  # the whole source was longer than max_source_length
    fell_back: bool = False  # fields mode: too little room for a token of every value, cut at the end

    @property
    def lost(self) -> tuple[int, ...]:
        """The fields whose value lost every token (a value that had none is not lost)."""
        return tuple(
            i for i, (had, kept) in enumerate(zip(self.value_tokens, self.kept, strict=True)) if had and not kept
        )


def check_truncation(mode: str) -> None:
    if mode not in TRUNCATION_MODES:
        raise UserError(f"truncation must be one of {', '.join(TRUNCATION_MODES)}; got {mode!r}")


def require_offsets(
    tokenizer, needed_by: str = "data.truncation fields", instead: str = "; use --data.truncation end"
) -> None:
    """A UserError unless the tokenizer gives character offsets (a fast tokenizer; a slow one ignores them)."""
    if not getattr(tokenizer, "is_fast", False):
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise UserError(
            f"{needed_by} needs a fast tokenizer (one with character offsets, from a tokenizer.json); "
            f"{name} is a slow {type(tokenizer).__name__}{instead}"
        )


def water_fill(lengths: Sequence[int], available: int) -> list[int] | None:
    """Tokens each value keeps when `available` tokens are left for the values: trim the longest value first
    (the later of equals), one token at a time. None when that would empty a non-empty value."""
    if sum(lengths) <= available:
        return list(lengths)
    if available < sum(n > 0 for n in lengths):
        return None
    low, high = 0, max(lengths)  # the highest level L with sum(min(n, L)) <= available
    while low < high:
        level = (low + high + 1) // 2
        if sum(min(n, level) for n in lengths) <= available:
            low = level
        else:
            high = level - 1
    kept = [min(n, low) for n in lengths]
    spare = available - sum(kept)  # fewer than the values above the level: the earlier of them keep one more
    for i, n in enumerate(lengths):
        if spare and n > low:
            kept[i] += 1
            spare -= 1
    return kept


def value_of_tokens(
    source: str, spans: Sequence[Sequence[int]], offsets: Sequence[Sequence[int]], special: Sequence[int]
) -> list[int | None]:
    """The field value each token belongs to, or None for the template (prefixes, joining spaces) and special
    tokens. A token that also covers template text other than white space (none do with T5's tokenizer, whose
    tokens start at a space) counts as template, so a `name:` prefix is never cut."""
    value_at: list[int | None] = [None] * (len(source) + 1)  # the value each character lies in
    for i, (value_start, value_end) in enumerate(spans):
        value_at[value_start:value_end] = [i] * (value_end - value_start)
    owners: list[int | None] = []
    for (start, end), is_special in zip(offsets, special, strict=True):
        if is_special:
            owners.append(None)
        elif end <= start:  # a token without characters: the value at its position
            owners.append(value_at[start])
        else:
            first, last = value_at[start], value_at[end - 1]
            if first is not None and first == last:
                owners.append(first)  # inside one value (nearly every value token)
            else:  # straddles a value's edge: a value token only if the rest of it is white space
                owner = first if first is not None else last
                value_start, value_end = spans[owner] if owner is not None else (start, start)
                outside = source[start : max(start, value_start)] + source[min(end, value_end) : end]
                owners.append(None if owner is None or outside.strip() else owner)
    return owners


def _counts(owners: Sequence[int | None], n: int) -> tuple[int, ...]:
    counts = [0] * n
    for owner in owners:
        if owner is not None:
            counts[owner] += 1
    return tuple(counts)


def encode_whole(tokenizer, sources: list[str], **kwargs) -> dict:
    """The sources tokenized with the offsets and special-token marks `cut_sources` reads (untruncated unless
    `kwargs` say otherwise)."""
    return tokenizer(sources, return_offsets_mapping=True, return_special_tokens_mask=True, **kwargs)


def cut_sources(
    tokenizer,
    sources: Sequence[str],
    spans: Sequence[Sequence[Sequence[int]]],
    max_length: int,
    mode: str,
    whole: dict | None = None,
) -> list[Cut]:
    """Every source cut to `max_length` tokens (EOS included) the way `mode` says, with what each value kept.
    `whole`: the sources' `encode_whole`, when the caller cuts them more than one way."""
    check_truncation(mode)
    require_offsets(tokenizer)
    sources = list(sources)
    if not sources:
        return []
    whole = whole if whole is not None else encode_whole(tokenizer, sources)
    cuts: list[Cut | None] = []
    at_the_end = []  # sources end mode cuts: all too long ones in end mode, the fall-backs in fields mode
    for k, (source, value_spans) in enumerate(zip(sources, spans, strict=True)):
        ids = whole["input_ids"][k]
        owners = value_of_tokens(source, value_spans, whole["offset_mapping"][k], whole["special_tokens_mask"][k])
        lengths = _counts(owners, len(value_spans))
        if len(ids) <= max_length:
            cuts.append(Cut(list(ids), lengths, lengths, truncated=False))
            continue
        kept = water_fill(lengths, max_length - (len(ids) - sum(lengths))) if mode == "fields" else None
        if kept is None:
            cuts.append(None)
            at_the_end.append((k, lengths))
            continue
        seen = [0] * len(lengths)
        kept_ids = []
        for token, owner in zip(ids, owners, strict=True):
            if owner is not None:
                seen[owner] += 1
                if seen[owner] > kept[owner]:
                    continue
            kept_ids.append(token)
        cuts.append(Cut(kept_ids, lengths, tuple(kept), truncated=True))
    if at_the_end:
        ended = encode_whole(tokenizer, [sources[k] for k, _ in at_the_end], max_length=max_length, truncation=True)
        for j, (k, lengths) in enumerate(at_the_end):
            owners = value_of_tokens(sources[k], spans[k], ended["offset_mapping"][j], ended["special_tokens_mask"][j])
            cuts[k] = Cut(
                list(ended["input_ids"][j]),
                lengths,
                _counts(owners, len(lengths)),
                truncated=True,
                fell_back=mode == "fields",
            )
    return cast("list[Cut]", cuts)  # every None was filled in above


def source_ids(
    tokenizer, sources: Sequence[str], spans: Sequence[Sequence[Sequence[int]]], max_length: int, mode: str
) -> list[list[int]]:
    """The token ids of sources cut to `max_length` (EOS included). `end` is one tokenizer call with
    truncation=True, as before the option existed (any tokenizer); `fields` needs a fast one."""
    if mode == "end":
        sources = list(sources)
        return tokenizer(sources, max_length=max_length, truncation=True)["input_ids"] if sources else []
    return [cut.input_ids for cut in cut_sources(tokenizer, sources, spans, max_length, mode)]
