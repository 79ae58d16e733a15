"""The in-process `transformers` backend: a local HF causal LM sampled on CPU (or one GPU).

It runs its own decoding loop over a KV cache instead of `model.generate`, for one reason: each
request draws its randomness from its own `torch.Generator`, seeded from the request's cache key
(messages, sampling, sample index, seed). So a request's text does not depend on which other
requests share its batch or in what order they come, and the request cache stays truthful.

Prompts are rendered with the model's chat template, left-padded, and decoded together; rows
that finish stay in the batch until all are done (the embedded model is tiny, so this is cheaper
than reshaping the cache).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import threading
from pathlib import Path
from typing import Any

from curation.registry import register_backend
from generators.base import GenerationRequest, GenerationResponse


def weights_fingerprint(path: Path) -> str:
    """A short content hash of a model dir, part of every cache key for its requests.

    Rebuilding the embedded teacher under the same name must not serve the old model's cached
    answers. Large shards are sampled (size, first and last MiB) so that fingerprinting a
    multi-GB checkpoint stays instant.
    """
    digest = hashlib.sha256()
    files = [f for f in sorted(path.glob("*.json")) if f.name != "eval.json"]
    for file in files + sorted(path.glob("*.safetensors")):
        digest.update(file.name.encode())
        if file.suffix == ".json":
            digest.update(file.read_bytes())
            continue
        size = file.stat().st_size
        digest.update(str(size).encode())
        with file.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            handle.seek(max(0, size - (1 << 20)))
            digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:12]


@register_backend("transformers")
class TransformersBackend:
    """`model` is `"embedded"` (the committed teacher) or a local HF model dir."""

    name = "transformers"

    def __init__(
        self, model: str = "embedded", batch_size: int = 64, device: str = "cpu", **_: Any
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from curation.teacher.paths import resolve_model

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.device = torch.device(device)
        path = resolve_model(model)
        self.fingerprint = weights_fingerprint(path)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        self.lm.to(self.device).eval()
        # transformers 5.x renamed the KV-cache argument (`past_key_values` warns, then goes).
        forward_args = inspect.signature(self.lm.forward).parameters
        self._cache_arg = "cache" if "cache" in forward_args else "past_key_values"
        self.eos_id = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._lock = threading.Lock()

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        return await asyncio.to_thread(self.generate_sync, requests)

    def generate_sync(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        """Blocking form of `generate`; batches requests of similar prompt length together."""
        prompts = [self._encode(r) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: len(prompts[i]))
        out: list[GenerationResponse | None] = [None] * len(requests)
        with self._lock:
            for lo in range(0, len(order), self.batch_size):
                idx = order[lo : lo + self.batch_size]
                batch = self._decode_batch([requests[i] for i in idx], [prompts[i] for i in idx])
                for i, response in zip(idx, batch, strict=True):
                    out[i] = response
        return [r for r in out if r is not None]

    def close(self) -> None:
        self.lm = None

    def _encode(self, request: GenerationRequest) -> list[int]:
        return list(
            self.tokenizer.apply_chat_template(
                request.message_dicts(), add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
        )

    def _generator(self, request: GenerationRequest) -> Any:
        import torch

        seed = int(request.key(self.name, self.model)[:15], 16)
        return torch.Generator(device="cpu").manual_seed(seed)

    def _decode_batch(
        self, requests: list[GenerationRequest], prompts: list[list[int]]
    ) -> list[GenerationResponse]:
        import torch
        from transformers import DynamicCache

        n, width = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for row, p in enumerate(prompts):
            ids[row, width - len(p) :] = torch.tensor(p)
            mask[row, width - len(p) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        temps = torch.tensor([r.sampling.temperature for r in requests], dtype=torch.float32)
        top_p = torch.tensor([r.sampling.top_p for r in requests], dtype=torch.float32)
        limits = [r.sampling.max_tokens for r in requests]
        gens = [self._generator(r) for r in requests]
        cache = DynamicCache()
        tokens: list[list[int]] = [[] for _ in range(n)]
        done = [limit <= 0 for limit in limits]
        reasons = ["length"] * n
        step_ids, step_pos = ids, positions
        with torch.inference_mode():
            while not all(done):
                logits = self.lm(
                    input_ids=step_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    position_ids=step_pos.to(self.device),
                    use_cache=True,
                    **{self._cache_arg: cache},
                ).logits[:, -1, :]
                uniforms = torch.cat([torch.rand(1, generator=g) for g in gens])
                chosen = sample_tokens(logits.float().cpu(), temps, top_p, uniforms).tolist()
                for row, tok in enumerate(chosen):
                    if done[row]:
                        continue
                    tokens[row].append(tok)
                    if tok == self.eos_id:
                        done[row], reasons[row] = True, "stop"
                    elif len(tokens[row]) >= limits[row]:
                        done[row] = True
                step_ids = torch.tensor(chosen).unsqueeze(-1)
                step_pos = step_pos[:, -1:] + 1
                mask = torch.cat([mask, torch.ones((n, 1), dtype=torch.long)], dim=-1)
        return [
            GenerationResponse(
                text=self.tokenizer.decode(
                    [t for t in toks if t != self.eos_id], skip_special_tokens=True
                ),
                finish_reason=reason,
                prompt_tokens=len(prompt),
                completion_tokens=len(toks),
            )
            for toks, reason, prompt in zip(tokens, reasons, prompts, strict=True)
        ]


def sample_tokens(logits: Any, temps: Any, top_p: Any, uniforms: Any) -> Any:
    """One token per row: argmax where temperature is 0, else top-p sampling by inverse CDF.

    `uniforms` holds one U(0,1) draw per row from that row's own generator, so a row's choice
    depends only on its own logits and its own random stream.
    """
    import torch

    greedy = logits.argmax(dim=-1)
    scaled = logits / temps.clamp(min=1e-5).unsqueeze(-1)
    probs = torch.softmax(scaled, dim=-1)
    sorted_probs, sorted_idx = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass strictly above each token
    sorted_probs = torch.where(before < top_p.unsqueeze(-1), sorted_probs, 0.0)
    sorted_probs[:, 0] = torch.where(sorted_probs[:, 0] > 0, sorted_probs[:, 0], 1.0)
    cdf = sorted_probs.cumsum(dim=-1)
    cdf = cdf / cdf[:, -1:]
    pick = torch.searchsorted(cdf, uniforms.unsqueeze(-1)).clamp(max=cdf.shape[-1] - 1)
    sampled = sorted_idx.gather(-1, pick).squeeze(-1)
    return torch.where(temps > 0, sampled, greedy)
