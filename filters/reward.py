"""`filters.reward_model`: reward-model rejection sampling, best k of each prompt's samples.

arXiv 2505.00949 §3.1.4 (general chat): several responses per prompt, filtered with a reward
model (Llama-3.1-Nemotron-70B-Reward). Two scorers, one interface (`score(conversations)`):

- `model: DIR`: a local `AutoModelForSequenceClassification` directory with one label (what
  trl's `RewardTrainer` writes), run in-process; the conversation is rendered with the
  tokenizer's chat template, as `RewardTrainer` does when it trains;
- `url: http://...`: a reward endpoint. Each conversation is one JSON POST
  `{"model": served_model, "messages": [...]}`; the reply carries the score as `score`,
  `reward`, `scores[0]` or `data[0].score`. 429/5xx/connection errors are retried with
  backoff; after the last retry the row goes to the failed split.

    stages:
      - {type: generators.multi_sample, teacher: chat, samples_off: 4}
      - {type: filters.reward_model, url: "http://127.0.0.1:8001/v1/reward", top_k: 1}

Reward scores are not cached: a local model is deterministic and cheap next to generation.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from curation.record import Message, Record
from curation.registry import register_stage
from curation.stage import Drop, GroupFilter, StageResult
from filters.answers import strip_think

if TYPE_CHECKING:
    from curation.context import RunContext

Score = float | str  # a reward, or why there is none


class LocalRewardModel:
    """A sequence-classification model directory with one output: the reward."""

    def __init__(self, path: Path, batch_size: int = 16, max_length: int = 2048):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
        if self.model.config.num_labels != 1:
            raise ValueError(
                f"filters.reward_model: {path} has {self.model.config.num_labels} labels; a reward "
                "model has one (train it with trl's RewardTrainer or num_labels=1)"
            )
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.eval()
        self.batch_size, self.max_length = batch_size, max_length

    def render(self, conversation: list[Message]) -> str:
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(conversation, tokenize=False)
        return "\n\n".join(m["content"] for m in conversation)

    def score_sync(self, conversations: list[list[Message]]) -> list[Score]:
        import torch

        texts = [self.render(c) for c in conversations]
        scores: list[Score] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    add_special_tokens=not self.tokenizer.chat_template,
                    return_tensors="pt",
                )
                logits = self.model(**batch).logits[:, 0]
                scores.extend(float(x) for x in logits)
        return scores

    async def score(self, conversations: list[list[Message]]) -> list[Score]:
        return await asyncio.to_thread(self.score_sync, conversations)


class HttpRewardModel:
    """A reward endpoint: one JSON POST per conversation, bounded concurrency, retries."""

    RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})

    def __init__(
        self,
        url: str,
        model: str = "",
        api_key_env: str = "",
        timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_concurrency: int = 8,
    ):
        self.url, self.model, self.timeout_s = url, model, timeout_s
        self.retries, self.backoff_s = retries, backoff_s
        self.headers = {"Content-Type": "application/json"}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(
                    f"filters.reward_model: api_key_env names ${api_key_env}, which is not set"
                )
            self.headers["Authorization"] = f"Bearer {key}"
        self.max_concurrency = max_concurrency

    def _post(self, conversation: list[Message]) -> Score:
        body = json.dumps({"model": self.model, "messages": conversation}).encode("utf-8")
        request = urllib.request.Request(self.url, body, self.headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
            return parse_reward_reply(json.loads(response.read()))

    async def _one(self, conversation: list[Message], limit: asyncio.Semaphore) -> Score:
        error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                async with limit:
                    return await asyncio.to_thread(self._post, conversation)
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code}"
                if exc.code not in self.RETRY_STATUS:
                    return error
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                return f"bad reply: {exc}"
        return f"{error} after {self.retries + 1} attempts"

    async def score(self, conversations: list[list[Message]]) -> list[Score]:
        limit = asyncio.Semaphore(self.max_concurrency)  # per call: bound to the running loop
        return list(await asyncio.gather(*(self._one(c, limit) for c in conversations)))


def parse_reward_reply(reply: Any) -> float:
    """The score in a reward endpoint's JSON reply; ValueError naming the accepted shapes."""
    if isinstance(reply, dict):
        for key in ("score", "reward"):
            if isinstance(reply.get(key), int | float):
                return float(reply[key])
        if isinstance(reply.get("scores"), list) and reply["scores"]:
            return float(reply["scores"][0])
        if isinstance(reply.get("data"), list) and reply["data"]:
            return float(reply["data"][0]["score"])
    raise ValueError(
        f"no score in {str(reply)[:120]!r}; expected {{score}}, {{reward}}, {{scores: [x]}} "
        "or {data: [{score}]}"
    )


