"""The event hub: one subscription to the master's event stream per console process, fanned
out to every browser over Server-Sent Events.

::

    master ──WaitEvents (long-poll, from last seq)──▶ EventHub._follow ──▶ Subscription queues
                                                         │ dirty              (bounded; a full one
    master ◀──ListWorkers/ListRuns/ListGates── _refresh ◀┘                     is dropped)

* ``_follow`` owns one connection (``connect()``), long-polls ``wait_events`` from the last
  sequence number it delivered and, when the connection breaks, dials again with a capped
  backoff and resumes from that number. A ``reset`` answer (it fell behind the master's window,
  or the master restarted) becomes a ``reload`` message: pages re-read their state.
* Each batch becomes a few messages: ``runs`` and ``workers`` nudges (JSON lists of what
  changed; pages re-fetch a fragment on them), and for subscribers of one run its ``job``,
  ``log`` and ``run`` events (JSON, one per event).
* ``_refresh`` owns a second connection and recomputes the status line and the gate banner
  (``snapshot(client)``) when a batch says something changed, at most once per
  ``refresh_interval``; ``render(status)`` turns it into messages (HTML fragments) that are
  sent to everyone and kept for new subscribers.
* Fan-out never blocks: a subscriber whose queue is full is dropped (its stream ends; the
  browser reconnects and re-reads), the others go on.

Blocking client calls go through ``call``: direct in the monkey-patched console process (the
socket is cooperative there), in gevent's threadpool elsewhere (tests run unpatched).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import gevent.queue
from gevent.event import Event as GEvent
from gevent.pool import Group

from titan_actors.errors import TitanError
from titan_actors.wire.messages.master import Event, EventBatch, EventKind

from .sse import sse, sse_json

log = logging.getLogger("titan.web.events")

_FAR = 1 << 60  # a position past any real one: wait_events(_FAR, 0) answers at once
Message = bytes


def default_call() -> Callable[..., Any]:
    """How to make a blocking client call without stalling the other greenlets."""
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        return lambda fn, *args: fn(*args)
    from titan_actors.offload import run_in_thread

    # the error comes back to the caller as a value: gevent's pool would also report it to
    # the hub as unhandled (a connection closed by stop() is expected, not a crash)
    return lambda fn, *args: run_in_thread(fn, *args)


_CLOSED = object()  # put in a stream's queue to wake its reader when it is dropped


class Subscription:
    """One browser's stream: a bounded queue of encoded messages. ``run_id``: also receive
    that run's job, log and run events."""

    def __init__(self, run_id: str, size: int) -> None:
        self.run_id = run_id
        self.dropped = False
        self._queue: gevent.queue.Queue = gevent.queue.Queue(maxsize=size)

    def offer(self, message: Message) -> bool:
        """Queue ``message`` without waiting; False when the queue is full."""
        try:
            self._queue.put_nowait(message)
            return True
        except gevent.queue.Full:
            return False

    def get(self, timeout: float) -> Message | None:
        """The next message, or None after ``timeout`` seconds (or at once when dropped)."""
        if self.dropped:
            return None
        try:
            message = self._queue.get(timeout=timeout)
        except gevent.queue.Empty:
            return None
        return None if message is _CLOSED else message

    def close(self) -> None:
        """Drop this stream and wake its reader now (it ends instead of waiting for its next
        keepalive)."""
        self.dropped = True
        try:
            self._queue.put_nowait(_CLOSED)
        except gevent.queue.Full:  # the reader has plenty to wake it, and it checks dropped
            pass

    def pending(self) -> int:
        return self._queue.qsize()


