"""OpenTelemetry metrics and traces for a client, fed by its hooks.

::

    from aiotts import TTSClient
    from aiotts.otel import telemetry_hooks

    async with TTSClient(hooks=telemetry_hooks()) as client:   # the global providers
        ...

Needs the ``otel`` extra (``opentelemetry-api``); without an SDK configured, the API's
no-op providers make every instrument free. ``telemetry_hooks`` returns a plain ``Hooks``,
so it combines with a user's own: ``TTSClient(hooks=[telemetry_hooks(), mine])``.

Metrics (meter ``aiotts``):

* ``aiotts.requests`` (counter) and ``aiotts.request.duration`` (histogram, s): every answer,
  by ``aiotts.request.kind`` (``poll``, ``token``, ``submit``, ``status``, ``fetch``,
  ``download``, ``cancel``), ``http.request.method`` and ``http.response.status_code``;
* ``aiotts.retries`` and ``aiotts.throttled`` (counters, by kind): retries scheduled, and
  429 answers; ``aiotts.slowdowns`` (counter): times the rate limiter slowed the client;
* ``aiotts.token.refreshes`` (counter);
* ``aiotts.files`` and ``aiotts.bytes_written`` (counters, By): result files that took
  their final name;
* ``aiotts.tasks`` (counter) and ``aiotts.task.duration`` (histogram, s): each task's
  ending, by ``aiotts.task.state``; the duration runs from when the client took the task
  in to its ending (for ``done``, to its file being whole). Ids skipped on resume count in
  ``aiotts.tasks`` with ``aiotts.resumed=true`` and no duration.

Traces (tracer ``aiotts``): one span ``aiotts.task`` per task, from when it is taken in to
its ending, in the context current when it was taken in; each state change is a span
event; the ending sets ``aiotts.task.state`` and, for every ending but ``done`` and
``cancelled``, an error status with the outcome's error text. The span is made when the
task ends, from the moves noted on the way (a time and a state each), so taking a task in
costs a note, not a span, and a poll waits for no tracing. ``spans=False`` leaves traces
out (for millions of tasks, say).

Nothing here runs per poll unless it is measured: an answer is one counter add and one
histogram record; a poll that changes nothing else costs nothing more.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

try:
    from opentelemetry import context, metrics, trace
    from opentelemetry.trace import Status, StatusCode
except ImportError as exc:  # pragma: no cover -- the extra is missing
    raise ImportError(
        "aiotts.otel needs OpenTelemetry's API: install the extra, pip install 'aiotts[otel]'"
    ) from exc

from aiotts._hooks import (
    FileWritten,
    Hooks,
    RateChanged,
    RequestFinished,
    RetryScheduled,
    TaskStateChanged,
    Throttled,
    TokenRefreshed,
)
from aiotts._models import OutcomeState

__all__ = ["Telemetry", "telemetry_hooks"]

_SCOPE = "aiotts"
_OK_ENDINGS = (OutcomeState.DONE, OutcomeState.CANCELLED)


def _version() -> str:
    import aiotts

    return aiotts.__version__


class _Moves:
    """A task's moves so far, for the span made when it ends."""

    __slots__ = ("context", "moves")

    def __init__(self, started: context.Context) -> None:
        self.context = started
        self.moves: list[tuple[str, str | None, float]] = []


