"""The LLM engine every stage shares: concurrency, budgets, retries, structured output, journal and accounting.

Usage::

    from synth.llm import ChatRequest, LLMEngine, LLMSettings

    settings = LLMSettings.from_options(options)   # stage options; None -> OPENAI_BASE_URL / OPENAI_API_KEY
    with LLMEngine(settings, journal=out / "_journal.sqlite", stage="paraphrase") as engine:
        results = engine.chat_many([ChatRequest(messages=[{"role": "user", "content": "..."}],
                                                response_model=Paraphrases, params={"seed": 3})])
        for result in results:            # same order as the requests
            if result.ok:
                use(result.parsed)        # a validated Paraphrases (result.content holds the raw text)
            else:
                record_failure(result.error)   # a reason; the request is asked again on the next run
        vectors = engine.post_json_many("/embeddings", [{"model": "m", "input": ["a", "b"]}])
        totals = engine.stats()           # requests, tokens, retries, failures, cost_usd ...
        with counting() as usage:         # per part, even with parts in flight at once: PartResult(stats=...)
            engine.run(my_coroutine())    # streaming: `await engine.achat(request)` per request, from any thread

Answered requests are journaled at once; a rerun reads them back instead of sending them. A 400/401/403/404
raises `FatalAPIError` (the key is never in its message). `achat_many` / `apost_json_many` / `achat` serve callers
already inside an event loop. Every request, from any call or thread, takes a slot of one engine-wide adaptive
limit (`synth.llm.concurrency`); sync calls run on the engine's own event-loop thread, so several parts can stream
through one engine at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from synth.errors import ConfigError, FatalAPIError
from synth.llm import endpoint_stats, liveness
from synth.llm.accounting import Accounting
from synth.llm.concurrency import AdaptiveLimit, gather_or_cancel
from synth.llm.endpoints import EndpointPool, EndpointState
from synth.llm.guard import Budget, FailureWindow
from synth.llm.journal import Journal
from synth.llm.ratelimit import RateLimiter
from synth.llm.retry import retry_after_failure, with_retries
from synth.llm.settings import LLMSettings, redact_url
from synth.llm.structured import (
    FormChooser,
    InvalidAnswer,
    parse_answer,
    reask_messages,
    response_format,
    schema_of,
    structured_messages,
)
from synth.llm.tokens import TokenEstimator, estimate_message_tokens, estimate_text_tokens
from synth.llm.transport import APIRefusal, TimedOut, TransientError, Unreachable, overloaded
from synth.llm.wire import Body, canonical, key_of, request_key
from synth.progress import RequestProgress

T = TypeVar("T")


def _endpoint_fault(error: TransientError) -> bool:
    """A fault of the server rather than of the request or the budget: refused connection, timeout, dropped
    connection, 5xx (a 429 is the budget's, handled by the limiter)."""
    return isinstance(error, (Unreachable, TimedOut)) or error.status is None or error.status >= 500


_STOP_REASONS = {"length": "answer cut at max_tokens (finish_reason=length)",
                 "content_filter": "answer blocked by the content filter (finish_reason=content_filter)"}
BATCH_COLLECTOR: contextvars.ContextVar[Any] = contextvars.ContextVar("synth_batch_collector", default=None)
"""Set by batch mode (`synth.llm.batch`): engines made meanwhile hand their unanswered requests to it."""
# Forms chosen by `auto` per endpoint, shared by every engine of the process (the journal keeps it across runs).
_REMEMBERED_FORMS: dict[str, str] = {}
_SCOPE: contextvars.ContextVar[Accounting | None] = contextvars.ContextVar("synth_llm_scope", default=None)
"""The counters of the part being made (see `counting`), besides the engine's own."""
_GRANTED: contextvars.ContextVar[float] = contextvars.ContextVar("synth_llm_granted", default=0.0)
"""When the current request got its slot: a 429 for a request sent before the last cut does not cut again."""


@contextmanager
def counting() -> Iterator[Accounting]:
    """Count the engine work started inside the block (in this thread) separately: per-part stats that stay right
    while several parts share an engine."""
    usage = Accounting()
    token = _SCOPE.set(usage)
    try:
        yield usage
    finally:
        _SCOPE.reset(token)


@dataclass
class ChatRequest:
    """One chat completion to make; `params` override the engine's (temperature, seed, max_tokens, stop, ...)."""

    messages: list[dict[str, Any]]
    response_model: type[BaseModel] | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def encoded_messages(self) -> str:
        """The messages' canonical JSON, encoded once for both the journal key and the body (never mutate them)."""
        return canonical(self.messages)


Structured = tuple[list[dict[str, Any]], ChatRequest]
"""A chat request with a response model: its messages and the request, made into a body per endpoint."""


@dataclass
class ChatResult:
    """The outcome of one request: `ok` with `content` (and `parsed` when a model was asked for), or an `error`."""

    ok: bool
    content: str | None = None
    parsed: BaseModel | None = None
    error: str | None = None
    from_journal: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    """Set when the model stopped before finishing (`length`, `content_filter`): the cut answer is in `content`."""


@dataclass
class JsonResult:
    """The outcome of one raw JSON POST (for example `/embeddings`): `data` is the decoded answer."""

    ok: bool
    data: Any = None
    error: str | None = None
    from_journal: bool = False


class RequestFailed(Exception):
    """A request that ends as a failed row (after retries, or cut short); the reason goes into the result."""


class AnswerStopped(RequestFailed):
    """The model stopped early (max_tokens, content filter): the same request would stop the same way again."""

    def __init__(self, finish_reason: str, content: str):
        super().__init__(_STOP_REASONS[finish_reason])
        self.finish_reason = finish_reason
        self.content = content


class FormRefused(Exception):
    """The server refused the structured-output form; the request is sent again in the form chosen next."""


class LLMEngine:
    """Push many requests through one or several OpenAI-compatible endpoints as fast as their limits allow, losing
    nothing."""

    def __init__(
        self,
        settings: LLMSettings,
        journal: Path | str | None = None,
        stage: str = "llm",
        progress: bool = True,
    ):
        if not settings.base_url:
            raise ConfigError(
                "no LLM endpoint configured: pass --base-url (or set OPENAI_BASE_URL) and --api-key "
                "(or OPENAI_API_KEY), or install synth[llm-local] for the bundled demo model"
            )
        self.settings = settings
        self.stage = stage
        self.show_progress = progress
        self.journal = Journal(journal, stage) if journal else None
        self.accounting = Accounting()
        self.slots = AdaptiveLimit(settings.concurrency)
        self.failing = FailureWindow()
        self.budget = Budget(settings.max_cost, lambda: self.accounting.cost_usd) if settings.max_cost else None
        self.pool = EndpointPool(settings, settings.model)
        self.estimator = TokenEstimator()
        self._model = settings.model
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._schemas: dict[type[BaseModel], tuple[dict[str, Any], str]] = {}
        self._formats: dict[tuple[str, type[BaseModel]], tuple[dict[str, Any] | None, str]] = {}
        self._base_params = {"temperature": settings.temperature, "max_tokens": settings.max_tokens,
                             "seed": settings.seed}
        self._base_params = {k: v for k, v in self._base_params.items() if v is not None}
        self.collector = BATCH_COLLECTOR.get() if self.journal is not None else None

    # ----- public API -------------------------------------------------------------------------------------------

    def chat_many(self, requests: Iterable[ChatRequest]) -> list[ChatResult]:
        """Answer every request (order preserved); blocks until all are answered or failed."""
        return self._run_sync(self.achat_many(list(requests)))

    def post_json_many(self, path: str, bodies: Iterable[dict[str, Any]], journal: bool = True) -> list[JsonResult]:
        """POST each body to `path` (for example "/embeddings") with the same limits, retries and journal."""
        return self._run_sync(self.apost_json_many(path, list(bodies), journal=journal))

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine that awaits `achat` on the engine's event loop; callable from several threads at once."""
        return self._run_sync(work)

    async def achat(self, request: ChatRequest, urgent: bool = False) -> ChatResult:
        """One request, streamed: journal, engine-wide slot, retries, re-ask. The same request asked twice at once
        is sent once; `urgent` ones (a record's next try) take the next free slot before the others."""
        key = self._chat_key(self._model or await self._resolve_model(), request)
        while True:
            running = self._inflight.get(key)
            if running is not None:
                try:
                    return await asyncio.shield(running)
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if not running.cancelled() or (current is not None and current.cancelling()):
                        raise
                    continue  # whoever sent it was cancelled, this caller was not: it asks again itself
            if self.journal is not None:
                hit = await self.journal.get(key)
                result = self._chat_from_journal(request, hit) if hit is not None else None
                if result is not None:
                    self._count("from_journal")
                    return result
                if key in self._inflight:
                    continue  # sent by another caller while this one looked it up: shared
            break
        # The first caller sends it in its own task (no task per request); callers of the same request meanwhile
        # wait for the shared outcome.
        shared = self._inflight[key] = asyncio.get_running_loop().create_future()
        try:
            result = await self._slotted(self._chat_one, key, request, urgent)
        except asyncio.CancelledError:
            shared.cancel()
            raise
        except BaseException as exc:
            shared.set_exception(exc)
            shared.exception()  # raised here; those who shared it get it too, and nobody else needs to see it
            raise
        else:
            shared.set_result(result)
            return result
        finally:
            del self._inflight[key]

    async def achat_many(self, requests: list[ChatRequest]) -> list[ChatResult]:
        """`chat_many` for callers already inside an event loop."""
        model = await self._resolve_model()
        keyed = [(self._chat_key(model, req), req) for req in requests]
        return await self._many(keyed, self._chat_from_journal, self._chat_one, "requests")

    async def apost_json_many(self, path: str, bodies: list[dict[str, Any]], journal: bool = True) -> list[JsonResult]:
        """`post_json_many` for callers already inside an event loop."""
        keyed = [(request_key("post", path, body) if journal else f"nojournal:{i}", (path, body, journal))
                 for i, body in enumerate(bodies)]
        return await self._many(keyed, self._json_from_journal, self._post_one, "posts")

    def stats(self, since: dict[str, int | float] | None = None) -> dict[str, int | float]:
        """Counters (requests, journal hits, tokens, retries, failures, cost in USD) since the engine started, or
        since an earlier `stats()` snapshot: per-part numbers for `PartResult.stats`."""
        return self.accounting.since(since) if since else self.accounting.as_dict()

    def close(self) -> None:
        """Stop what is still in flight, close HTTP sessions and the journal (the engine cannot be used afterwards)."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()
            self._loop = self._thread = None
        if self.journal is not None:
            self.journal.close()

    async def _shutdown(self) -> None:
        """Cancel what still runs on the engine's loop (parts of a stopped stage), then close its HTTP session."""
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.pool.close()

    async def aclose(self) -> None:
        """Close the sessions of the running loop (for callers using the async API)."""
        await self.pool.close()

    @property
    def limiter(self) -> RateLimiter:
        """The budget of the first endpoint (the only one unless several are configured)."""
        return self.pool.states[0].limiter

    def endpoint_stats(self) -> dict[str, dict[str, Any]]:
        """Per endpoint (by URL without credentials): requests, failures, latency percentiles in ms, cost in USD."""
        return endpoint_stats.summaries(self.pool.usage())

    def endpoint_usage(self) -> dict[str, endpoint_stats.Usage]:
        """Per endpoint, the raw counts and latency histogram that fold with other engines' (`endpoint_stats`)."""
        return self.pool.usage()

    def __enter__(self) -> LLMEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- scheduling -------------------------------------------------------------------------------------------

    def _run_sync(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the engine's loop thread (started on first use), counting into the caller's scope."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            work.close()
            raise RuntimeError("chat_many/post_json_many called inside an event loop: use achat_many/apost_json_many")
        return self.submit(work).result()

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start `work` on the engine's loop thread (started on first use), counting into the caller's scope; a
        coroutine on another loop awaits it with `asyncio.wrap_future` without blocking its own loop."""
        with self._start_lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name=f"synth-llm-{self.stage}",
                                                daemon=True)
                self._thread.start()
        scope = _SCOPE.get()

        async def scoped() -> T:
            _SCOPE.set(scope)
            return await work

        return asyncio.run_coroutine_threadsafe(scoped(), self._loop)

    def _count(self, name: str, n: int = 1) -> None:
        """Add to a counter of the engine and of the current part's scope."""
        for accounting in (self.accounting, _SCOPE.get()):
            if accounting is not None:
                setattr(accounting, name, getattr(accounting, name) + n)

    async def _slotted(self, send: Callable[[str, Any], Awaitable[T]], key: str, item: Any, urgent: bool = False) -> T:
        """`send` while holding a slot of the engine-wide limit."""
        _GRANTED.set(await self.slots.acquire(urgent))
        try:
            self.failing.check()
            return await send(key, item)
        finally:
            self.slots.release()

    async def _many(
        self,
        keyed: list[tuple[str, Any]],
        from_journal: Callable[[Any, Any], Any],
        send: Callable[[str, Any], Awaitable[Any]],
        unit: str,
    ) -> list[Any]:
        """Journal hits first, then each distinct pending request once, each in a slot of the engine-wide limit."""
        results: list[Any] = [None] * len(keyed)
        saved = self.journal.get_many([k for k, _ in keyed]) if self.journal is not None else {}
        pending: dict[str, list[int]] = {}
        for index, (key, item) in enumerate(keyed):
            hit = saved.get(key)
            result = from_journal(item, hit) if hit is not None else None
            if result is not None:
                results[index] = result
                self._count("from_journal")
            else:
                pending.setdefault(key, []).append(index)
        queue = list(pending.items())
        queue.reverse()  # pop() from the end keeps the requests' order
        with RequestProgress(self.stage, unit, len(queue), enabled=self.show_progress) as progress:

            async def worker() -> None:
                while queue:
                    key, indices = queue.pop()
                    result = await self._slotted(send, key, keyed[indices[0]][1])
                    for index in indices:
                        results[index] = result
                    progress.advance(self.accounting)

            workers = [asyncio.ensure_future(worker()) for _ in range(min(self.settings.concurrency, len(queue)))]
            if workers:
                await gather_or_cancel(workers)
        return results

    # ----- chat -------------------------------------------------------------------------------------------------

    def _chat_key(self, model: str, req: ChatRequest) -> str:
        """`request_key("chat", model, messages, params, schema)`, from the messages and schema encoded once."""
        schema = self._encoded_schema(req.response_model)[1] if req.response_model else "null"
        params = {**self._base_params, **self.settings.extra_body, **req.params}
        return key_of('"chat"', canonical(model), req.encoded_messages, canonical(params), schema)

    def _schema(self, model: type[BaseModel]) -> dict[str, Any]:
        return self._encoded_schema(model)[0]

    def _encoded_schema(self, model: type[BaseModel]) -> tuple[dict[str, Any], str]:
        """A response model's JSON Schema and its canonical text, made once per model."""
        schema = self._schemas.get(model)
        if schema is None:
            made = schema_of(model)
            schema = self._schemas[model] = (made, canonical(made))
        return schema

    def _response_format(self, form: str, model: type[BaseModel]) -> tuple[dict[str, Any] | None, str]:
        """The `response_format` of a form and its canonical text, made once per form and model."""
        made = self._formats.get((form, model))
        if made is None:
            fmt = response_format(form, model, self._schema(model))
            made = self._formats[(form, model)] = (fmt, canonical(fmt))
        return made

    def _chat_from_journal(self, req: ChatRequest, saved: dict[str, Any]) -> ChatResult | None:
        try:
            parsed = parse_answer(saved["content"], req.response_model)
        except InvalidAnswer:
            return None
        return ChatResult(True, saved["content"], parsed, from_journal=True)

    async def _chat_one(self, key: str, req: ChatRequest) -> ChatResult:
        """Ask, validate, re-ask once with the validation error, journal the valid answer."""
        if self.collector is not None:  # batch mode: the request goes into a batch file instead
            return self.collector.chat(key, self._batch_body(req))
        tokens = [0, 0]  # prompt, completion over both asks
        content: str | None = None
        try:
            content = await self._ask(req.messages, req, tokens)
            try:
                parsed = parse_answer(content, req.response_model)
            except InvalidAnswer as exc:
                self._count("reasks")
                # A text answer that came back empty is asked again as is; a structured one is shown its error.
                messages = req.messages
                if req.response_model and content:
                    messages = reask_messages(messages, content, str(exc), self._schema(req.response_model))
                content = await self._ask(messages, req, tokens)
                parsed = parse_answer(content, req.response_model)
        except (RequestFailed, InvalidAnswer) as exc:
            self._count("failures")
            self.failing.record(False, str(exc))
            stopped = exc if isinstance(exc, AnswerStopped) else None
            return ChatResult(False, stopped.content if stopped else content, error=str(exc), prompt_tokens=tokens[0],
                              completion_tokens=tokens[1], finish_reason=stopped.finish_reason if stopped else None)
        self.failing.record(True)
        if self.journal is not None:
            self.journal.put(key, {"content": content, "prompt_tokens": tokens[0], "completion_tokens": tokens[1]})
        return ChatResult(True, content, parsed, prompt_tokens=tokens[0], completion_tokens=tokens[1])

    async def _ask(self, messages: list[dict[str, Any]], req: ChatRequest, tokens: list[int]) -> str:
        """One completion; adds its usage to `tokens`."""
        content, prompt_tokens, completion_tokens = await self._complete(messages, req)
        tokens[0] += prompt_tokens
        tokens[1] += completion_tokens
        return content

    async def _complete(self, messages: list[dict[str, Any]], req: ChatRequest) -> tuple[str, int, int]:
        """One chat completion with retries and structured-form fallback; returns (content, prompt, completion)."""
        # Token estimates only matter under a token or cost budget (configured or learned from the server's headers).
        raw_estimate = (estimate_message_tokens(messages)
                        if self.budget is not None or any(p.limiter.tokens.per_minute for p in self.pool.states)
                        else 0)
        body = self._chat_body(messages, req, None)
        structured = (messages, req) if req.response_model else None  # in the answering endpoint's form (`_attempt`)
        while True:
            try:
                data = await self._send("/chat/completions", body, raw_estimate, body.get("max_tokens"), structured)
            except FormRefused:
                continue
            except APIRefusal as exc:
                raise self._fatal(exc) from None
            except TransientError as exc:
                raise RequestFailed(f"gave up after {self.settings.max_attempts} attempts: {exc.reason}") from None
            return self._read_choice(data, raw_estimate)

    def _chat_body(self, messages: list[dict[str, Any]], req: ChatRequest, form: str | None) -> Body:
        """The request body of one chat completion, its JSON Schema sent in the structured-output `form`; the text
        of the request's own messages and of the schema is reused, not encoded again."""
        body = Body({"model": self._model, **self._base_params, **self.settings.extra_body, **req.params})
        if req.response_model and form:
            body["messages"] = structured_messages(form, messages, self._schema(req.response_model))
            fmt, fmt_text = self._response_format(form, req.response_model)
            if fmt:
                body["response_format"] = fmt
                body.encoded["response_format"] = fmt_text
        else:
            body["messages"] = messages
        if body["messages"] is req.messages:
            body.encoded["messages"] = req.encoded_messages
        return body

    def _batch_body(self, req: ChatRequest) -> dict[str, Any]:
        """A request of a batch file, in the model and structured-output form of the endpoint batch mode uses."""
        state = self.pool.batch
        body = self._chat_body(req.messages, req, self._form_chooser(state).current if req.response_model else None)
        if state.model:
            body["model"] = state.model
        return body

    def _read_choice(self, data: Any, raw_estimate: int) -> tuple[str, int, int]:
        try:
            choice = data["choices"][0]
            content = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise RequestFailed("answer without choices[0].message") from None
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        self.estimator.observe(raw_estimate, prompt_tokens)
        reason = choice.get("finish_reason")
        if reason in _STOP_REASONS:
            raise AnswerStopped(reason, content)
        return content, prompt_tokens, completion_tokens

    # ----- raw JSON posts ---------------------------------------------------------------------------------------

    def _json_from_journal(self, item: tuple[str, dict[str, Any], bool], saved: Any) -> JsonResult:
        return JsonResult(True, saved, from_journal=True)

    async def _post_one(self, key: str, item: tuple[str, dict[str, Any], bool]) -> JsonResult:
        path, body, journal = item
        if self.collector is not None and journal:
            return self.collector.post(key, path, body)
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs if isinstance(inputs, list) else []
        raw_estimate = sum(estimate_text_tokens(t) for t in texts if isinstance(t, str))
        try:
            data = await self._send(path, body, raw_estimate, None)
        except APIRefusal as exc:
            raise self._fatal(exc) from None
        except TransientError as exc:
            self._count("failures")
            reason = f"gave up after {self.settings.max_attempts} attempts: {exc.reason}"
            self.failing.record(False, reason)
            return JsonResult(False, error=reason)
        self.failing.record(True)
        if self.journal is not None and journal:
            self.journal.put(key, data)
        return JsonResult(True, data)

    # ----- one HTTP exchange ------------------------------------------------------------------------------------

    async def _send(
        self, path: str, body: dict[str, Any], raw_estimate: int, max_tokens: int | None,
        structured: Structured | None = None,
    ) -> Any:
        """POST with budgets and retries; accounts usage and follows the server's rate-limit headers.

        A `structured` request goes in the structured-output form of the endpoint it is sent to; a refusal of that
        form (4xx, or a repeated 5xx) raises FormRefused instead of retrying.
        """
        reserved = self.estimator.scaled(raw_estimate) + (max_tokens or 0)
        tried: set[int] = set()
        used: list[EndpointState] = []  # the endpoint of the latest attempt

        async def attempt() -> Any:
            while True:  # a fault of one endpoint goes at once to another not yet tried, when one is available
                state = await self.pool.acquire(tried)
                tried.add(id(state))
                used[:] = [state]
                try:
                    return await self._attempt(state, path, body, reserved, structured)
                except TransientError as exc:
                    if not (_endpoint_fault(exc) and len(tried) < len(self.pool.states)
                            and self.pool.others_available(state)):
                        raise
                    self._count("retries")

        expected = self._expected_cost(raw_estimate, max_tokens) if self.budget is not None else 0.0
        if self.budget is not None:
            await self.budget.admit(expected)
        try:
            return await self._exchange(attempt, reserved, used)
        finally:
            if self.budget is not None:
                self.budget.settle(expected)

    async def _attempt(self, state: EndpointState, path: str, body: dict[str, Any], reserved: int,
                       structured: Structured | None) -> Any:
        """One HTTP attempt at the endpoint `state` (which `self.pool.acquire` booked), keeping its health."""
        form = None
        if structured is not None:  # in the form this endpoint accepts (each server may accept another)
            form = self._form_chooser(state).current
            body = self._chat_body(*structured, form)
        if state.limiter.limiting():
            await state.limiter.acquire(reserved)
        if state.model and state.model != body.get("model", state.model):  # its own model, configured or listed
            body = body.replace(model=state.model) if isinstance(body, Body) else {**body, "model": state.model}
        started = time.monotonic()
        try:
            answer = await state.transport().request("POST", path, body)
        except Unreachable:
            self.pool.failed(state)
            self._count("unreachable")
            liveness.raise_if_dead(state.endpoint.url)
            raise
        except TransientError as exc:
            if _endpoint_fault(exc):
                self.pool.failed(state)
            else:
                self.pool.finished(state, time.monotonic() - started)
            self._count("requests")
            if exc.status is None:
                liveness.raise_if_dead(state.endpoint.url)
            if overloaded(exc):
                self.slots.overloaded(_GRANTED.get())
            if exc.status == 429:
                self._count("rate_limited")
                state.limiter.on_429(exc.headers, fallback_seconds=1.0)
            elif form and (exc.status or 0) >= 500 and self._form_chooser(state).refused(form, exc.status or 500):
                raise FormRefused from None
            raise
        except APIRefusal as exc:
            self.pool.finished(state, time.monotonic() - started)
            self._count("requests")
            if form and self._form_chooser(state).refused(form, exc.status):
                raise FormRefused from None
            raise
        self.pool.finished(state, time.monotonic() - started)
        self._count("requests")
        self._count("answered")
        self.slots.succeeded()
        if form and self._form_chooser(state).accepted(form):
            self._remember_form(state, form)
        return answer

    async def _exchange(self, attempt: Callable[[], Awaitable[Any]], reserved: int,
                        used: list[EndpointState]) -> Any:
        """Run the attempts of one request, then account its usage (before its budget booking is settled)."""
        try:  # the first attempt inline: one coroutine frame less on the path every request takes
            data, headers = await attempt()
        except TransientError as error:
            data, headers = await retry_after_failure(attempt, error, self.settings.max_attempts, self._count_retry)
        state = used[0]
        state.limiter.follow(headers)
        usage = data.get("usage") if isinstance(data, dict) else None
        if isinstance(usage, dict):
            prompt = int(usage.get("prompt_tokens") or 0)
            completion = int(usage.get("completion_tokens") or 0)
            price = self.settings.prices.get(state.model or self._model or "")
            for accounting in (self.accounting, _SCOPE.get()):
                if accounting is not None:
                    accounting.add_usage(prompt, completion, price)
            if price:
                state.cost_usd += (prompt * price.get("input", 0.0) + completion * price.get("output", 0.0)) / 1e6
            state.limiter.tokens.adjust(prompt + completion - reserved)
        return data

    def _expected_cost(self, raw_estimate: int, max_tokens: int | None) -> float:
        """What a request will likely cost: its estimated prompt, and the mean answer so far (`max_tokens` before
        the first answer)."""
        price = self.settings.prices.get(self._model or "")
        if not price:
            raise ConfigError(f"--max-cost needs the price of model {self._model!r}: add it to the prices table "
                              "(USD per 1M input and output tokens)")
        answered = self.accounting.answered
        completion = self.accounting.completion_tokens / answered if answered else (max_tokens or 0)
        prompt = self.estimator.scaled(raw_estimate)
        return (prompt * price.get("input", 0.0) + completion * price.get("output", 0.0)) / 1e6

    def _count_retry(self, error: TransientError) -> None:
        self._count("retries")

    def _fatal(self, exc: APIRefusal) -> FatalAPIError:
        return FatalAPIError(f"{exc.where or redact_url(self.settings.base_url)} refused the request: {exc}")

    async def _resolve_model(self) -> str:
        """The configured model; without one, each endpoint without its own model is asked which it serves (the
        first endpoint's is the journal key's)."""
        if self._model:
            return self._model
        unnamed = [state for state in self.pool.states if not state.model]
        for state, model in zip(unnamed, await asyncio.gather(*map(self._listed_model, unnamed)), strict=True):
            state.model = model
        self._model = self.pool.states[0].model
        return self._model or ""

    async def _listed_model(self, state: EndpointState) -> str:
        """The first model that `GET /models` of one endpoint lists; its failure names that endpoint."""
        where = state.endpoint.name

        async def list_models() -> tuple[Any, Any]:
            try:
                return await state.transport().request("GET", "/models")
            except TransientError:
                liveness.raise_if_dead(state.endpoint.url)
                raise

        try:
            data, _ = await with_retries(list_models, self.settings.max_attempts, self._count_retry)
        except APIRefusal as exc:
            raise FatalAPIError(f"{where} refused the request for its models (GET /models): {exc}") from None
        except TransientError as exc:
            raise FatalAPIError(f"cannot list models at {where}: {exc.reason}") from None
        models = [m.get("id") for m in (data.get("data") or []) if isinstance(m, dict) and m.get("id")]
        if not models:
            raise ConfigError(f"no --model given and {where} lists no models")
        return str(models[0])

    # ----- structured-form memory -------------------------------------------------------------------------------

    def _form_fact(self, state: EndpointState) -> str:
        return f"structured_form:{state.endpoint.name}:{state.model or self._model}"

    def _form_chooser(self, state: EndpointState) -> FormChooser:
        """The structured-output form of one endpoint: servers behind one stage may accept different forms."""
        if state.forms is None:
            name = self._form_fact(state)
            remembered = _REMEMBERED_FORMS.get(name)
            if remembered is None and self.journal is not None:
                remembered = self.journal.fact(name)
            state.forms = FormChooser(self.settings.structured, remembered)
        return state.forms

    def _remember_form(self, state: EndpointState, form: str) -> None:
        name = self._form_fact(state)
        _REMEMBERED_FORMS[name] = form
        if self.journal is not None:
            self.journal.set_fact(name, form)
