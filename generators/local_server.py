"""The `local-server` backend: `transformers serve` on a local model dir, spoken to over HTTP.

Recipe: `{backend: local-server, model: embedded}` (or a local HF model dir). The backend starts
`transformers serve MODEL_DIR --host 127.0.0.1 --port FREE --device cpu` (needs
`transformers[serving]`), waits for `GET /health`, and then is the `openai` backend pointed at
it; `close()` stops the server. It is the real HTTP path, on the embedded teacher, that a build
takes when its teacher is a remote server.

What `transformers serve` (5.23) does that shapes this module:
- A positional model preloads it and pins the server to it; requests must name it exactly as
  given (the directory path). The `generator` column and cache key use `model` as the recipe
  wrote it ("embedded"), plus a fingerprint of the model files.
- It ignores `n` (one choice per call), so samples are one call each (`group_samples: false`).
- Sampling is off unless the model's generation config says so; the embedded one does not, so
  each request sends a `generation_config` with `do_sample` and its temperature and top-p.
- `seed` reseeds torch's global generator on each request, so concurrent requests share one
  random stream: texts are reproducible through the request cache, not from the seed alone.
- `GET /v1/models` lists the HF hub cache (empty or failing offline); `/health` is the probe.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from curation.registry import register_backend
from generators.base import GenerationRequest
from generators.openai_backend import OpenAIBackend


@register_backend("local-server")
class LocalServerBackend(OpenAIBackend):
    name = "local-server"

    def __init__(
        self,
        model: str = "embedded",
        device: str = "cpu",  # passed to `transformers serve --device`
        startup_timeout_s: float = 180.0,  # how long to wait for /health
        max_concurrency: int = 4,  # the server decodes on CPU; more only queues there
        group_samples: bool = False,  # transformers serve ignores `n`
        **options: Any,
    ) -> None:
        from curation.teacher.paths import resolve_model

        path = resolve_model(model).resolve()
        self.fingerprint = model_fingerprint(path)
        self._process: subprocess.Popen | None = None
        # the server's log lives as long as the server; it is deleted when the backend goes
        self._log = tempfile.NamedTemporaryFile(prefix="transformers-serve-", suffix=".log")  # noqa: SIM115
        port = free_port()
        self._start(path, port, device, startup_timeout_s)
        try:
            super().__init__(
                model,
                base_url=f"http://127.0.0.1:{port}/v1",
                max_concurrency=max_concurrency,
                group_samples=group_samples,
                **options,
            )
        except Exception:
            self.close()
            raise
        self.served_model = str(path)

    def _start(self, path: Path, port: int, device: str, timeout_s: float) -> None:
        try:
            import fastapi  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "the local-server backend needs transformers[serving]: "
                "pip install 'transformers[serving]'"
            ) from exc
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def model_fingerprint(path: Path) -> str:
    """A short hash of the model dir's config, tokenizer and weight files (name, size, head)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(f"{file.name}:{file.stat().st_size}".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:12]
