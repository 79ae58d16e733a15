import asyncio

import pytest

from curation.record import THINKING_OFF, THINKING_ON
from curation.registry import make_backend
from generators.base import GenerationRequest, SamplingParams


@pytest.fixture(scope="module")
def backend():
    backend = make_backend("transformers", model="embedded", batch_size=8)
    yield backend
    backend.close()


def _request(prompt, temperature=1.0, max_tokens=40, sample_index=0, system=THINKING_ON):
    messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
    return GenerationRequest.build(
        messages, SamplingParams(temperature, 1.0, max_tokens), sample_index=sample_index
    )


PROMPTS = [
    "Tom has 347 apples and gets 285 more. How many apples does Tom have?",
    "Write the word cat backwards.",
    "Which number is largest? A) 37 B) 81 C) 12 D) 55",
    "Write a function add_7(x) that returns x plus 7.",
]


def test_a_sample_does_not_depend_on_its_batch(backend):
    # the short prompt is left-padded in the batch, the long one is not
    short, long = _request(PROMPTS[1], 1.0, 60), _request(PROMPTS[0] + " Think hard.", 1.0, 60)
    alone = [backend.generate_sync([r])[0] for r in (short, long)]
    others = [_request(p, temperature=0.8, sample_index=i) for i, p in enumerate(PROMPTS)]
    batched = asyncio.run(backend.generate([others[0], short, *others[1:], long]))
    assert [batched[1].text, batched[-1].text] == [r.text for r in alone]
    assert batched[1].completion_tokens == alone[0].completion_tokens


def test_same_request_same_text_across_calls(backend):
    requests = [_request(p, temperature=1.0) for p in PROMPTS]
    first = [r.text for r in backend.generate_sync(requests)]
    assert first == [r.text for r in backend.generate_sync(requests)]


def test_sample_index_changes_the_sample(backend):
    requests = [_request(PROMPTS[0], 1.0, 60, sample_index=i) for i in range(6)]
    texts = {r.text for r in backend.generate_sync(requests)}
    assert len(texts) >= 2


def test_greedy_answers_and_stops(backend):
    request = _request(PROMPTS[1], temperature=0.0, max_tokens=200, system=THINKING_OFF)
    response = backend.generate_sync([request])[0]
    assert response.finish_reason == "stop"
    assert response.prompt_tokens > 0 and 0 < response.completion_tokens < 200
    assert "<think>" not in response.text


def test_max_tokens_gives_finish_reason_length(backend):
    response = backend.generate_sync([_request(PROMPTS[0], temperature=0.0, max_tokens=5)])[0]
    assert response.finish_reason == "length"
    assert response.completion_tokens == 5 and len(response.text) == 5


def test_backend_names_itself_for_cache_keys(backend):
    assert backend.name == "transformers" and backend.model == "embedded"


def test_missing_model_dir_is_named():
    with pytest.raises(FileNotFoundError, match="/no/such/teacher"):
        make_backend("transformers", model="/no/such/teacher")
