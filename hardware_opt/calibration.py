"""Calibration data for Puzzle and FFN Fusion: chat-rendered conversations packed into token blocks.

Source: the `train` split of a dataset version in the store, or, without one, tinyworld tasks
rendered with reasoning on and off (the same distribution the embedded teacher was trained on).
Blocks are fixed-length with no padding, so every layer sees a plain causal mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from curation.record import THINKING_OFF, THINKING_ON, Record


@dataclass
class CalibrationParams:
    data: str | None = None  # dataset version ref (DATASET/VERSION) in the store; None = tinyworld
    store: str | None = None  # store root; None = $THINKMIX_STORE or ./thinkmix-store
    seq_len: int = 128  # tokens per block
    train_blocks: int = 32  # blocks for BLD (the paper uses ~1B tokens; tiny models need few)
    eval_blocks: int = 16  # held-out blocks for scoring and quality reports
    seed: int = 0  # tinyworld seed; the held-out set is never seen by BLD

    def __post_init__(self):
        if self.seq_len < 8 or self.train_blocks < 1 or self.eval_blocks < 1:
            raise ValueError("seq_len >= 8, train_blocks >= 1 and eval_blocks >= 1 are required")


def record_messages(record: Record) -> list[dict[str, str]]:
    system = [{"role": "system", "content": record.system_prompt}] if record.system_prompt else []
    answer = [{"role": "assistant", "content": record.output}] if record.output else []
    return system + list(record.input) + answer


def tinyworld_conversations(count: int, seed: int) -> list[list[dict[str, str]]]:
    from curation import tinyworld

    per_family = max(1, count // len(tinyworld.FAMILIES) + 1)
    conversations = []
    for family in tinyworld.FAMILIES:
        for i, task in enumerate(tinyworld.generate(family, per_family, seed)):
            reasoning = i % 2 == 0
            conversations.append(
                [
                    {"role": "system", "content": THINKING_ON if reasoning else THINKING_OFF},
                    {"role": "user", "content": task.prompt},
                    {"role": "assistant", "content": tinyworld.format_output(task, reasoning)},
                ]
            )
    return conversations


def store_conversations(ref: str, store: str | None) -> list[list[dict[str, str]]]:
    from curation.store import Store

    records = Store.from_option(store).read_records(ref, "train")
    if not records:
        raise ValueError(f"{ref}: the train split is empty; pick a version with kept rows")
    return [record_messages(r) for r in records]


def pack(tokenizer, conversations, seq_len: int, blocks: int) -> torch.Tensor:
    """Concatenate rendered conversations and cut `blocks` rows of `seq_len` tokens."""
    ids: list[int] = []
    for messages in conversations:
        rendered = tokenizer.apply_chat_template(messages, tokenize=False)
        ids.extend(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        if len(ids) >= seq_len * blocks:
            break
    if len(ids) < seq_len * blocks:
        raise ValueError(
            f"calibration data has {len(ids)} tokens, {seq_len * blocks} needed; "
            "lower --seq-len / --blocks or use a bigger dataset version"
        )
    return torch.tensor(ids[: seq_len * blocks]).view(blocks, seq_len)


def load_blocks(tokenizer, params: CalibrationParams) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held_out) token blocks; the two never share a conversation."""
    total = params.train_blocks + params.eval_blocks
    if params.data is None:
        # tinyworld conversations are a few hundred tokens; over-generate, then split by seed.
        need = total * params.seq_len // 64 + 8
        train = tinyworld_conversations(need, params.seed)
        held = tinyworld_conversations(need, params.seed + 10_000)
    else:
        conversations = store_conversations(params.data, params.store)
        cut = max(1, len(conversations) * params.train_blocks // total)
        train, held = conversations[:cut], conversations[cut:]
        if not held:
            raise ValueError(f"{params.data}: too few rows to hold some out for scoring")
    return (
        pack(tokenizer, train, params.seq_len, params.train_blocks),
        pack(tokenizer, held, params.seq_len, params.eval_blocks),
    )
