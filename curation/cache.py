"""The request cache: every finished model request, keyed by its content, in sqlite (WAL).

A build that is killed and run again asks the cache first, so no finished request is repeated;
each batch of responses is committed as soon as it arrives. Failed requests are not cached, so
the next build retries them. Keys come from `GenerationRequest.key` (backend, model, messages,
sampling, sample index, seed and CACHE_VERSION).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""
_CHUNK = 500  # sqlite's limit on bound parameters is well above this


class RequestCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A killed process loses nothing committed under WAL with NORMAL; only a power cut could.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._db.commit()

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        keys = list(keys)
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, response FROM responses WHERE key IN ({marks})", chunk
            )
            found.update((key, json.loads(response)) for key, response in rows)
        return found

    def put_many(self, backend: str, model: str, items: list[tuple[str, dict[str, Any]]]) -> int:
        """Store responses; returns how many were new (a repeated key would show up here)."""
        now = time.time()
        with self._db:
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?)",
                [(k, backend, model, json.dumps(r, sort_keys=True), now) for k, r in items],
            )
            return self._db.total_changes - before

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()
