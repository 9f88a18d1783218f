"""The OpenAI-compatible chat: ``POST /v1/chat/completions`` (whole or streamed, with
tools and output formats) and ``GET /v1/models``, so that an OpenAI client works by
changing its base URL (``/v1/embeddings`` is ``embeddings.py``).

Same authentication, routing and dispatch as ``/v1/inference`` (``routed_chat``); only
the spelling of requests, answers and errors differs.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api_router.api.body import read_json_body
from api_router.api.public import routed_chat
from api_router.api.public.event_stream import EventStreamResponse
from api_router.api.public.inference_contract import StreamTimings
from api_router.api.public.openai_answers import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    CompletionUsage,
    Delta,
    Model,
    ModelList,
    finish_reason,
    openai_error_body,
)
from api_router.api.public.openai_contract import decode_chat_request
from api_router.api.request_context import RequestContext, context_of
from api_router.chat import ChatMessage, Completion, Usage
from api_router.chat_tools import ToolCallDelta
from api_router.dispatch.protocol import JobPayload
from api_router.errors import ApiError
from api_router.services import services_of

_encode = msgspec.json.encode


async def chat_completions(request: Request) -> Response | EventStreamResponse:
    services = services_of(request.scope)
    context = context_of(request.scope)
    context.authenticated()
    body = decode_chat_request(await read_json_body(request, services.settings.server))
    payload = JobPayload(body.chat_messages(), body.options())
    session = (body.metadata or {}).get("session_id")
    context.set_session(session, request.headers.get("x-session-id"))
    if body.stream:
        routed = await routed_chat.start_stream(services, context, body.model, payload)
        spelling = OpenAIChunks(context, body.model, body.include_usage)
        return EventStreamResponse(routed, spelling, context, services.settings.stream)
    dispatched = await routed_chat.complete(services, context, body.model, payload)
    completion = dispatched.completion
    answer = ChatCompletion(
        id=context.request_id,
        created=int(context.arrived_at),
        model=body.model,
        choices=[
            Choice(
                index=0,
                message=_assistant(completion.message),
                finish_reason=finish_reason(completion.finish_reason),
            )
        ],
        usage=_usage(completion.usage),
    )
    return Response(_encode(answer), media_type="application/json")


async def models(request: Request) -> Response:
    """The models that healthy nodes serve now (what a request can be routed to)."""
    context_of(request.scope).authenticated()
    ranked = services_of(request.scope).health.snapshot.ranked
    listing = ModelList([Model(name) for name in sorted(ranked)])
    return Response(_encode(listing), media_type="application/json")


class OpenAIChunks:
    """OpenAI's stream spelling: ``data: {chat.completion.chunk}`` frames, the first with
    the role, a last one with the finish reason, an optional usage-only chunk
    (``stream_options.include_usage``), then ``data: [DONE]``."""

    def __init__(self, context: RequestContext, model: str, include_usage: bool) -> None:
        self._context = context
        self._model = model
        self._include_usage = include_usage
        self._started = False

    def delta(self, text: str) -> bytes:
        return self._frame([ChunkChoice(0, Delta(role=self._role(), content=text))])

    def tool_call(self, piece: ToolCallDelta) -> bytes:
        return self._frame([ChunkChoice(0, Delta(role=self._role(), tool_calls=[piece]))])

    def done(self, completion: Completion, timings: StreamTimings, node_id: str) -> bytes:
        role = self._role()
        reason = finish_reason(completion.finish_reason)
        frames = self._frame([ChunkChoice(0, Delta(role=role), reason)])
        if self._include_usage:
            frames += self._frame([], _usage(completion.usage))
        return frames + b"data: [DONE]\n\n"

    def _role(self) -> Literal["assistant"] | None:
        """The role goes in the first chunk only."""
        first = not self._started
        self._started = True
        return "assistant" if first else None

    def error(self, error: ApiError) -> bytes:
        # The SDK raises an APIError for a data frame holding an `error` object.
        return b"data: " + openai_error_body(error, self._context.request_id) + b"\n\n"

    def _frame(self, choices: list[ChunkChoice], usage: CompletionUsage | None = None) -> bytes:
        chunk = ChatCompletionChunk(
            id=self._context.request_id,
            created=int(self._context.arrived_at),
            model=self._model,
            choices=choices,
            usage=usage if self._include_usage else msgspec.UNSET,
        )
        return b"data: " + _encode(chunk) + b"\n\n"


def _assistant(message: ChatMessage) -> AssistantMessage:
    if not message.tool_calls:
        return AssistantMessage(message.content)
    return AssistantMessage(message.content or None, tool_calls=message.tool_calls)


def _usage(usage: Usage) -> CompletionUsage:
    return CompletionUsage(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