@register_stage("filters.reward_model")
@dataclass
class RewardModel(GroupFilter):
    """Scores each row with a reward model; keeps the best `top_k` per prompt and/or those at or
    above `threshold`.

    Reads `input` and `output` (the text after `</think>` unless `score_think`) and
    `meta["problem_id"]` (rows without one are a group of their own). Writes `scores["reward"]`,
    `meta["reward_rank"]` (1 = best in its group; ties broken by row id) and
    `scores["filters.reward_model"]` (1.0 kept / 0.0 dropped).

    Reasons: `reward_below_threshold`, `reward_not_top_k`; a row the scorer could not score goes
    to the failed split as `reward_failed: ...` and takes no place in its group's ranking.

    Example: 4 samples of a prompt scored 0.2, 1.5, -0.3, 0.9 with top_k 2 -> the 1.5 and 0.9
    rows are kept (ranks 1, 2); the others are dropped with `reward_not_top_k`.
    """

    model: str = ""  # a local reward model dir (relative paths: from the recipe's folder)
    url: str = ""  # or a reward endpoint (JSON POST, see the module docstring)
    served_model: str = ""  # the "model" sent to the endpoint
    api_key_env: str = ""  # env var holding the endpoint's bearer token (never the key itself)
    top_k: int = 1  # best-of-n per prompt (§3.1.4 rejection sampling); 0 = keep all ranks
    threshold: float | None = None  # also drop rows scored below this
    score_think: bool = False  # score the reasoning too, not only the answer after </think>
    batch_size: int = 16  # local model: conversations per forward pass
    max_length: int = 2048  # local model: tokens kept per conversation
    timeout_s: float = 60.0  # endpoint: seconds per request
    retries: int = 3  # endpoint: retries after the first try (429, 5xx, connection errors)
    backoff_s: float = 0.5  # endpoint: first retry's delay, doubled each time
    max_concurrency: int = 8  # endpoint: requests in flight

    requires: ClassVar[tuple[str, ...]] = ("input", "output")
    provides: ClassVar[tuple[str, ...]] = (
        "scores.reward",
        "meta.reward_rank",
        "scores.filters.reward_model",
    )

    def __post_init__(self) -> None:
        if bool(self.model) == bool(self.url):
            raise ValueError(
                "filters.reward_model: set exactly one of model (a local reward model dir) "
                "or url (a reward endpoint)"
            )
        if self.top_k < 0:
            raise ValueError(f"filters.reward_model: top_k must be >= 0, got {self.top_k}")
        if self.top_k == 0 and self.threshold is None:
            raise ValueError(
                "filters.reward_model: top_k 0 and no threshold would keep everything; "
                "set top_k >= 1 or a threshold"
            )
        if min(self.batch_size, self.max_length, self.max_concurrency) < 1 or self.retries < 0:
            raise ValueError(
                "filters.reward_model: batch_size, max_length, max_concurrency must be >= 1 "
                "and retries >= 0"
            )
        self._scorer: LocalRewardModel | HttpRewardModel | None = None

    def scorer(self, base_dir: Path = Path(".")) -> LocalRewardModel | HttpRewardModel:
        if self._scorer is None:
            if self.url:
                self._scorer = HttpRewardModel(
                    self.url,
                    self.served_model,
                    self.api_key_env,
                    self.timeout_s,
                    self.retries,
                    self.backoff_s,
                    self.max_concurrency,
                )
            else:
                path = Path(self.model).expanduser()
                if not path.is_absolute() and (base_dir / path).exists():
                    path = base_dir / path
                if not (path / "config.json").is_file():
                    raise FileNotFoundError(
                        f"filters.reward_model: {path} is not a model directory (no config.json)"
                    )
                self._scorer = LocalRewardModel(path, self.batch_size, self.max_length)
        return self._scorer

    def conversation(self, record: Record) -> list[Message]:
        answer = record.output if self.score_think else strip_think(record.output)
        return [*record.input, {"role": "assistant", "content": answer}]

    async def process(self, records: list[Record], ctx: RunContext) -> StageResult:
        # Every row of the batch in one scorer call (full forward-pass batches), then the groups.
        scores = await self.scorer(ctx.base_dir).score([self.conversation(r) for r in records])
        failed, scored = [], []
        for record, score in zip(records, scores, strict=True):
            if isinstance(score, str):
                record.stage, record.reason = self.stage_type, f"reward_failed: {score}"
                failed.append(record)
            else:
                record.scores["reward"] = score
                scored.append(record)
        result = self.judge(scored, ctx)
        result.failed = failed
        return result

    def arrange(self, rows: list[Record]) -> list[Record]:
        return sorted(rows, key=lambda r: (-r.scores["reward"], r.id))

    def judge_group(self, rows: list[Record], ctx: RunContext) -> list[bool | Drop | Record]:
        verdicts: list[bool | Drop | Record] = []
        for rank, record in enumerate(rows, 1):
            record.meta["reward_rank"] = str(rank)
            if self.threshold is not None and record.scores["reward"] < self.threshold:
                verdicts.append(Drop("reward_below_threshold"))
            elif self.top_k and rank > self.top_k:
                verdicts.append(Drop("reward_not_top_k"))
            else:
                verdicts.append(True)
        return verdicts


__all__ = ["HttpRewardModel", "LocalRewardModel", "RewardModel", "parse_reward_reply"]
