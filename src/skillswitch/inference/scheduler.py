"""Requests queue per expert; batches form per expert; one worker thread owns every model.

Which queue runs next is ``policy.choose_next`` (resident experts first, a fairness cap, swaps only
when a queue is worth the load). Explicit loads, unloads and embedding calls run on the same
thread, before the next batch, so no two threads ever touch a model.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from skillswitch.exceptions import (
    BackendClosedError,
    ChatTemplateError,
    GenerationCancelledError,
    MessagesRefusedError,
    PromptTooLongError,
    SkillSwitchError,
)
from skillswitch.inference.decode import decode_batch
from skillswitch.inference.decode_rows import DecodeStats
from skillswitch.inference.grammar import GrammarMatcher, start_matcher
from skillswitch.inference.loading import LoadedModel
from skillswitch.inference.policy import QueueView, SchedulerSettings, choose_next
from skillswitch.inference.requests import Conversation, GenerationParams, GenerationResult
from skillswitch.inference.residency import Residency
from skillswitch.inference.tool_calls import history_format, template_messages, tool_call_format

__all__ = ["GenerationHandle", "Prompt", "Scheduler", "SchedulerSettings", "SchedulerStats"]

T = TypeVar("T")
Prompt = str | Sequence[Mapping[str, Any]] | Conversation
"""Raw text (a completion), or chat messages with or without tools (rendered with the model's
chat template)."""
_DONE = object()


@dataclass(slots=True)
class SchedulerStats:
    batches: int = 0
    requests: int = 0
    generated_tokens: int = 0
    busy_s: float = 0.0
    largest_batch: int = 0


class GenerationHandle:
    """A submitted generation: stream its text, await its result, or cancel it.

    Made by ``Scheduler.submit``; usable from the event loop it was submitted on (``stream``,
    ``result``) and from any thread (``result_sync``, ``cancel``).
    """

    def __init__(self, job_id: int, model: str, loop: asyncio.AbstractEventLoop | None) -> None:
        self.id = job_id
        self.model = model
        self._loop = loop
        self._chunks: asyncio.Queue[Any] | None = asyncio.Queue() if loop else None
        self._finished: asyncio.Event | None = asyncio.Event() if loop else None
        self._done = threading.Event()
        self._result: GenerationResult | None = None
        self._error: BaseException | None = None
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Stop generating; the result keeps the text so far with finish reason "cancelled"."""
        self._cancelled = True

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def stream(self) -> AsyncIterator[str]:
        """Text chunks as they are generated; raises the generation's error, if any."""
        if self._chunks is None:
            raise RuntimeError("stream() needs the handle to be submitted from an event loop")
        try:
            while (chunk := await self._chunks.get()) is not _DONE:
                yield chunk
        except asyncio.CancelledError:
            self.cancel()
            raise
        if self._error is not None:
            raise self._error

    async def result(self) -> GenerationResult:
        """The finished generation (whether or not ``stream`` was read)."""
        if self._finished is None:
            raise RuntimeError("result() needs the handle to be submitted from an event loop")
        try:
            await self._finished.wait()
        except asyncio.CancelledError:
            self.cancel()
            raise
        if self._error is not None:
            raise self._error
        assert self._result is not None  # set before _finished
        return self._result

    def result_sync(self, timeout: float | None = None) -> GenerationResult:
        if not self._done.wait(timeout):
            self.cancel()
            raise TimeoutError(f"generation {self.id} did not finish within {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    # --- called by the worker thread -------------------------------------------------------

    def _push(self, item: Any) -> None:
        if self._loop is None or self._chunks is None:
            return
        with contextlib.suppress(RuntimeError):  # the caller's loop has closed: nobody listens
            self._loop.call_soon_threadsafe(self._chunks.put_nowait, item)

    def _finish(self, result: GenerationResult | None, error: BaseException | None) -> None:
        if self._done.is_set():
            return
        self._result, self._error = result, error
        self._done.set()
        self._push(_DONE)
        if self._loop is not None and self._finished is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._finished.set)


