"""The request cache: hits, misses, and what survives a new connection."""

from curation.cache import RequestCache
from curation.generation import GenerationRequest, SamplingParams


def request(content: str, sample: int = 0, temperature: float = 0.7) -> GenerationRequest:
    return GenerationRequest.build(
        [{"role": "user", "content": content}], SamplingParams(temperature=temperature), sample
    )


def test_keys_cover_every_part_of_a_request():
    base = request("q").key("transformers", "embedded")
    assert base == request("q").key("transformers", "embedded")
    assert base != request("q2").key("transformers", "embedded")
    assert base != request("q", sample=1).key("transformers", "embedded")
    assert base != request("q", temperature=0.2).key("transformers", "embedded")
    assert base != request("q").key("openai", "embedded")
    assert base != request("q").key("transformers", "other")


def test_put_then_get_across_connections(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = RequestCache(path)
    assert cache.get_many(["a", "b"]) == {}
    assert cache.put_many("transformers", "m", [("a", {"text": "x"}), ("b", {"text": "y"})]) == 2
    cache.close()
    again = RequestCache(path)
    assert again.get_many(["a", "b", "c"]) == {"a": {"text": "x"}, "b": {"text": "y"}}
    assert again.put_many("transformers", "m", [("a", {"text": "other"})]) == 0
    assert again.get_many(["a"])["a"] == {"text": "x"}
    assert len(again) == 2


def test_many_keys_in_one_lookup(tmp_path):
    cache = RequestCache(tmp_path / "c.sqlite")
    items = [(f"k{i}", {"text": str(i)}) for i in range(1234)]
    cache.put_many("b", "m", items)
    found = cache.get_many([k for k, _ in items])
    assert len(found) == 1234 and found["k1000"] == {"text": "1000"}