class Telemetry:
    """The instruments and open spans of one client. Its methods are the hooks."""

    def __init__(
        self,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        spans: bool = True,
    ) -> None:
        self._with_spans = spans
        meter = metrics.get_meter(_SCOPE, _version(), meter_provider)
        self._tracer = trace.get_tracer(_SCOPE, _version(), tracer_provider)
        # Answers are counted here and read at each collection (an observable counter): an
        # answer costs a dict increment, not a measurement through the SDK.
        self._answers: Counter[tuple[str, str, int]] = Counter()
        meter.create_observable_counter(
            "aiotts.requests",
            callbacks=[self._observe_answers],
            unit="{request}",
            description="Answers received, by kind and status",
        )
        self._request_time = meter.create_histogram(
            "aiotts.request.duration", unit="s", description="From sending to the status line"
        )
        self._retries = meter.create_counter(
            "aiotts.retries", unit="{retry}", description="Requests sent again"
        )
        self._throttled = meter.create_counter(
            "aiotts.throttled", unit="{answer}", description="429 answers"
        )
        self._slowdowns = meter.create_counter(
            "aiotts.slowdowns", unit="{slowdown}", description="Times the client slowed down"
        )
        self._tokens = meter.create_counter(
            "aiotts.token.refreshes", unit="{token}", description="Tokens received"
        )
        self._files = meter.create_counter(
            "aiotts.files", unit="{file}", description="Result files written whole"
        )
        self._bytes = meter.create_counter(
            "aiotts.bytes_written", unit="By", description="Bytes of result files written"
        )
        self._tasks = meter.create_counter(
            "aiotts.tasks", unit="{task}", description="Task endings, by state"
        )
        self._task_time = meter.create_histogram(
            "aiotts.task.duration", unit="s", description="From taking a task in to its ending"
        )
        self._open: dict[str, _Moves] = {}
        self._attributes: dict[tuple[str, str, int], dict[str, str | int]] = {}

    def __repr__(self) -> str:
        return f"<Telemetry tasks_open={len(self._open)}>"

    def hooks(self) -> Hooks:
        return Hooks(
            on_state=self.on_state,
            on_retry=self.on_retry,
            on_throttle=self.on_throttle,
            on_rate=self.on_rate,
            on_token=self.on_token,
            on_file=self.on_file,
            on_request=self.on_request,
        )

    def on_request(self, event: RequestFinished) -> None:
        key = (event.kind, event.method, event.status)
        self._answers[key] += 1
        attributes = self._attributes.get(key)
        if attributes is None:
            attributes = self._attributes[key] = {
                "aiotts.request.kind": event.kind,
                "http.request.method": event.method,
                "http.response.status_code": event.status,
            }
        self._request_time.record(event.seconds, attributes)

    def _observe_answers(self, options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        for key, count in list(self._answers.items()):
            yield metrics.Observation(count, self._attributes[key])

    def on_retry(self, event: RetryScheduled) -> None:
        self._retries.add(1, {"aiotts.request.kind": event.kind})

    def on_throttle(self, event: Throttled) -> None:
        self._throttled.add(1, {"aiotts.request.kind": event.kind})

    def on_rate(self, event: RateChanged) -> None:
        self._slowdowns.add(1)

    def on_token(self, event: TokenRefreshed) -> None:
        self._tokens.add(1)

    def on_file(self, event: FileWritten) -> None:
        self._files.add(1)
        self._bytes.add(event.bytes_written)

    def on_state(self, event: TaskStateChanged) -> None:
        outcome = event.outcome
        if outcome is None:
            if not self._with_spans:
                return
            noted = self._open.get(event.task_id)
            if noted is None:
                noted = self._open[event.task_id] = _Moves(context.get_current())
            noted.moves.append((event.state, event.previous, event.at))
            return
        state = outcome.state
        attributes: dict[str, Any] = {"aiotts.task.state": state.value}
        if outcome.resumed:
            self._tasks.add(1, {**attributes, "aiotts.resumed": True})
            return
        self._tasks.add(1, attributes)
        if event.elapsed is not None:
            self._task_time.record(event.elapsed, attributes)
        noted = self._open.pop(event.task_id, None)
        if noted is None:
            return  # a second subscriber's ending, or a task never taken in here
        first_at = noted.moves[0][2] if noted.moves else event.at
        span = self._tracer.start_span(
            "aiotts.task",
            context=noted.context,
            attributes={"aiotts.task.id": event.task_id},
            start_time=_nanoseconds(first_at),
        )
        for moved_to, moved_from, at in noted.moves:
            span.add_event(moved_to, _previous(moved_from), timestamp=_nanoseconds(at))
        span.add_event(state.value, _previous(event.previous), timestamp=_nanoseconds(event.at))
        span.set_attribute("aiotts.task.state", state.value)
        if outcome.bytes_written:
            span.set_attribute("aiotts.bytes_written", outcome.bytes_written)
        if state not in _OK_ENDINGS:
            span.set_status(Status(StatusCode.ERROR, outcome.error or state.value))
        span.end(end_time=_nanoseconds(event.at))


def _nanoseconds(seconds: float) -> int:
    return int(seconds * 1e9)


def _previous(previous: str | None) -> dict[str, str]:
    return {"aiotts.task.previous": previous} if previous else {}


def telemetry_hooks(
    meter_provider: metrics.MeterProvider | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    *,
    spans: bool = True,
) -> Hooks:
    """Hooks that feed OpenTelemetry: pass them as ``TTSClient(hooks=...)``. Without
    providers, the global ones (``opentelemetry.metrics``/``trace``) are used;
    ``spans=False`` records metrics only. One value per client: it keeps that client's
    tasks in flight until they end."""
    return Telemetry(meter_provider, tracer_provider, spans=spans).hooks()
