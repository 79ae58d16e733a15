"""filters.reward_model: a real loopback reward endpoint, a local sequence-classification model,
and (slow) a tiny reward model trained with trl's RewardTrainer on tinyworld preference pairs."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from curation.record import Record
from curation.registry import stage_class
from curation.tinyworld import format_output, generate
from filters.reward import RewardModel, parse_reward_reply

from .conftest import make_context


class RewardHandler(BaseHTTPRequestHandler):
    """Score = number of distinct words in the answer; "FAIL" -> 500, "FLAKY" -> one 503 first."""

    seen: Counter = Counter()

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = body["messages"][-1]["content"]
        RewardHandler.seen[answer] += 1
        if self.path == "/auth" and self.headers.get("Authorization") != "Bearer s3cret":
            return self._send(401, {"error": "no key"})
        if "FAIL" in answer or ("FLAKY" in answer and RewardHandler.seen[answer] == 1):
            return self._send(500 if "FAIL" in answer else 503, {"error": "busy"})
        score = float(len(set(answer.split())))
        reply = {"data": [{"score": score}]} if self.path == "/data" else {"score": score}
        self._send(200, reply)

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RewardHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def sample(problem, k, output, reasoning="off", prompt="Say something."):
    return Record(
        id=f"{problem}-{k}",
        input=[{"role": "user", "content": prompt}],
        output=output,
        reasoning=reasoning,
        meta={"problem_id": problem},
    )


def run(stage, records, tmp_path):
    return asyncio.run(stage.process(records, make_context(tmp_path)))


def test_http_top_k_per_prompt(server, tmp_path):
    records = [
        sample("p", 0, "one two"),
        sample("p", 1, "one two three four"),
        sample("p", 2, "<think>a b c d e f g h</think>one", reasoning="on"),  # the answer counts
        sample("p", 3, "one two three"),
        sample("q", 0, "solo"),
    ]
    result = run(RewardModel(url=server, top_k=2), records, tmp_path)
    assert sorted(r.id for r in result.kept) == ["p-1", "p-3", "q-0"]
    assert {r.id: r.reason for r in result.rejected} == {
        "p-0": "reward_not_top_k",
        "p-2": "reward_not_top_k",
    }
    ranks = {
        r.id: (r.meta["reward_rank"], r.scores["reward"]) for r in result.kept + result.rejected
    }
    assert ranks == {
        "p-1": ("1", 4.0),
        "p-3": ("2", 3.0),
        "p-0": ("3", 2.0),
        "p-2": ("4", 1.0),
        "q-0": ("1", 1.0),
    }
    assert all(r.scores["filters.reward_model"] == 1.0 for r in result.kept)
    think = run(RewardModel(url=server, top_k=1, score_think=True), records[:3], tmp_path)
    assert [r.id for r in think.kept] == ["p-2"]


def test_http_threshold_retries_and_failures(server, tmp_path):
    records = [
        sample("p", 0, "a b c FLAKY"),  # 503 once, then scored
        sample("p", 1, "a"),
        sample("p", 2, "FAIL now"),
    ]
    stage = RewardModel(url=f"{server}/data", top_k=0, threshold=2.0, backoff_s=0.01)
    result = run(stage, records, tmp_path)
    assert [r.id for r in result.kept] == ["p-0"] and result.kept[0].scores["reward"] == 4.0
    assert [(r.id, r.reason) for r in result.rejected] == [("p-1", "reward_below_threshold")]
    (failed,) = result.failed
    assert failed.reason == "reward_failed: HTTP 500 after 4 attempts"
    assert RewardHandler.seen["FAIL now"] == 4 and RewardHandler.seen["a b c FLAKY"] == 2


def test_http_api_key_from_the_environment(server, tmp_path, monkeypatch):
    records = [sample("p", 0, "x y")]
    denied = run(RewardModel(url=f"{server}/auth", retries=0), records, tmp_path)
    assert denied.failed[0].reason == "reward_failed: HTTP 401"
    monkeypatch.setenv("RM_KEY", "s3cret")
    allowed = run(
        RewardModel(url=f"{server}/auth", api_key_env="RM_KEY"), [sample("p", 0, "x y")], tmp_path
    )
    assert allowed.kept[0].scores["reward"] == 2.0
    with pytest.raises(ValueError, match="NOT_SET_ANYWHERE"):
        RewardModel(url=server, api_key_env="NOT_SET_ANYWHERE").scorer()


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ({"score": 1.5}, 1.5),
        ({"reward": -2}, -2.0),
        ({"scores": [0.25]}, 0.25),
        ({"data": [{"score": 3}]}, 3.0),
    ],
)
def test_parse_reward_reply(reply, score):
    assert parse_reward_reply(reply) == score


def test_params_are_checked():
    assert stage_class("filters.reward_model") is RewardModel
    with pytest.raises(ValueError, match="exactly one"):
        RewardModel()
    with pytest.raises(ValueError, match="exactly one"):
        RewardModel(model="rm", url="http://127.0.0.1:1")
    with pytest.raises(ValueError, match="keep everything"):
        RewardModel(url="http://127.0.0.1:1", top_k=0)
    with pytest.raises(ValueError, match="no score"):
        parse_reward_reply({"nothing": 1})


# ------------------------------------------------------------------ local models


def tiny_classifier(path, seed=0):
    """A 1-layer Llama sequence classifier on the embedded teacher's char tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from curation.teacher.paths import EMBEDDED_DIR

    tokenizer = AutoTokenizer.from_pretrained(EMBEDDED_DIR)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForSequenceClassification(config), tokenizer