class _Job:
    """A queued request; implements ``DecodeRow`` for the decode loop."""

    def __init__(
        self, handle: GenerationHandle, prompt: Prompt, params: GenerationParams, incremental: bool
    ) -> None:
        self.handle = handle
        self.prompt = prompt
        self.params = params
        self.incremental = incremental
        self.prompt_ids: list[int] = []
        self.grammar: GrammarMatcher | None = None
        self.submitted = time.monotonic()

    @property
    def cancelled(self) -> bool:
        return self.handle.cancelled

    def emit(self, text: str) -> None:
        self.handle._push(text)

    def finish(self, result: GenerationResult) -> None:
        self.handle._finish(result, None)

    def fail(self, error: BaseException) -> None:
        self.handle._finish(None, error)


class Scheduler:
    def __init__(
        self,
        residency: Residency,
        settings: SchedulerSettings | None = None,
        *,
        runner: Callable[..., None] = decode_batch,
    ) -> None:
        self._residency = residency
        self.settings = settings or SchedulerSettings()
        self._runner = runner
        self._queues: dict[str, deque[_Job]] = {}
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._wake = threading.Condition()
        self._ids = itertools.count(1)
        self._closed = False
        self.stats = SchedulerStats()
        self.decode_stats: dict[str, DecodeStats] = {}
        """Prefill and decode time per model."""
        self._thread = threading.Thread(
            target=self._work, name="skillswitch-inference", daemon=True
        )
        self._thread.start()

    def submit(
        self, model: str, prompt: Prompt, params: GenerationParams, *, stream: bool = True
    ) -> GenerationHandle:
        """Queue a generation. ``stream=False``: the text arrives as one chunk at the end
        (no per-token detokenizing, which costs CPU time per row and step)."""
        return self.submit_together(model, [prompt], params, stream=stream)[0]

    def submit_together(
        self,
        model: str,
        prompts: Sequence[Prompt],
        params: GenerationParams,
        *,
        stream: bool = True,
    ) -> list[GenerationHandle]:
        """Queue several generations at once: the worker finds them queued together, so they
        start in one batch (up to ``max_batch_size``) unless others were queued before."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        handles = [GenerationHandle(next(self._ids), model, loop) for _ in prompts]
        jobs = [_Job(h, p, params, stream) for h, p in zip(handles, prompts, strict=True)]
        with self._wake:
            if self._closed:
                raise BackendClosedError("the local inference backend is closed")
            self._queues.setdefault(model, deque()).extend(jobs)
            self._wake.notify()
        return handles

    def call(self, function: Callable[[], T]) -> Future[T]:
        """Run ``function`` on the worker thread (which owns the models), between batches."""
        future: Future[T] = Future()
        with self._wake:
            if self._closed:
                raise BackendClosedError("the local inference backend is closed")
            self._calls.put((function, future))
            self._wake.notify()
        return future

    def queued(self) -> dict[str, int]:
        with self._wake:
            return {name: len(q) for name, q in self._queues.items() if q}

    def close(self, timeout: float = 30.0) -> None:
        """Stop: queued requests fail with a clear error; the running batch is cancelled."""
        with self._wake:
            self._closed = True
            pending = [job for q in self._queues.values() for job in q]
            self._queues.clear()
            self._wake.notify()
        for job in pending:
            job.handle.cancel()
            job.fail(GenerationCancelledError("the local inference backend was closed"))
        self._thread.join(timeout)

    # --- the worker thread -----------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._wake:
                batch: list[_Job] = []
                call = None
                while not batch and call is None:
                    if not self._calls.empty():
                        call = self._calls.get_nowait()
                        break
                    if self._closed:
                        return
                    model, wait_s = self._pick(time.monotonic())
                    if model is None:
                        self._wake.wait(wait_s)
                        continue
                    batch = self._take(model)
            if call is not None:
                self._run_call(*call)
            elif batch:
                self._run_batch(batch[0].handle.model, batch)

    def _pick(self, now: float) -> tuple[str | None, float | None]:
        views = []
        for name, pending in self._queues.items():
            if not pending:
                continue
            resident = self._residency.is_resident(name)
            try:
                fits = resident or self._residency.fits_without_eviction(name)
            except SkillSwitchError:
                fits = True  # an unknown model: let its batch fail with the error
            views.append(QueueView(name, len(pending), pending[0].submitted, resident, fits))
        return choose_next(views, self.settings, now)

    def _take(self, model: str, room: int | None = None) -> list[_Job]:
        pending = self._queues[model]
        batch: list[_Job] = []
        while pending and len(batch) < (room or self.settings.max_batch_size):
            batch.append(pending.popleft())
        return batch

    def _run_call(self, function: Callable[[], Any], future: Future[Any]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(function())
        except BaseException as exc:
            future.set_exception(exc)

    def _run_batch(self, model: str, batch: list[_Job]) -> None:
        started = time.perf_counter()
        self.stats.batches += 1  # counted before any job finishes: readers see it at once
        self.stats.requests += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        try:
            loaded = self._residency.acquire(model)
        except Exception as exc:
            for job in batch:
                job.fail(exc)
            return
        members = list(batch)

        def join(room: int) -> list[_Job]:
            joined = self._join(model, room)
            members.extend(joined)
            running = self.settings.max_batch_size - room + len(joined)
            self.stats.largest_batch = max(self.stats.largest_batch, running)
            return [job for job in joined if self._prepare(loaded, job)]

        try:
            ready = [job for job in batch if self._prepare(loaded, job)]
            if ready:
                self._runner(
                    loaded,
                    ready,
                    queued_s=lambda j: time.monotonic() - j.submitted,
                    stats=self.decode_stats.setdefault(model, DecodeStats()),
                    join=join if self.settings.join_running else None,
                    max_rows=self.settings.max_batch_size,
                    static=self.settings.static_decode,
                    compiled=self.settings.compile_decode,
                    ahead=self.settings.decode_ahead,
                )
        except Exception as exc:
            for job in members:
                job.fail(exc)
        finally:
            self._residency.release(model)
            self.stats.busy_s += time.perf_counter() - started
            self.stats.generated_tokens += sum(
                job.handle._result.completion_tokens for job in members if job.handle._result
            )

    def _join(self, model: str, room: int) -> list[_Job]:
        """Queued requests for ``model`` that may join its running batch now: none while another
        model's request has waited past the fairness cap, or an explicit call is waiting."""
        with self._wake:
            if self._closed or not self._calls.empty():
                return []
            now = time.monotonic()
            for name, pending in self._queues.items():
                if (
                    name != model
                    and pending
                    and now - pending[0].submitted >= self.settings.max_wait_s
                ):
                    return []
            joined = self._take(model, room) if self._queues.get(model) else []
        self.stats.requests += len(joined)
        return joined

    def _prepare(self, loaded: LoadedModel, job: _Job) -> bool:
        """Tokenize the prompt and start its grammar; a prompt the model cannot take fails alone,
        with the reason."""
        try:
            job.prompt_ids = tokenize_prompt(loaded, job.prompt)
            limit = loaded.max_positions
            if limit is not None and len(job.prompt_ids) >= limit:
                raise PromptTooLongError(loaded.name, len(job.prompt_ids), limit)
            if job.params.grammar is not None:
                job.grammar = start_matcher(loaded, job.params.grammar)
        except SkillSwitchError as exc:
            job.fail(exc)
            return False
        return True


def tokenize_prompt(loaded: LoadedModel, prompt: Prompt) -> list[int]:
    tokenizer = loaded.tokenizer
    if isinstance(prompt, str):
        return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateError(
            f"model {loaded.name!r} has no chat template; send a completion "
            "(/v1/completions) or add chat_template.jinja to its folder"
        )
    messages, tools = (
        (prompt.messages, prompt.tools) if isinstance(prompt, Conversation) else (prompt, ())
    )
    declared = loaded.tool_call_format
    form = (
        tool_call_format(tokenizer, loaded.name, declared)
        if tools
        else history_format(tokenizer, declared)
    )
    try:
        rendered = tokenizer.apply_chat_template(
            template_messages(messages, form),
            tools=[dict(tool) for tool in tools] or None,
            add_generation_prompt=True,
            tokenize=False,
        )
    except Exception as exc:  # the template's own checks (raise_exception) or its errors
        raise MessagesRefusedError(
            f"model {loaded.name!r}'s chat template cannot render these messages: "
            f"{type(exc).__name__}: {exc}; change the messages as it says"
        ) from None
    return list(tokenizer(rendered, add_special_tokens=False)["input_ids"])
