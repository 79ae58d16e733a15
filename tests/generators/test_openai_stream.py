"""Streamed calls of the `openai` backend: timeouts, fallback, usage, `n`, against a real server.

The server is the loopback `FaultServer`; nothing of ours is mocked. Timing comes from the
server's own faults (a black hole, a stall, a slow stream) and the client's limits, never from
sleeps in the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

import pytest

from generators.fault_server import FaultPlan, FaultServer
from generators.openai_backend import OpenAIBackend, StreamParser, _Retryable
from generators.ratelimit import CallTimedOut, CallTimeout

from .test_openai_backend import backend, requests, run


def timed(b: OpenAIBackend, reqs) -> tuple[list, float]:
    start = time.monotonic()
    out = run(b, reqs)
    return out, time.monotonic() - start


def test_streams_by_default_and_matches_the_plain_answer(fault_server):
    streamed = run(backend(fault_server), requests(2))
    plain = run(backend(fault_server, stream=False), requests(2))
    assert [h.stream for h in fault_server.hits] == [True, True, False, False]
    assert streamed == plain and streamed[0].text == "echo: question 0 [seed=7 choice=0]"


def test_a_black_holed_call_is_cut_at_first_byte_timeout_and_retried(fault_server):
    fault_server.plan = FaultPlan(sequence=("black_hole",))
    b = backend(fault_server, first_byte_timeout_s=0.3, timeout_s=30.0)
    out, seconds = timed(b, requests(1))
    assert out[0].error is None and out[0].text.startswith("echo:")
    assert b.stats.retry_reasons == {"first_byte_timeout": 1} and seconds < 3.0
    assert [h.fault for h in fault_server.hits] == ["black_hole", "ok"]


def test_a_stall_mid_stream_is_cut_at_idle_timeout_and_retried(fault_server):
    fault_server.plan = FaultPlan(sequence=("stall", "stall"), stall_after=3)
    b = backend(fault_server, idle_timeout_s=0.3, timeout_s=30.0)
    out, seconds = timed(b, requests(1))
    assert out[0].error is None and out[0].text == "echo: question 0 [seed=7 choice=0]"
    assert b.stats.retry_reasons == {"idle_timeout": 2} and seconds < 3.0
    # the chunks that came before the stall are not kept: the retry answers whole
    assert b.stats.completion_tokens == fault_server.hits[-1].completion_tokens


def test_a_slow_steady_stream_is_not_cut_by_the_idle_timeout(fault_server):
    fault_server.plan = FaultPlan(rates={"slow": 1.0}, slow_s=1.8)  # ~0.13 s between chunks
    b = backend(fault_server, first_byte_timeout_s=0.6, idle_timeout_s=0.6, timeout_s=30.0)
    out, seconds = timed(b, requests(2))
    assert all(r.error is None and r.finish_reason == "stop" for r in out)
    assert b.stats.retries == 0 and seconds >= 1.8  # three idle timeouts long, uncut


def test_the_total_timeout_still_caps_a_stream_that_keeps_sending(fault_server):
    fault_server.plan = FaultPlan(rates={"slow": 1.0}, slow_s=5.0)
    b = backend(fault_server, idle_timeout_s=1.0, timeout_s=0.5, max_retries=0)
    out, seconds = timed(b, requests(1))
    assert out[0].error.startswith("timeout:") and b.stats.failure_reasons == {"timeout": 1}
    assert seconds < 3.0


def test_a_server_that_answers_json_to_a_stream_request_is_asked_plainly_after(fault_server):
    fault_server.plan = FaultPlan(streaming="json")
    b = backend(fault_server, group_samples=False)
    out = run(b, requests(1))
    assert out[0].text == "echo: question 0 [seed=7 choice=0]" and out[0].prompt_tokens == 2
    run(b, requests(2, seed=9))
    assert [h.stream for h in fault_server.hits] == [True, False, False]
    assert b.stats.stream_fallbacks == 0 and b.stats.retries == 0


def test_a_server_that_refuses_streaming_gets_a_plain_call_at_once(fault_server):
    fault_server.plan = FaultPlan(streaming="reject")
    b = backend(fault_server)
    out = run(b, requests(1))
    assert out[0].error is None and out[0].text == "echo: question 0 [seed=7 choice=0]"
    run(b, requests(2, seed=9))
    assert [(h.stream, h.fault) for h in fault_server.hits] == [
        (True, "stream_rejected"),
        (False, "ok"),
        (False, "ok"),
        (False, "ok"),
    ]
    assert b.stats.stream_fallbacks == 1 and b.stats.retries == 0 and b.stats.calls == 4


def test_a_request_refused_either_way_fails_and_streaming_stays_on(fault_server):
    b = backend(fault_server, base_url=fault_server.base_url.replace("/v1", "/nowhere"))
    out = run(b, requests(1))
    assert out[0].error.startswith("http_404:") and "not retried" in out[0].error
    assert b.stats.stream_fallbacks == 1
    b.options.base_url = fault_server.base_url  # 404 plain too: not about streaming, so
    run(b, requests(1))
    assert [h.stream for h in fault_server.hits] == [True]  # the next call still streams


def test_usage_and_finish_reason_come_from_the_stream(fault_server):
    fault_server.plan = FaultPlan(sequence=("length",))
    b = backend(fault_server)
    out = run(b, requests(1))
    assert out[0].finish_reason == "length" and out[0].error is None
    (hit,) = fault_server.hits
    assert hit.stream and out[0].completion_tokens == hit.completion_tokens > 0
    assert out[0].prompt_tokens == 2 and b.stats.usage_missing == 0


def test_a_stream_without_usage_counts_zero_tokens_and_says_so(fault_server):
    fault_server.plan = FaultPlan(stream_usage=False)
    b = backend(fault_server, tokens_per_minute=60_000)
    out = run(b, requests(2))
    assert all(r.error is None and r.prompt_tokens == r.completion_tokens == 0 for r in out)
    assert b.stats.usage_missing == 2 and b.stats.completion_tokens == 0


@pytest.mark.parametrize("reasoning", ["none", "field", "inline"])
def test_samples_share_one_streamed_call_with_n(fault_server, reasoning):
    fault_server.plan = FaultPlan(reasoning=reasoning)
    b = backend(fault_server)
    streamed = run(b, requests(prompts=2, samples=3))
    assert [(h.stream, h.n) for h in fault_server.hits] == [(True, 3), (True, 3)]
    plain = run(backend(fault_server, stream=False), requests(prompts=2, samples=3))
    assert streamed == plain  # choices demultiplexed by index; same text, tokens, reasons
    assert streamed[4].text.endswith("echo: question 1 [seed=7 choice=1]")
    assert [r.prompt_tokens for r in streamed[:3]] == [2, 0, 0]
    assert sum(r.completion_tokens for r in streamed) == sum(
        h.completion_tokens for h in fault_server.hits[:2]
    )


def test_a_streaming_server_that_ignores_n_is_fanned_out(fault_server):
    fault_server.plan = FaultPlan(ignore_n=True)
    b = backend(fault_server)
    out = run(b, requests(prompts=1, samples=3))
    assert [(h.stream, h.n) for h in fault_server.hits] == [(True, 3), (True, 1), (True, 1)]
    assert [r.text for r in out] == [f"echo: question 0 [seed={s} choice=0]" for s in (7, 8, 9)]
    assert b.stats.fanout_calls == 2


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("malformed", "malformed_json"), ("missing_choices", "missing_choices")],
)
def test_broken_streams_are_retried(fault_server, fault, reason):
    fault_server.plan = FaultPlan(sequence=(fault,))
    b = backend(fault_server)
    out = run(b, requests(1))
    assert out[0].error is None and b.stats.retry_reasons == {reason: 1}
    assert fault_server.hits[0].stream


def test_an_empty_stream_is_an_empty_completion(fault_server):
    fault_server.plan = FaultPlan(sequence=("empty",))
    out = run(backend(fault_server), requests(1))
    assert out[0].error.startswith("empty_completion") and out[0].finish_reason == "error"


def test_stream_parser_takes_bytes_cut_anywhere():
    body = (
        b": keep-alive\r\n\r\n"
        b'data: {"choices": [{"index": 1, "delta": {"content": "b"}}]}\r\n\r\n'
        b'data: {"choices": [{"index": 0, "delta": {"reasoning": "r"}}]}\n\n'
        b'data:{"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"}]}\n\n'
        b'data: {"choices": [{"index": 1, "delta": {}, "finish_reason": "length"}]}\n\n'
        b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}\n\n'
        b"data: [DONE]"
    )
    parser = StreamParser()
    for k in range(len(body)):
        parser.feed(body[k : k + 1])
    answers, total = parser.answers(2)
    assert [(a.text, a.finish_reason) for a in answers] == [
        ("<think>\nr\n</think>\n\na", "stop"),
        ("b", "length"),
    ]
    assert total == 7 and answers[0].prompt_tokens == 3


def test_stream_parser_refuses_a_stream_that_ends_early_or_breaks_off():
    parser = StreamParser()
    parser.feed(b'data: {"choices": [{"index": 0, "delta": {"content": "a"}}]}\n\n')
    with pytest.raises(_Retryable, match="never finished"):
        parser.answers(1)
    with pytest.raises(_Retryable, match="broke off"):
        StreamParser().feed(b'data: {"error": "CUDA out of memory"}\n\n')


def test_call_timeout_names_the_limit_and_lets_real_cancels_through():
    async def wait_for(limits: CallTimeout, reads: int = 0) -> None:
        async with limits:
            for _ in range(reads):
                await asyncio.sleep(0.01)
                limits.progress()
            await asyncio.Event().wait()

    async def cases() -> list[str]:
        reasons = []
        for limits, reads in [
            (CallTimeout(5.0, first_byte_s=0.05), 0),
            (CallTimeout(5.0, first_byte_s=5.0, idle_s=0.05), 3),
            (CallTimeout(0.05, first_byte_s=5.0, idle_s=5.0), 3),
        ]:
            with pytest.raises(CallTimedOut) as caught:
                await wait_for(limits, reads)
            reasons.append(caught.value.reason)
        task = asyncio.ensure_future(wait_for(CallTimeout(5.0, first_byte_s=5.0)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return reasons

    assert asyncio.run(cases()) == ["first_byte_timeout", "idle_timeout", "timeout"]


@pytest.mark.parametrize("fault", ["black_hole", "stall"])
def test_held_connections_end_when_the_server_stops(fault):
    server = FaultServer(FaultPlan(rates={fault: 1.0})).start()
    arrived = threading.Event()
    server.on_hit = lambda _: arrived.set()
    body = b'{"model": "m", "messages": [], "stream": true}'
    client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    client.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert arrived.wait(5)
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 3.0
    assert not any(t.name == "fault-server" for t in threading.enumerate())
    received = b""
    with contextlib.suppress(ConnectionResetError):  # an aborted connection may read as a reset
        while chunk := client.recv(65536):
            received += chunk
    client.close()
    if fault == "black_hole":
        assert received == b""  # never a byte
    else:
        assert b"data:" in received and b"[DONE]" not in received


def test_bad_stream_options_name_the_fix():
    with pytest.raises(ValueError, match="idle_timeout_s must be > 0 seconds or null"):
        OpenAIBackend("m", idle_timeout_s=0)
    with pytest.raises(ValueError, match="first_byte_timeout_s must be > 0 seconds or null"):
        OpenAIBackend("m", first_byte_timeout_s=-1)
    with pytest.raises(ValueError, match="stream must be true or false"):
        OpenAIBackend("m", stream="yes")
    assert OpenAIBackend("m", idle_timeout_s=None, first_byte_timeout_s=None).options.stream