def corrupt(task, rng):
    """A wrong version of a tinyworld answer: no box, cut short, or stuck in a loop."""
    full = format_output(task, False)
    kind = rng.choice(["nobox", "cut", "loop"])
    if kind == "nobox":
        return full.replace("\\boxed{", "").replace("}", "")
    if kind == "cut":
        return full[: len(full) // 3]
    return (full.split()[0] + " ") * 12


def test_local_model_dir_scores_and_ranks(tmp_path):
    model, tokenizer = tiny_classifier(tmp_path)
    model.save_pretrained(tmp_path / "rm")
    tokenizer.save_pretrained(tmp_path / "rm")
    records = [sample("p", k, f"answer {'x' * k}") for k in range(4)]
    stage = RewardModel(model="rm", top_k=1, batch_size=3)  # relative to the context's base dir
    result = run(stage, records, tmp_path)
    scores = [r.scores["reward"] for r in sorted(result.kept + result.rejected, key=lambda r: r.id)]
    assert len(result.kept) == 1 and result.kept[0].scores["reward"] == max(scores)
    alone = stage.scorer().score_sync([stage.conversation(r) for r in records])
    assert alone == pytest.approx(scores, abs=1e-5)  # batching and padding do not change a score
    with pytest.raises(FileNotFoundError, match="config.json"):
        RewardModel(model="missing").scorer(tmp_path)


@pytest.mark.slow
def test_trl_trained_reward_model_prefers_right_answers(tmp_path):
    """Train a tiny RM with trl's RewardTrainer (seconds), then reject samples with it."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    rng = random.Random(0)
    model, tokenizer = tiny_classifier(tmp_path)
    pairs = []
    for task in generate("math", 160, seed=11):
        prompt = [{"role": "user", "content": task.prompt}]
        good = [*prompt, {"role": "assistant", "content": format_output(task, False)}]
        bad = [*prompt, {"role": "assistant", "content": corrupt(task, rng)}]
        pairs.append({"chosen": good, "rejected": bad})
    args = RewardConfig(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=1,
        per_device_train_batch_size=16,
        learning_rate=3e-3,
        max_length=256,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=0,
    )
    trainer = RewardTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(pairs), processing_class=tokenizer
    )
    trainer.train()
    trainer.save_model(str(tmp_path / "rm"))
    tokenizer.save_pretrained(tmp_path / "rm")

    held_out = generate("math", 30, seed=99)  # other problems than the training ones
    records = []
    for i, task in enumerate(held_out):
        outputs = [format_output(task, False)] + [corrupt(task, rng) for _ in range(3)]
        records += [sample(f"t{i}", k, o, prompt=task.prompt) for k, o in enumerate(outputs)]
    result = run(RewardModel(model=str(tmp_path / "rm"), top_k=1), records, tmp_path)
    by_group = {}
    for r in result.kept + result.rejected:
        by_group.setdefault(r.meta["problem_id"], {})[r.id] = r.scores["reward"]
    pairwise = [s[f"{p}-0"] > s[f"{p}-{k}"] for p, s in by_group.items() for k in (1, 2, 3)]
    assert sum(pairwise) / len(pairwise) > 0.8  # chance is 0.5
    assert len(result.kept) == 30
    right_kept = sum(r.id.endswith("-0") for r in result.kept)
    assert right_kept / 30 > 0.7  # top-1 is the right answer far more often than 1 in 4
