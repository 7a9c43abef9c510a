"""The provider clients against fakes speaking the real wire formats.

What is sent (headers, translation), what is parsed (text, usage with cache tokens, streams),
how every failure is classified (one row per case), and the loopback server for benchmarks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from router.errors import ErrorKind, ProviderError
from router.providers import AnthropicProvider, OpenAIProvider
from router.providers.anthropic import (
    JSON_INSTRUCTION,
    AnthropicStreamState,
    parse_anthropic_usage,
    translate_tool,
)
from router.providers.http import (
    CallContext,
    Classified,
    Secret,
    SSEEvent,
    anthropic_rate_info,
    classify_anthropic_error,
    classify_openai_error,
    classify_transport_error,
    iter_sse,
    openai_rate_info,
    parse_duration,
    parse_retry_after,
    parse_rfc3339_delay,
)
from router.providers.openai import parse_openai_usage
from router.types import ChatRequest, Message, RateInfo, StreamEvent, Usage
from tests.router.fake_llm import (
    CONTEXT_BODIES,
    DEFAULT_USAGE,
    FakeLLM,
    Fault,
    Reply,
    answer,
    auth_failed,
    connect_refused,
    connection_reset,
    content_filtered,
    context_too_long,
    dropped_mid_stream,
    error_mid_stream,
    model_not_found,
    overloaded,
    prompt_filtered,
    quota_exhausted,
    rate_limited,
    read_timeout,
    serve_fake,
    server_error,
)

KEY = "sk-test-DO-NOT-LEAK-0123456789abcdef"
CACHED = Usage(
    input_tokens=1000,
    output_tokens=50,
    cache_read_tokens=600,
    cache_write_tokens=200,
    cache_write_1h_tokens=100,
)
OPENAI_CACHED = Usage(input_tokens=1000, output_tokens=50, cache_read_tokens=600)
FLAVORS = ["openai", "anthropic"]
MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5"}
Provider = OpenAIProvider | AnthropicProvider


def ask(*extra: Message, **kw: Any) -> ChatRequest:
    messages = (*extra, Message("user", "Say hello"))
    return ChatRequest(messages=messages, **kw)


def client_for(fake: FakeLLM) -> httpx.Client:
    return httpx.Client(transport=fake.transport())


def provider(flavor: str, fake: FakeLLM, **kw: Any) -> Provider:
    if flavor == "openai":
        return OpenAIProvider("openai", api_key=KEY, client=client_for(fake), **kw)
    return AnthropicProvider("anthropic", api_key=KEY, client=client_for(fake), **kw)


def call(flavor: str, *replies: Reply, **kw: Any) -> tuple[Provider, FakeLLM]:
    fake = FakeLLM(list(replies))
    return provider(flavor, fake, **kw), fake


def stream_all(events: Iterable[StreamEvent]) -> tuple[list[str], StreamEvent]:
    """Text pieces and the done event; checks there is exactly one done event, last."""
    got = list(events)
    assert [e.done for e in got] == [False] * (len(got) - 1) + [True]
    return [e.text for e in got[:-1]], got[-1]


def stream_until_error(events: Iterable[StreamEvent]) -> tuple[list[str], ProviderError]:
    texts: list[str] = []
    with pytest.raises(ProviderError) as caught:
        for event in events:
            assert not event.done
            texts.append(event.text)
    return texts, caught.value


# --- what is sent ---------------------------------------------------------------------------


def test_openai_request_headers_and_body():
    fake = FakeLLM()
    p = OpenAIProvider(
        "openai",
        api_key=KEY,
        client=client_for(fake),
        organization="org-1",
        project="proj-1",
    )
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    request = ask(
        Message("system", "Be brief."),
        temperature=0.2,
        max_tokens=64,
        stop=("END",),
        tools=(tool,),
        json=True,
    )
    p.complete("gpt-4o", request, timeout=5)
    (sent,) = fake.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["openai-organization"] == "org-1"
    assert sent.headers["openai-project"] == "proj-1"
    assert sent.body == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ],
        "temperature": 0.2,
        "max_tokens": 64,
        "stop": ["END"],
        "tools": [tool],
        "response_format": {"type": "json_object"},
        "stream": False,
    }


def test_openai_streams_always_ask_for_usage():
    p, fake = call("openai")
    stream_all(p.stream("gpt-4o", ask(), timeout=5))
    assert fake.requests[0].body["stream"] is True
    assert fake.requests[0].body["stream_options"] == {"include_usage": True}
    assert "max_tokens" not in fake.requests[0].body  # only when the request sets it


@pytest.mark.parametrize(
    ("kind", "model", "key"),
    [
        ("openai", "o1-mini", "max_completion_tokens"),
        ("openai", "o3", "max_completion_tokens"),
        ("openai", "o4-mini", "max_completion_tokens"),
        ("openai", "gpt-5-mini", "max_completion_tokens"),
        ("openai", "gpt-4o", "max_tokens"),
        ("local", "o3-lookalike", "max_tokens"),
        ("local", "llama3.1:8b", "max_tokens"),
    ],
)
def test_reasoning_models_get_max_completion_tokens(kind, model, key):
    fake = FakeLLM()
    OpenAIProvider("x", api_key=KEY, client=client_for(fake), kind=kind).complete(
        model, ask(max_tokens=100), timeout=5
    )
    body = fake.requests[0].body
    (other,) = {"max_tokens", "max_completion_tokens"} - {key}
    assert body[key] == 100 and other not in body


def test_local_servers_send_authorization_only_with_a_key():
    fake = FakeLLM()
    base = "http://127.0.0.1:11434/v1"
    keyless = OpenAIProvider("ollama", base_url=base, client=client_for(fake), kind="local")
    keyless.complete("llama3.1:8b", ask(), timeout=5)
    keyed = OpenAIProvider("vllm", base_url=base, api_key="k", client=client_for(fake))
    keyed.complete("qwen", ask(), timeout=5)
    assert "authorization" not in fake.requests[0].headers
    assert fake.requests[1].headers["authorization"] == "Bearer k"
    assert keyless.kind == "local" and keyless.url == f"{base}/chat/completions"


def test_anthropic_request_translation():
    p, fake = call("anthropic")
    tool = {
        "type": "function",
        "function": {"name": "f", "description": "does f", "parameters": {"type": "object"}},
    }
    request = ChatRequest(
        messages=(
            Message("system", "Be brief."),
            Message("user", "Hi"),
            Message("assistant", "Hello"),
            Message("system", "Use English."),
            Message("user", "Again"),
        ),
        temperature=1.5,
        stop=("END",),
        tools=(tool,),
    )
    p.complete("claude-sonnet-4-5", request, timeout=5)
    (sent,) = fake.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in sent.headers
    assert sent.body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "Be brief.\n\nUse English.",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Again"},
        ],
        "temperature": 1.0,
        "stop_sequences": ["END"],
        "tools": [{"name": "f", "description": "does f", "input_schema": {"type": "object"}}],
    }


def test_anthropic_json_mode_max_tokens_and_stream_flag():
    p, fake = call("anthropic")
    stream_all(p.stream("claude-haiku-4-5", ask(json=True, max_tokens=10), timeout=5))
    body = fake.requests[0].body
    assert body["system"] == JSON_INSTRUCTION
    assert body["max_tokens"] == 10
    assert body["stream"] is True


def test_translate_tool_passes_anthropic_shaped_tools_and_fills_a_schema():
    native = {"name": "g", "input_schema": {"type": "object"}}
    assert translate_tool(native) == native
    bare = translate_tool({"type": "function", "function": {"name": "h"}})
    assert bare == {"name": "h", "input_schema": {"type": "object", "properties": {}}}


def test_provider_version_header_is_configurable():
    p, fake = call("anthropic", version="2099-01-01")
    p.complete("claude", ask(), timeout=5)
    assert fake.requests[0].headers["anthropic-version"] == "2099-01-01"


# --- answers and usage ----------------------------------------------------------------------


def test_openai_answer_with_cached_tokens():
    tool_calls = (("lookup", {"q": "x"}),)
    p, _ = call("openai", answer("Hello there", usage=OPENAI_CACHED, tool_calls=tool_calls))
    response = p.complete("gpt-4o", ask(), timeout=5)
    assert response.text == "Hello there"
    assert response.usage == OPENAI_CACHED
    assert response.usage.uncached_input_tokens == 400
    assert response.provider == "openai" and response.model == "gpt-4o"
    assert response.finish_reason == "stop"
    assert response.response_id.startswith("chatcmpl-")
    assert response.tool_calls == (
        {
            "id": "call_0",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": "x"}'},
        },
    )


def test_openai_usage_without_details_and_without_usage():
    assert parse_openai_usage({"prompt_tokens": 7, "completion_tokens": 2}) == Usage(
        input_tokens=7, output_tokens=2
    )
    p, _ = call("openai", answer("x", usage=None))
    assert p.complete("m", ask(), timeout=5).usage == Usage(estimated=True)


def test_openai_null_content_is_empty_text():
    def handler(request: httpx.Request) -> httpx.Response:
        choice = {"index": 0, "message": {"content": None}, "finish_reason": "tool_calls"}
        return httpx.Response(200, json={"model": "m", "choices": [choice]})

    p = OpenAIProvider(
        "o", api_key=KEY, client=httpx.Client(transport=httpx.MockTransport(handler))
    )
    response = p.complete("m", ask(), timeout=5)
    assert response.text == "" and response.finish_reason == "tool_calls"


def test_anthropic_answer_with_cache_reads_and_writes():
    tool_calls = (("lookup", {"q": "x"}),)
    p, _ = call("anthropic", answer("Hello there", usage=CACHED, tool_calls=tool_calls))
    response = p.complete("claude-sonnet-4-5", ask(), timeout=5)
    assert response.text == "Hello there"
    assert response.usage == CACHED  # input = 100 uncached + 300 writes + 600 reads
    assert response.usage.uncached_input_tokens == 100
    assert response.finish_reason == "stop"
    assert response.tool_calls == (
        {
            "id": "toolu_0",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": "x"}'},
        },
    )


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {"input_tokens": 10, "output_tokens": 5},
            Usage(input_tokens=10, output_tokens=5),
        ),
        (  # no breakdown: all writes are 5-minute writes
            {"input_tokens": 10, "cache_creation_input_tokens": 30, "cache_read_input_tokens": 7},
            Usage(input_tokens=47, cache_write_tokens=30, cache_read_tokens=7),
        ),
        (  # breakdown used
            {
                "input_tokens": 1,
                "cache_creation_input_tokens": 30,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 10,
                    "ephemeral_1h_input_tokens": 20,
                },
            },
            Usage(input_tokens=31, cache_write_tokens=10, cache_write_1h_tokens=20),
        ),
        (  # a breakdown that does not add up: the total wins, the 1-hour part is kept
            {
                "cache_creation_input_tokens": 50,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 10,
                    "ephemeral_1h_input_tokens": 20,
                },
            },
            Usage(input_tokens=50, cache_write_tokens=30, cache_write_1h_tokens=20),
        ),
        (  # a breakdown without the total
            {"cache_creation": {"ephemeral_1h_input_tokens": 4}},
            Usage(input_tokens=4, cache_write_1h_tokens=4),
        ),
    ],
)
def test_parse_anthropic_usage(usage, expected):
    assert parse_anthropic_usage(usage) == expected


@pytest.mark.parametrize("flavor", FLAVORS)
def test_length_finish_reason_is_normalized(flavor):
    p, _ = call(flavor, answer("cut", finish="length"), answer("cut", finish="length"))
    assert p.complete(MODELS[flavor], ask(), timeout=5).finish_reason == "length"
    assert stream_all(p.stream(MODELS[flavor], ask(), timeout=5))[1].finish_reason == "length"


# --- streams --------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
def test_streamed_usage_equals_non_streamed_usage(flavor):
    usage = CACHED if flavor == "anthropic" else OPENAI_CACHED
    reply = answer("Hello brave new world", usage=usage)
    p, _ = call(flavor, reply, reply)
    plain = p.complete(MODELS[flavor], ask(), timeout=5)
    texts, done = stream_all(p.stream(MODELS[flavor], ask(), timeout=5))
    assert texts == ["Hello", " brave", " new", " world"]
    assert "".join(texts) == plain.text
    assert done.usage == plain.usage == usage
    assert done.finish_reason == plain.finish_reason == "stop"
    assert done.model == MODELS[flavor]


def test_openai_usage_on_a_chunk_with_choices_is_kept():
    p, _ = call("openai", answer("a b", usage=OPENAI_CACHED, stream_usage="on_choice"))
    assert stream_all(p.stream("gpt-4o", ask(), timeout=5))[1].usage == OPENAI_CACHED


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_stream_without_usage_ends_with_none(flavor):
    reply = answer("a b", stream_usage="missing") if flavor == "openai" else answer(usage=None)
    p, _ = call(flavor, reply)
    texts, done = stream_all(p.stream(MODELS[flavor], ask(), timeout=5))
    assert texts and done.usage is None and done.finish_reason == "stop"


def test_anthropic_final_message_delta_numbers_win_over_message_start():
    under = Usage(input_tokens=100, cache_read_tokens=40, cache_write_tokens=10)
    p, _ = call("anthropic", answer("a b", usage=CACHED, anthropic_start_usage=under))
    assert stream_all(p.stream("claude", ask(), timeout=5))[1].usage == CACHED
    # a final total without its breakdown: the writes still add up to the final total
    state = AnthropicStreamState()
    start = {"input_tokens": 5, "cache_creation_input_tokens": 10}
    start["cache_creation"] = {"ephemeral_5m_input_tokens": 10}  # type: ignore[assignment]
    state.feed({"type": "message_start", "message": {"usage": start}})
    final = {"input_tokens": 5, "cache_creation_input_tokens": 300, "output_tokens": 9}
    state.feed({"type": "message_delta", "delta": {}, "usage": final})
    assert state.usage == Usage(input_tokens=305, output_tokens=9, cache_write_tokens=300)


def test_anthropic_output_tokens_are_cumulative_and_pings_are_ignored():
    state = AnthropicStreamState()
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {"model": "c", "usage": {"input_tokens": 9, "output_tokens": 1}},
        },
        {"type": "ping"},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": "hmm"}},
        {"type": "content_block_delta", "delta": {"type": "input_json_delta", "partial_json": "{"}},
        {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 5}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 8},
        },
        {"type": "message_stop"},
    ]
    texts = [state.feed(e) for e in events]
    assert "".join(texts) == "hi"
    assert state.usage == Usage(input_tokens=9, output_tokens=8)
    assert state.finish_reason == "stop" and state.model == "c" and state.stopped


def test_anthropic_error_event_mid_stream_after_text():
    p, _ = call("anthropic", error_mid_stream(("Hel", "lo")))
    texts, error = stream_until_error(p.stream("claude", ask(), timeout=5))
    assert texts == ["Hel", "lo"]
    assert error.kind is ErrorKind.OVERLOADED and error.status is None
    assert "Overloaded" in error.message


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (context_too_long("sglang").fault, ErrorKind.CONTEXT_TOO_LONG),
        (overloaded().fault, ErrorKind.SERVER),
        (quota_exhausted().fault, ErrorKind.QUOTA_EXHAUSTED),
    ],
)
def test_sglang_error_object_inside_a_200_stream(fault, kind):
    p, _ = call("openai", error_mid_stream(("Hel", "lo"), fault))
    texts, error = stream_until_error(p.stream("qwen", ask(), timeout=5))
    assert texts == ["Hel", "lo"]
    assert error.kind is kind


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_dropped_stream_is_a_connection_error_after_the_text(flavor):
    p, _ = call(flavor, dropped_mid_stream(("Hel", "lo")))
    texts, error = stream_until_error(p.stream(MODELS[flavor], ask(), timeout=5))
    assert texts == ["Hel", "lo"]
    assert error.kind is ErrorKind.CONNECTION


def _raw_sse(body: str) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=body)

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_an_openai_stream_cut_before_done_is_a_connection_error():
    chunk = '{"model": "m", "choices": [{"index": 0, "delta": {"content": "par"}}]}'
    p = OpenAIProvider("o", api_key=KEY, client=_raw_sse(f"data: {chunk}\n\n"))
    texts, error = stream_until_error(p.stream("m", ask(), timeout=5))
    assert texts == ["par"] and error.kind is ErrorKind.CONNECTION


def test_an_openai_stream_with_a_finish_but_without_done_is_accepted():
    choice = '{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}'
    chunk = f'{{"model": "m", "choices": [{choice}]}}'
    p = OpenAIProvider("o", api_key=KEY, client=_raw_sse(f"data: {chunk}\n\n"))
    texts, done = stream_all(p.stream("m", ask(), timeout=5))
    assert texts == ["x"] and done.usage is None and done.finish_reason == "stop"


def test_an_anthropic_stream_cut_before_message_stop_is_a_connection_error():
    start = '{"type": "message_start", "message": {"usage": {"input_tokens": 3}}}'
    p = AnthropicProvider(
        "a", api_key=KEY, client=_raw_sse(f"event: message_start\ndata: {start}\n\n")
    )
    _, error = stream_until_error(p.stream("c", ask(), timeout=5))
    assert error.kind is ErrorKind.CONNECTION


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_non_json_chunk_is_a_server_error(flavor):
    cls = OpenAIProvider if flavor == "openai" else AnthropicProvider
    p = cls("x", api_key=KEY, client=_raw_sse("data: <html>\n\n"))
    assert stream_until_error(p.stream("m", ask(), timeout=5))[1].kind is ErrorKind.SERVER


@pytest.mark.parametrize("flavor", FLAVORS)
def test_content_filter_is_a_content_policy_error(flavor):
    p, _ = call(flavor, content_filtered(), content_filtered("partial"))
    with pytest.raises(ProviderError) as caught:
        p.complete(MODELS[flavor], ask(), timeout=5)
    assert caught.value.kind is ErrorKind.CONTENT_POLICY
    texts, error = stream_until_error(p.stream(MODELS[flavor], ask(), timeout=5))
    assert texts == ["partial"] and error.kind is ErrorKind.CONTENT_POLICY


@pytest.mark.parametrize("flavor", FLAVORS)
def test_an_error_status_on_a_stream_raises_before_any_event(flavor):
    p, _ = call(flavor, rate_limited(retry_after="3"))
    texts, error = stream_until_error(p.stream(MODELS[flavor], ask(), timeout=5))
    assert texts == []
    assert error.kind is ErrorKind.RATE_LIMITED and error.retry_after == 3.0 and error.status == 429


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_stream_past_its_overall_deadline_times_out(flavor):
    ticks = itertools.count()
    p, _ = call(flavor, answer(chunks=tuple("abcdefgh")), clock=lambda: float(next(ticks)))
    texts, error = stream_until_error(p.stream(MODELS[flavor], ask(), timeout=14.5))
    assert error.kind is ErrorKind.TIMEOUT
    assert 0 < len(texts) < 8  # some text came before the deadline, not all of it


def test_leaving_a_stream_early_closes_it():
    p, fake = call("openai", answer("a b c"))
    events = p.stream("m", ask(), timeout=5)
    assert next(events).text == "a"
    events.close()  # type: ignore[attr-defined]
    assert p.complete("m", ask(), timeout=5).text == "ok"
    assert len(fake.requests) == 2


# --- classification tables ------------------------------------------------------------------


def _oa(message: str = "m", type_: str = "invalid_request_error", code: Any = None) -> Any:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


OPENAI_ROWS: list[tuple[str, int | None, Any, ErrorKind]] = [
    ("context code", 400, _oa(code="context_length_exceeded"), ErrorKind.CONTEXT_TOO_LONG),
    (
        "openai wording, no code",
        400,
        _oa("This model's maximum context length is 8192 tokens."),
        ErrorKind.CONTEXT_TOO_LONG,
    ),
    *[
        (f"{name} wording", status, body, ErrorKind.CONTEXT_TOO_LONG)
        for name, (status, body) in CONTEXT_BODIES.items()
    ],
    (
        "responses-api wording",
        400,
        _oa("Your input exceeds the context window of this model."),
        ErrorKind.CONTEXT_TOO_LONG,
    ),
    ("policy code", 400, _oa(code="content_policy_violation"), ErrorKind.CONTENT_POLICY),
    ("azure content filter", 400, _oa(type_="", code="content_filter"), ErrorKind.CONTENT_POLICY),
    ("401", 401, _oa(code="invalid_api_key"), ErrorKind.AUTH),
    ("403", 403, _oa("Country not supported"), ErrorKind.AUTH),
    ("404", 404, _oa(code="model_not_found"), ErrorKind.NOT_FOUND),
    (
        "insufficient_quota",
        429,
        _oa(type_="insufficient_quota", code="insufficient_quota"),
        ErrorKind.QUOTA_EXHAUSTED,
    ),
    ("billing limit", 429, _oa(code="billing_hard_limit_reached"), ErrorKind.QUOTA_EXHAUSTED),
    ("quota wording", 429, _oa("You exceeded your current quota"), ErrorKind.QUOTA_EXHAUSTED),
    ("402 credits", 402, {"error": {"message": "Insufficient credits"}}, ErrorKind.QUOTA_EXHAUSTED),
    ("rate limit", 429, _oa(type_="requests", code="rate_limit_exceeded"), ErrorKind.RATE_LIMITED),
    ("500", 500, _oa(type_="server_error"), ErrorKind.SERVER),
    ("502 html", 502, "<html>Bad Gateway</html>", ErrorKind.SERVER),
    ("503", 503, _oa("overloaded"), ErrorKind.SERVER),
    ("504", 504, "", ErrorKind.SERVER),
    ("other 400", 400, _oa("Invalid 'temperature'"), ErrorKind.BAD_REQUEST),
    ("422", 422, {"detail": "bad"}, ErrorKind.BAD_REQUEST),
    ("ollama plain string", 400, {"error": "invalid options"}, ErrorKind.BAD_REQUEST),
    ("in-stream 500", None, {"error": {"message": "CUDA error", "code": 500}}, ErrorKind.SERVER),
    ("in-stream no code", None, {"error": {"message": "boom"}}, ErrorKind.SERVER),
    (
        "in-stream context",
        None,
        {"error": {"message": "The input is longer than the model's context length", "code": 400}},
        ErrorKind.CONTEXT_TOO_LONG,
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [row[1:] for row in OPENAI_ROWS],
    ids=[row[0] for row in OPENAI_ROWS],
)
def test_classify_openai_error(status, body, kind):
    assert classify_openai_error(status, body, {}).kind is kind


def _an(type_: str, message: str = "m", **error: Any) -> Any:
    return {"type": "error", "error": {"type": type_, "message": message, **error}}


ANTHROPIC_ROWS: list[tuple[str, int | None, Any, ErrorKind]] = [
    (
        "invalid request",
        400,
        _an("invalid_request_error", "max_tokens: bad"),
        ErrorKind.BAD_REQUEST,
    ),
    (
        "prompt is too long",
        400,
        _an("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
        ErrorKind.CONTEXT_TOO_LONG,
    ),
    (
        "exceed context limit",
        400,
        _an(
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 198000 + 4096 > 200000",
        ),
        ErrorKind.CONTEXT_TOO_LONG,
    ),
    ("authentication", 401, _an("authentication_error"), ErrorKind.AUTH),
    ("permission", 403, _an("permission_error"), ErrorKind.AUTH),
    ("billing", 402, _an("billing_error"), ErrorKind.QUOTA_EXHAUSTED),
    (
        "credit balance",
        400,
        _an("invalid_request_error", "Your credit balance is too low to access the Anthropic API."),
        ErrorKind.QUOTA_EXHAUSTED,
    ),
    ("not found", 404, _an("not_found_error", "model: nope"), ErrorKind.NOT_FOUND),
    ("request too large", 413, _an("request_too_large"), ErrorKind.CONTEXT_TOO_LONG),
    ("rate limit", 429, _an("rate_limit_error"), ErrorKind.RATE_LIMITED),
    (
        "spend limit code",
        429,
        _an(
            "rate_limit_error",
            "usage limits",
            details={"error_code": "enforced_spend_limit_reached"},
        ),
        ErrorKind.QUOTA_EXHAUSTED,
    ),
    (
        "spend limit wording",
        429,
        _an("rate_limit_error", "You have reached your spend limit."),
        ErrorKind.QUOTA_EXHAUSTED,
    ),
    ("api error", 500, _an("api_error"), ErrorKind.SERVER),
    ("overloaded", 529, _an("overloaded_error", "Overloaded"), ErrorKind.OVERLOADED),
    ("bare 529", 529, "", ErrorKind.OVERLOADED),
    ("conflict", 409, _an("conflict_error"), ErrorKind.SERVER),
    ("timeout type", 504, _an("timeout_error"), ErrorKind.TIMEOUT),
    ("bare 502", 502, "<html>bad gateway</html>", ErrorKind.SERVER),
    ("unknown type 400", 400, _an("new_error"), ErrorKind.BAD_REQUEST),
    ("in-stream overloaded", None, _an("overloaded_error", "Overloaded"), ErrorKind.OVERLOADED),
    ("in-stream api error", None, _an("api_error"), ErrorKind.SERVER),
]


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [row[1:] for row in ANTHROPIC_ROWS],
    ids=[row[0] for row in ANTHROPIC_ROWS],
)
def test_classify_anthropic_error(status, body, kind):
    assert classify_anthropic_error(status, body, {}).kind is kind


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ReadTimeout("t"), ErrorKind.TIMEOUT),
        (httpx.ConnectTimeout("t"), ErrorKind.TIMEOUT),
        (httpx.WriteTimeout("t"), ErrorKind.TIMEOUT),
        (httpx.PoolTimeout("t"), ErrorKind.TIMEOUT),
        (httpx.ConnectError("refused"), ErrorKind.CONNECTION),
        (httpx.ReadError("reset"), ErrorKind.CONNECTION),
        (httpx.WriteError("broken pipe"), ErrorKind.CONNECTION),
        (httpx.RemoteProtocolError("peer closed"), ErrorKind.CONNECTION),
    ],
)
def test_classify_transport_error(exc, kind):
    assert classify_transport_error(exc).kind is kind


# (script, kind on the OpenAI wire, kind on the Anthropic wire)
FAULTS: list[tuple[str, Callable[[], Reply], ErrorKind, ErrorKind]] = [
    ("rate limited", rate_limited, ErrorKind.RATE_LIMITED, ErrorKind.RATE_LIMITED),
    ("quota", quota_exhausted, ErrorKind.QUOTA_EXHAUSTED, ErrorKind.QUOTA_EXHAUSTED),
    ("overloaded", overloaded, ErrorKind.SERVER, ErrorKind.OVERLOADED),
    ("500", server_error, ErrorKind.SERVER, ErrorKind.SERVER),
    ("502", lambda: server_error(502), ErrorKind.SERVER, ErrorKind.SERVER),
    ("503", lambda: server_error(503), ErrorKind.SERVER, ErrorKind.SERVER),
    ("reset", connection_reset, ErrorKind.CONNECTION, ErrorKind.CONNECTION),
    ("refused", connect_refused, ErrorKind.CONNECTION, ErrorKind.CONNECTION),
    ("timeout", read_timeout, ErrorKind.TIMEOUT, ErrorKind.TIMEOUT),
    *[
        (
            f"context {w}",
            lambda w=w: context_too_long(w),
            ErrorKind.CONTEXT_TOO_LONG,
            ErrorKind.CONTEXT_TOO_LONG,
        )
        for w in CONTEXT_BODIES
    ],
    ("prompt filtered", prompt_filtered, ErrorKind.CONTENT_POLICY, ErrorKind.BAD_REQUEST),
    ("auth", auth_failed, ErrorKind.AUTH, ErrorKind.AUTH),
    ("not found", model_not_found, ErrorKind.NOT_FOUND, ErrorKind.NOT_FOUND),
]


@pytest.mark.parametrize(
    ("script", "openai_kind", "anthropic_kind"),
    [row[1:] for row in FAULTS],
    ids=[row[0] for row in FAULTS],
)
@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
def test_every_scripted_fault_end_to_end(flavor, streaming, script, openai_kind, anthropic_kind):
    p, _ = call(flavor, script())
    with pytest.raises(ProviderError) as caught:
        if streaming:
            list(p.stream(MODELS[flavor], ask(), timeout=5))
        else:
            p.complete(MODELS[flavor], ask(), timeout=5)
    error = caught.value
    assert error.kind is (openai_kind if flavor == "openai" else anthropic_kind)
    assert error.provider == flavor and error.model == MODELS[flavor]


def test_errors_carry_the_providers_message_truncated():
    long = "x" * 2000
    fault = Fault(
        status=400, message=f"Invalid value: {long}", anthropic_type="invalid_request_error"
    )
    for flavor in FLAVORS:
        p, _ = call(flavor, Reply(fault=fault))
        with pytest.raises(ProviderError) as caught:
            p.complete(MODELS[flavor], ask(), timeout=5)
        error = caught.value
        assert error.message.startswith("Invalid value: xxx") and len(error.message) <= 500
        assert error.status == 400 and error.kind is ErrorKind.BAD_REQUEST
        assert str(error).startswith(f"{flavor}/{MODELS[flavor]}: HTTP 400 bad-request: Invalid")


# --- Retry-After and rate headers -----------------------------------------------------------

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": format_datetime(NOW + timedelta(seconds=30), usegmt=True)}, 30.0),
        ({"retry-after": format_datetime(NOW - timedelta(seconds=30), usegmt=True)}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after-ms": "x", "retry-after": "4"}, 4.0),
        ({}, None),
    ],
)
def test_parse_retry_after(headers, expected):
    assert parse_retry_after(headers, NOW) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7", "x-ratelimit-reset-requests": "1s"}, 7.0),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"}, 360.0),
        (
            {
                "x-ratelimit-remaining-requests": "10",
                "x-ratelimit-reset-requests": "6m0s",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": "20ms",
            },
            0.02,
        ),
        ({"x-ratelimit-reset-requests": "2s", "x-ratelimit-reset-tokens": "1.5s"}, 1.5),
        ({}, None),
    ],
)
def test_openai_429_wait_falls_back_to_rate_headers(headers, expected):
    classified = classify_openai_error(429, _oa(code="rate_limit_exceeded"), headers)
    assert classified.kind is ErrorKind.RATE_LIMITED
    assert classified.retry_after == expected


def test_retry_after_only_on_retryable_errors():
    wait = {"retry-after": "5"}
    assert classify_openai_error(503, "", wait).retry_after == 5.0
    assert classify_anthropic_error(529, "", wait).retry_after == 5.0
    quota = _oa(code="insufficient_quota")
    assert classify_openai_error(429, quota, wait).retry_after is None
    assert classify_anthropic_error(401, _an("authentication_error"), wait).retry_after is None


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (lambda: rate_limited(retry_after="2"), 2.0),
        (lambda: rate_limited(retry_after="9", retry_after_ms="250"), 0.25),
        (lambda: rate_limited(retry_after=None), None),
    ],
    ids=["seconds", "milliseconds", "none"],
)
def test_retry_after_end_to_end(flavor, script, expected):
    p, _ = call(flavor, script())
    with pytest.raises(ProviderError) as caught:
        p.complete(MODELS[flavor], ask(), timeout=5)
    assert caught.value.kind is ErrorKind.RATE_LIMITED and caught.value.retry_after == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1s", 1.0),
        ("0.5s", 0.5),
        ("1h2m3s", 3723.0),
        ("1m30.5s", 90.5),
        ("2", 2.0),
        ("250us", 0.00025),
        ("", None),
        ("soon", None),
        ("5x", None),
        ("1m30", None),
        (None, None),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_openai_rate_headers():
    headers = {
        "x-ratelimit-limit-requests": "5000",
        "x-ratelimit-remaining-requests": "4999",
        "x-ratelimit-reset-requests": "12ms",
        "x-ratelimit-limit-tokens": "800000",
        "x-ratelimit-remaining-tokens": "799000",
        "x-ratelimit-reset-tokens": "1m0s",
    }
    assert openai_rate_info(headers) == RateInfo(
        limit_requests=5000,
        remaining_requests=4999,
        reset_requests=0.012,
        limit_tokens=800000,
        remaining_tokens=799000,
        reset_tokens=60.0,
    )
    assert openai_rate_info({"x-ratelimit-limit-requests": "lots"}) is None
    assert openai_rate_info({}) is None
    p, _ = call(
        "openai", answer(headers=tuple(headers.items())), answer(headers=tuple(headers.items()))
    )
    assert p.complete("m", ask(), timeout=5).rate == openai_rate_info(headers)
    assert stream_all(p.stream("m", ask(), timeout=5))[1].rate == openai_rate_info(headers)


def test_anthropic_rate_headers():
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2026-01-02T03:04:06Z",
        "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-tokens-remaining": "39000",
        "anthropic-ratelimit-tokens-reset": "2026-01-02T03:05:05+00:00",
    }
    assert anthropic_rate_info(headers, NOW) == RateInfo(
        limit_requests=50,
        remaining_requests=49,
        reset_requests=1.0,
        limit_tokens=40000,
        remaining_tokens=39000,
        reset_tokens=60.0,
    )
    input_only = {"anthropic-ratelimit-input-tokens-remaining": "7"}
    assert anthropic_rate_info(input_only, NOW) == RateInfo(remaining_tokens=7)
    assert anthropic_rate_info({}, NOW) is None
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    reply = answer(headers=(("anthropic-ratelimit-requests-reset", future),))
    p, _ = call("anthropic", reply)
    reset = p.complete("c", ask(), timeout=5).rate.reset_requests
    assert reset is not None and 3500 < reset <= 3600


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-02T03:04:15Z", 10.0),
        ("2026-01-02T03:04:15", 10.0),
        ("2026-01-01T00:00:00Z", 0.0),
        ("x", None),
        (None, None),
    ],
)
def test_parse_rfc3339_delay(value, expected):
    assert parse_rfc3339_delay(value, NOW) == expected


# --- SSE lines ------------------------------------------------------------------------------


def test_iter_sse():
    lines = [
        ": keep-alive comment",
        "event: message_start",
        'data: {"a": 1}',
        "",
        "",
        "data:no-space",
        "id: 7",
        "retry: 100",
        "",
        "data: one",
        "data: two",
        "",
        "event: unterminated",
        "data: last",
    ]
    assert list(iter_sse(lines)) == [
        SSEEvent("message_start", '{"a": 1}'),
        SSEEvent("", "no-space"),
        SSEEvent("", "one\ntwo"),
        SSEEvent("unterminated", "last"),
    ]


# --- secrets --------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize(
    "script", [lambda: auth_failed(echo_key=True), connection_reset, read_timeout]
)
def test_the_api_key_never_leaks(flavor, script):
    p, _ = call(flavor, script(), script())
    for attempt in (
        lambda: p.complete(MODELS[flavor], ask(), timeout=5),
        lambda: list(p.stream(MODELS[flavor], ask(), timeout=5)),
    ):
        with pytest.raises(ProviderError) as caught:
            attempt()
        error = caught.value
        for text in (str(error), repr(error), error.message, *map(str, error.args)):
            assert KEY not in text
        assert error.__cause__ is None
    for text in (repr(p), str(p)):
        assert KEY not in text and p.name in text


def test_an_echoed_key_is_redacted_not_dropped():
    p, _ = call("openai", auth_failed(echo_key=True))
    with pytest.raises(ProviderError) as caught:
        p.complete("m", ask(), timeout=5)
    assert caught.value.kind is ErrorKind.AUTH
    assert "Incorrect API key provided." in caught.value.message
    assert "[redacted]" in caught.value.message


def test_secret_and_call_context_hide_the_key():
    secret = Secret(KEY)
    assert KEY not in repr(secret) and KEY not in str(secret) and secret.reveal() == KEY
    assert not Secret(None) and Secret("k")
    ctx = CallContext("p", "m", (KEY,))
    error = ctx.error(Classified(ErrorKind.AUTH, f"bad key {KEY}"), 401)
    assert KEY not in str(error) and error.status == 401


# --- the fake itself ------------------------------------------------------------------------


def test_fake_answers_ok_when_the_script_runs_out_and_records_requests():
    p, fake = call("openai", server_error(503))
    with pytest.raises(ProviderError):
        p.complete("m", ask(), timeout=5)
    response = p.complete("m", ask(), timeout=5)
    assert response.text == "ok" and response.usage == DEFAULT_USAGE
    assert [r.path for r in fake.requests] == ["/v1/chat/completions"] * 2
    assert not fake.requests[0].stream


def test_fake_without_include_usage_sends_no_usage():
    fake = FakeLLM()
    client = client_for(fake)
    body = {"model": "m", "messages": [], "stream": True}
    text = client.post("https://api.openai.com/v1/chat/completions", json=body).text
    assert '"usage"' not in text and text.endswith("data: [DONE]\n\n")


# --- the loopback server --------------------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
def test_loopback_server_with_a_real_client(flavor):
    usage = CACHED if flavor == "anthropic" else OPENAI_CACHED
    reply = answer("Hello over the wire", usage=usage)
    fake = FakeLLM([reply, reply, rate_limited(retry_after="4"), dropped_mid_stream(("a", "b"))])
    with serve_fake(fake) as url, httpx.Client() as client:
        if flavor == "openai":
            p: Provider = OpenAIProvider("o", base_url=f"{url}/v1", api_key=KEY, client=client)
        else:
            p = AnthropicProvider("a", base_url=url, api_key=KEY, client=client)
        model = MODELS[flavor]
        plain = p.complete(model, ask(), timeout=5)
        texts, done = stream_all(p.stream(model, ask(), timeout=5))
        with pytest.raises(ProviderError) as caught:
            p.complete(model, ask(), timeout=5)
        dropped, error = stream_until_error(p.stream(model, ask(), timeout=5))
        after = p.complete(model, ask(), timeout=5)
    assert plain.text == "".join(texts) == "Hello over the wire"
    assert plain.usage == done.usage == usage
    assert caught.value.kind is ErrorKind.RATE_LIMITED and caught.value.retry_after == 4.0
    assert dropped == ["a", "b"] and error.kind is ErrorKind.CONNECTION
    assert after.text == "ok"
    assert len(fake.requests) == 5
    # keep-alive: one connection until the drop closed it, then one more
    assert len({r.peer for r in fake.requests[:4]}) == 1 and fake.requests[4].peer
    assert fake.requests[0].headers.get("x-api-key" if flavor == "anthropic" else "authorization")


@pytest.mark.parametrize(
    ("script", "kind"),
    [(connection_reset, ErrorKind.CONNECTION), (read_timeout, ErrorKind.TIMEOUT)],
)
def test_loopback_server_transport_faults(script, kind):
    fake = FakeLLM([script()])
    with serve_fake(fake) as url, httpx.Client() as client:
        p = OpenAIProvider("o", base_url=f"{url}/v1", api_key=KEY, client=client)
        with pytest.raises(ProviderError) as caught:
            p.complete("m", ask(), timeout=0.2)
        assert caught.value.kind is kind
        assert p.complete("m", ask(), timeout=5).text == "ok"  # the server lives on
