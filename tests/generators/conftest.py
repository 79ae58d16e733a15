"""Shared parts for backend tests: a fault-injecting OpenAI-compatible server on loopback."""

from __future__ import annotations

import pytest

from generators.fault_server import FaultPlan, FaultServer


@pytest.fixture
def fault_server():
    """A running `FaultServer` with no faults; tests set `server.plan` as they need."""
    with FaultServer(FaultPlan()) as server:
        yield server