class EventHub:
    """See the module docstring.

    Args:
        connect: returns a new client (``wait_events``, and what ``snapshot`` uses); its
            ``close()`` is called when it is dropped.
        snapshot: ``snapshot(client)`` -> the state the status line shows (None: no status).
        render: ``render(status)`` -> ``[(event, data)]`` messages sent to every subscriber
            and kept for new ones.
        unreachable: ``unreachable(error_text)`` -> the status while the master is away.
        queue_size: messages one subscriber may have pending before it is dropped.
        max_subscribers: streams open at once; :meth:`subscribe` refuses more.
        long_poll: seconds of each ``wait_events``.
        retry: first and largest delay between two connection attempts.
        refresh_interval: least time between two status refreshes.
        call: how blocking calls are made (see :func:`default_call`).
    """

    def __init__(self, connect: Callable[[], Any], *,
                 snapshot: Callable[[Any], Any] | None = None,
                 render: Callable[[Any], Iterable[tuple[str, str]]] | None = None,
                 unreachable: Callable[[str], Any] | None = None,
                 queue_size: int = 256, max_subscribers: int = 200, long_poll: float = 25.0,
                 retry: tuple[float, float] = (0.05, 2.0), refresh_interval: float = 0.5,
                 call: Callable[..., Any] | None = None) -> None:
        self._connect = connect
        self._snapshot = snapshot
        self._render = render or (lambda status: ())
        self._unreachable = unreachable or (lambda error: None)
        self._queue_size = queue_size
        self._max_subscribers = max_subscribers
        self._long_poll = long_poll
        self._retry = retry
        self._refresh_interval = refresh_interval
        self._call = call
        self._subscribers: set[Subscription] = set()
        self._current: dict[str, Message] = {}  # the latest status fragments, by event name
        self._group = Group()
        self._stopping = GEvent()
        self._dirty = GEvent()
        self.last_seq: int | None = None
        self.live = False
        self.status: Any = None
        self.counters = {"events": 0, "batches": 0, "resets": 0, "connects": 0,
                         "dropped": 0, "refreshes": 0}

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> "EventHub":
        if self._call is None:
            self._call = default_call()
        for body in (self._follow, self._refresh_loop):
            greenlet = self._group.spawn(body)
            greenlet.link_exception(self._crashed)
        self._dirty.set()  # the first status, even before the first event
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both greenlets and end every stream."""
        self._stopping.set()
        self._dirty.set()
        for subscription in list(self._subscribers):
            self._drop(subscription, count=False)
        self._group.kill(timeout=timeout)

    def _crashed(self, greenlet: gevent.Greenlet) -> None:
        log.error("the event hub's %s crashed: %r", greenlet, greenlet.exception)
        self.live = False

    # -- subscribers --------------------------------------------------------------------------

    def subscribe(self, run_id: str = "") -> Subscription | None:
        """A new stream, primed with the latest status fragments; None when too many are open
        (the caller answers 503), or once the hub is stopping."""
        if len(self._subscribers) >= self._max_subscribers or self._stopping.is_set():
            return None
        subscription = Subscription(run_id, self._queue_size)
        for message in self._current.values():
            subscription.offer(message)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _drop(self, subscription: Subscription, count: bool = True) -> None:
        subscription.close()
        self._subscribers.discard(subscription)
        if count:
            self.counters["dropped"] += 1
            log.info("dropped a slow event stream (%d messages pending)",
                     subscription.pending())

    def broadcast(self, message: Message, run_id: str | None = None) -> None:
        """Queue ``message`` for every subscriber (``run_id``: those of that run only)."""
        for subscription in list(self._subscribers):
            if run_id is not None and subscription.run_id != run_id:
                continue
            if not subscription.offer(message):
                self._drop(subscription)

    # -- following the master -----------------------------------------------------------------

    def _follow(self) -> None:
        delay = self._retry[0]
        while not self._stopping.is_set():
            client = None
            try:
                client = self._call(self._connect)
                self.counters["connects"] += 1
                if self.last_seq is None:  # first time: from now (pages read the state)
                    self.last_seq = self._call(client.wait_events, _FAR, 0.0).last_seq
                self.live = True
                self.request_refresh()
                delay = self._retry[0]
                while not self._stopping.is_set():
                    self.deliver(self._call(client.wait_events, self.last_seq, self._long_poll))
            except (TitanError, OSError) as error:
                if self.live:
                    log.warning("lost the master's event stream: %s", error)
                self.live = False
                self._publish_status(self._unreachable(str(error)))
            except Exception:  # a bug here must not end live updates for good: log, go on
                log.exception("the event hub failed; following the master again")
                self.live = False
            finally:
                if client is not None:
                    _close(client)
            self._stopping.wait(delay)  # woken at once by stop()
            delay = min(delay * 2, self._retry[1])

    def deliver(self, batch: EventBatch) -> None:
        """Fan one batch out (public for tests that feed batches by hand)."""
        self.counters["batches"] += 1
        self.counters["events"] += len(batch.events)
        if batch.reset:
            self.counters["resets"] += 1
            self.broadcast(sse("reload", "the event stream was reset"))
            self.request_refresh()
        runs: dict[str, None] = {}
        workers = False
        for event in batch.events:
            if event.kind is EventKind.WORKER:
                workers = True
                self.request_refresh()
                continue
            if event.kind is EventKind.JOB and event.job_state is not None:
                workers = workers or bool(event.worker)
            if event.kind is not EventKind.LOG:
                runs[event.run_id] = None
                self.request_refresh()
            self.broadcast(sse_json(_NAMES[event.kind], event_json(event), str(event.seq)),
                           run_id=event.run_id)
        if runs:
            self.broadcast(sse_json("runs", list(runs)))
        if workers:
            self.broadcast(sse_json("workers", []))
        self.last_seq = batch.last_seq

    # -- the status line ----------------------------------------------------------------------

    def request_refresh(self) -> None:
        self._dirty.set()

    def _refresh_loop(self) -> None:
        client = None
        while not self._stopping.is_set():
            self._dirty.wait()
            if self._stopping.is_set() or self._snapshot is None:
                return
            self._dirty.clear()
            try:
                if client is None:
                    client = self._call(self._connect)
                status = self._call(self._snapshot, client)
            except (TitanError, OSError) as error:
                if client is not None:
                    _close(client)
                    client = None
                status = self._unreachable(str(error))
            except Exception:  # a bug in reading the status: keep the last one, go on
                log.exception("reading the status for the status line failed")
                continue
            self.counters["refreshes"] += 1
            self._publish_status(status)
            self._stopping.wait(self._refresh_interval)  # at most one refresh per interval
        if client is not None:
            _close(client)

    def _publish_status(self, status: Any) -> None:
        if status is None:
            return
        self.status = status
        for event, data in self._render(status):
            message = sse(event, data)
            if self._current.get(event) != message:
                self._current[event] = message
                self.broadcast(message)


_NAMES = {EventKind.JOB: "job", EventKind.RUN: "run", EventKind.WORKER: "worker",
          EventKind.LOG: "log"}


def event_json(event: Event) -> dict:
    """An event as the JSON the pages' scripts read."""
    return {"seq": event.seq, "at": event.at, "kind": _NAMES[event.kind],
            "run_id": event.run_id, "job_id": event.job_id,
            "state": event.job_state.value if event.job_state is not None else None,
            "run_state": event.run_state.value if event.run_state is not None else None,
            "attempt": event.attempt, "worker": event.worker, "detail": event.detail}


def _close(client: Any) -> None:
    try:
        client.close()
    except Exception:  # closing a broken connection: nothing more to do
        log.debug("closing a client failed", exc_info=True)

