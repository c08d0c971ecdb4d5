"""``/metrics``: the Prometheus text exposition format (version 0.0.4), written by hand.

Figures come from one :class:`~titan_web.status.Status` read at scrape time, plus the
console's own counters (event hub, streams).
"""

from __future__ import annotations

from collections.abc import Iterable

from titan_actors.scheduler.model import JobState, RunState

from .status import Status

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help: str,
               samples: Iterable[tuple[dict[str, str], float]]) -> None:
        self.lines.append(f"# HELP {name} {help}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def exposition(status: Status, hub_counters: dict[str, int], hub_live: bool,
               subscribers: int, log_streams: int) -> str:
    """The whole ``/metrics`` body."""
    out = _Writer()
    out.metric("titan_master_up", "gauge", "1 when the master answered this scrape.",
               [({}, 1 if status.reachable else 0)])
    if status.reachable:
        out.metric("titan_persistence_degraded", "gauge", "1 while the master or its store "
                   "cannot write its append-only file (changes are refused).",
                   [({}, 1 if status.degraded else 0)])
        out.metric("titan_jobs", "gauge", "Jobs by state, over the runs the master keeps.",
                   [({"state": s.value}, status.jobs.get(s.value, 0)) for s in JobState])
        out.metric("titan_jobs_queued", "gauge", "Jobs ready and waiting for a worker.",
                   [({}, status.queued)])
        out.metric("titan_jobs_running", "gauge", "Jobs running on a worker.",
                   [({}, status.running)])
        out.metric("titan_runs", "gauge", "Runs by state.",
                   [({"state": s.value}, status.runs.get(s.value, 0)) for s in RunState])
        out.metric("titan_workers", "gauge", "Workers the master knows.",
                   [({"connected": "true"}, status.workers_connected),
                    ({"connected": "false"}, len(status.workers) - status.workers_connected)])
        out.metric("titan_worker_slots", "gauge", "Job slots of connected workers.",
                   [({"worker": w.name}, w.slots) for w in status.workers if w.connected])
        out.metric("titan_worker_running", "gauge", "Slots taken on connected workers.",
                   [({"worker": w.name}, w.running) for w in status.workers if w.connected])
        out.metric("titan_gates_waiting", "gauge", "Approval gates waiting for a decision.",
                   [({}, len(status.gates))])
    out.metric("titan_web_event_stream_up", "gauge",
               "1 while the console follows the master's event stream.",
               [({}, 1 if hub_live else 0)])
    out.metric("titan_web_events_total", "counter", "Events received from the master.",
               [({}, hub_counters.get("events", 0))])
    out.metric("titan_web_event_stream_connects_total", "counter",
               "Connections made to follow the event stream.",
               [({}, hub_counters.get("connects", 0))])
    out.metric("titan_web_event_resets_total", "counter",
               "Times the event stream said events were lost (pages were told to reload).",
               [({}, hub_counters.get("resets", 0))])
    out.metric("titan_web_streams_dropped_total", "counter",
               "Browser streams dropped because they fell behind.",
               [({}, hub_counters.get("dropped", 0))])
    out.metric("titan_web_streams", "gauge", "Browser event streams open.",
               [({"kind": "events"}, subscribers), ({"kind": "logs"}, log_streams)])
    return out.text()
