"""Requests that wait to be served together: each with the future its caller awaits, and the
one task per worker that drains them in groups, one session for the whole drain.

Nobody waits on purpose: a lone request starts the drain at once; the requests that arrive
while a group is being served wait, and go together in the next group.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

T = TypeVar("T")
A = TypeVar("A")


@dataclass(slots=True)
class Waiting(Generic[T, A]):
    """A request waiting for its group, and where its caller waits for the answer."""

    request: T
    future: asyncio.Future[A] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def resolve(self, outcome: A | BaseException) -> None:
        if self.future.done():  # the caller went away; what was done stands
            return
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


class GroupDrain(Generic[T, A]):
    """The waiting requests and the task that serves them, `group_size()` at a time, with
    `serve(session, group)`, which must resolve every request of the group."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        serve: Callable[[AsyncSession, list[Waiting[T, A]]], Awaitable[None]],
        group_size: Callable[[], int],
        *,
        name: str,
        own_context: bool = False,
    ) -> None:
        self._session_factory = session_factory
        self._serve = serve
        self._group_size = group_size
        self._name = name
        self._own_context = own_context
        self._waiting: list[Waiting[T, A]] = []
        self._drainer: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    async def answer(self, request: T) -> A:
        """Wait for the request's turn in a group; its answer, or what it raised."""
        waiting: Waiting[T, A] = Waiting(request)
        self._waiting.append(waiting)
        if self._drainer is None:
            # Nothing is being served: start the drain, which keeps serving until nobody waits.
            # `own_context`: its log lines must not carry the id of the request that started it.
            context = contextvars.Context() if self._own_context else None
            self._drainer = asyncio.create_task(self._drain(), context=context)
        return await waiting.future

    async def _drain(self) -> None:
        waiting = self._waiting
        # One session for every transaction of this drain; each transaction ends (commit or
        # rollback) inside it, handing its connection back between groups.
        session = self._session_factory()
        try:
            while waiting:
                # One turn of the event loop first: requests already read from their sockets
                # arrive and join this group instead of waiting for the next.
                await asyncio.sleep(0)
                size = self._group_size()
                group = waiting[:size]
                del waiting[:size]
                await self._serve(session, group)
        finally:
            # No await between the last emptiness check and this line, so no request can
            # slip into a list that nobody drains.
            self._drainer = None
            for left in waiting:  # only if serving itself blew up
                left.resolve(RuntimeError(f"{self._name} stopped"))
            waiting.clear()
