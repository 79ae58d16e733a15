"""The `local-server` backend: `transformers serve` on a local model dir, spoken to over HTTP.

Recipe: `{backend: local-server, model: embedded}` (or a local HF model dir). The backend runs
`transformers serve MODEL_DIR --host 127.0.0.1 --port FREE --device cpu` (needs
`transformers[serving]`), waits for `GET /health`, and then is the `openai` backend pointed at
it; `close()` stops the server. It is the real HTTP path, on the embedded teacher, that a build
takes when its teacher is a remote server. The server starts at the first request that misses
the request cache, so a build answered wholly from the cache starts none.

What `transformers serve` (5.23) does that shapes this module:
- A positional model preloads it and pins the server to it; requests must name it exactly as
  given (the directory path). The `generator` column and cache key use `model` as the recipe
  wrote it ("embedded"), plus a fingerprint of the model files.
- It ignores `n` (one choice per call), so samples are one call each (`group_samples: false`).
- Sampling is off unless the model's generation config says so; the embedded one does not, so
  each request sends a `generation_config` with `do_sample` and its temperature and top-p.
- `seed` reseeds torch's global generator on each request, so concurrent requests share one
  random stream: texts are reproducible through the request cache, not from the seed alone.
- Concurrent requests decode in server threads; torch's intra-op pool (one thread per core) on
  top of those spins for cores that other work holds (8x slower on 2 busy cores, 10% faster on
  idle ones), so the server runs with `cpu_threads: 1` unless the recipe says otherwise (`null`
  keeps torch's default, for a large model on many cores).
- `GET /v1/models` lists the HF hub cache (empty or failing offline); `/health` is the probe.
- A prompt longer than the model's context (`max_position_embeddings`) is neither refused nor
  truncated: the server logs a warning and decodes on past the positions the model was trained
  on, and answers junk with HTTP 200. So this backend counts each prompt with the model's own
  tokenizer and chat template (what the server counts) and, like vLLM, refuses a prompt that
  fills the context (`prompt_too_long: ...`, a `failed` row naming the fix), and caps
  `max_tokens` to the room left (an answer cut there has `finish_reason` "length"). The cap is
  applied to the call only: cache keys keep the recipe's `max_tokens`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

from curation.registry import register_backend
from generators.base import GenerationRequest, GenerationResponse
from generators.openai_backend import OpenAIBackend


@register_backend("local-server")
class LocalServerBackend(OpenAIBackend):
    name = "local-server"

    def __init__(
        self,
        model: str = "embedded",
        device: str = "cpu",  # passed to `transformers serve --device`
        cpu_threads: int | None = 1,  # torch threads in the server; None: torch's default
        startup_timeout_s: float = 180.0,  # how long to wait for /health
        max_concurrency: int = 4,  # the server decodes on CPU; more only queues there
        group_samples: bool = False,  # transformers serve ignores `n`
        context_tokens: int | None = None,  # None: the model config's max_position_embeddings
        **options: Any,
    ) -> None:
        from transformers import AutoTokenizer

        from curation.teacher.paths import resolve_model

        if cpu_threads is not None and cpu_threads < 1:
            raise ValueError(f"local-server: cpu_threads must be >= 1 or null, got {cpu_threads}")
        path = resolve_model(model).resolve()
        self.fingerprint = model_fingerprint(path)
        self.context_tokens = context_tokens or model_context(path)
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._context_source = (
            "context_tokens" if context_tokens else f"max_position_embeddings in {path}/config.json"
        )
        _check_serving_installed()
        self._process: subprocess.Popen | None = None
        # the server's log lives as long as the server; it is deleted when the backend goes
        self._log = tempfile.NamedTemporaryFile(prefix="transformers-serve-", suffix=".log")  # noqa: SIM115
        self._launch = (path, device, startup_timeout_s, cpu_threads)
        self._start_lock = threading.Lock()
        self._started = False
        self._start_error: str | None = None  # a failed start fails every later call the same way
        super().__init__(
            model,
            base_url="http://127.0.0.1:0/v1",  # the real port is chosen when the server starts
            max_concurrency=max_concurrency,
            group_samples=group_samples,
            **options,
        )
        self.served_model = str(path)

    @property
    def running(self) -> bool:
        """Whether this backend's server process is up (it starts at the first cache miss)."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it is healthy; later calls return at once.

        `generate` calls this before its first HTTP request, not `__init__`: a build whose
        requests are all answered by the request cache (a rerun, a resumed build, a second recipe
        over the same prompts) never pays for a server start.
        """
        with self._start_lock:
            if self._start_error is not None:
                raise RuntimeError(self._start_error)
            if self._started:
                return
            path, device, timeout_s, threads = self._launch
            port = free_port()
            self.options.base_url = f"http://127.0.0.1:{port}/v1"
            try:
                self._start(path, port, device, timeout_s, threads)
            except Exception as exc:
                self._start_error = str(exc)
                raise
            self._started = True

    def _start(
        self, path: Path, port: int, device: str, timeout_s: float, threads: int | None
    ) -> None:
        command = [
            sys.executable,
            "-c",
            "from transformers.cli.transformers import main; main()",
            "serve",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            device,
            "--log-level",
            "warning",
        ]
        env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
        if threads is not None:
            # Concurrent requests run in server threads that each call torch; torch's own pool
            # on top spins for cores that other work holds. Embedded teacher, 4 concurrent
            # requests, 2 cores: one intra-op thread gives 295 tok/s instead of 37 when the
            # cores are busy (load 6), and 410 instead of 450 when they are idle.
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self._process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._fail(f"`transformers serve` exited with code {self._process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        self._fail(f"`transformers serve` was not healthy within {timeout_s:.0f} s")

    def _fail(self, what: str) -> None:
        tail = self.log_tail()
        self.close()
        raise RuntimeError(f"{what}; its log ends with:\n{tail}")

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    async def generate(self, requests: list[GenerationRequest]) -> list[GenerationResponse]:
        """As the `openai` backend, after fitting each request to the model's context."""
        fitted = [self.fit(r) for r in requests]
        sent = [r for r in fitted if isinstance(r, GenerationRequest)]
        if sent:
            await asyncio.to_thread(self.start)  # blocking: polls /health
        answers = iter(await super().generate(sent) if sent else [])
        return [next(answers) if isinstance(r, GenerationRequest) else r for r in fitted]

    def prompt_tokens(self, request: GenerationRequest) -> int:
        """The prompt's length as the server counts it: the chat template, then the tokenizer."""
        encoded = self._tokenizer.apply_chat_template(
            request.message_dicts(), add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return len(encoded["input_ids"])

    def fit(self, request: GenerationRequest) -> GenerationRequest | GenerationResponse:
        """`request` with `max_tokens` capped to the room the prompt leaves in the context, or an
        error response (not sent, not retried) when the prompt alone fills the context."""
        if not self.context_tokens:
            return request
        prompt = self.prompt_tokens(request)
        room = self.context_tokens - prompt
        if room < 1:
            return self._failure(
                "prompt_too_long",
                f"the prompt has {prompt} tokens and the model's context is "
                f"{self.context_tokens} ({self._context_source}); shorten the prompt or the "
                "stage's template (a file next to the recipe), or use a model with a longer "
                "context (not retried)",
            )
        if request.sampling.max_tokens > room:
            return replace(request, sampling=replace(request.sampling, max_tokens=room))
        return request

    def _extra_body(self, request: GenerationRequest) -> dict[str, Any] | None:
        sampling = request.sampling
        config = {
            "do_sample": sampling.temperature > 0,
            "temperature": sampling.temperature if sampling.temperature > 0 else 1.0,
            "top_p": sampling.top_p,
            "max_new_tokens": sampling.max_tokens,
        }
        return {**(self.options.extra_body or {}), "generation_config": json.dumps(config)}

    def close(self) -> None:
        super().close()
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _check_serving_installed() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "the local-server backend needs transformers[serving]: "
            "pip install 'transformers[serving]'"
        ) from exc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def model_context(path: Path) -> int | None:
    """The model's context in tokens from its config.json; None when the config does not say."""
    config = json.loads((path / "config.json").read_text())
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(config.get(key), int) and config[key] > 0:
            return config[key]
    return None


def model_fingerprint(path: Path) -> str:
    """A short hash of the model dir's config, tokenizer and weight files (name, size, head)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(f"{file.name}:{file.stat().st_size}".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:12]
