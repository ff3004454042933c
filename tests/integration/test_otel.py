"""``aiotts.otel`` against the emulator, read with the OpenTelemetry SDK's in-memory reader
and exporter: the counters and histograms, and one span per task with its state changes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from aiotts.emulator import Emulator
from aiotts.otel import telemetry_hooks
from tests.helpers import client_for
from tests.hostile.servers import HostileServer
from tests.hostile.transport import TASK_ID, TTS_PATH, client_of, completed

pytestmark = pytest.mark.anyio


@dataclass
class Sdk:
    reader: InMemoryMetricReader
    spans: InMemorySpanExporter
    meters: MeterProvider
    tracers: TracerProvider

    def hooks(self) -> Any:
        return telemetry_hooks(self.meters, self.tracers)

    def points(self) -> dict[str, list[Any]]:
        """Each metric's data points, by name."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                assert scope.scope.name == "aiotts"
                for metric in scope.metrics:
                    found[metric.name] = list(metric.data.data_points)
        return found

    def total(self, name: str, **attributes: object) -> float:
        return sum(
            point.value
            for point in self.points().get(name, [])
            if all(point.attributes.get(k) == v for k, v in attributes.items())
        )

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())


@pytest.fixture
def sdk() -> Iterator[Sdk]:
    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    tracers = TracerProvider()
    tracers.add_span_processor(SimpleSpanProcessor(spans))
    meters = MeterProvider(metric_readers=[reader])
    yield Sdk(reader, spans, meters, tracers)
    meters.shutdown()
    tracers.shutdown()


async def test_requests_files_and_tasks_are_counted_and_each_task_is_a_span(
    emulator: Emulator, tmp_path: Path, sdk: Sdk
) -> None:
    done_ids = emulator.create_tasks(3, ready_after=0)
    failed_ids = emulator.create_tasks(1, ready_after=0, fail=True)
    async with client_for(emulator, hooks=sdk.hooks()) as client:
        report = await client.fetch_all(done_ids + failed_ids, tmp_path)
        counters = client.counters
    assert sdk.total("aiotts.requests") == sum(counters.values())
    assert sdk.total("aiotts.requests", **{"aiotts.request.kind": "poll"}) == counters["poll"]
    assert sdk.total("aiotts.requests", **{"http.response.status_code": 200}) == sum(
        counters.values()
    )
    (duration,) = [
        p
        for p in sdk.points()["aiotts.request.duration"]
        if p.attributes["aiotts.request.kind"] == "token"
    ]
    assert duration.count == 1 and duration.sum > 0
    assert sdk.total("aiotts.token.refreshes") == 1
    assert sdk.total("aiotts.files") == 3
    assert sdk.total("aiotts.bytes_written") == sum(o.bytes_written for o in report.done) > 0
    assert sdk.total("aiotts.tasks", **{"aiotts.task.state": "done"}) == 3
    assert sdk.total("aiotts.tasks", **{"aiotts.task.state": "failed"}) == 1
    (task_time,) = [
        p
        for p in sdk.points()["aiotts.task.duration"]
        if p.attributes["aiotts.task.state"] == "done"
    ]
    assert task_time.count == 3

    spans = {span.attributes["aiotts.task.id"]: span for span in sdk.finished()}  # type: ignore[index]
    assert set(spans) == set(done_ids + failed_ids)
    for task_id in done_ids:
        span = spans[task_id]
        assert span.name == "aiotts.task"
        assert [event.name for event in span.events] == ["polling", "downloading", "done"]
        assert span.attributes["aiotts.task.state"] == "done"  # type: ignore[index]
        assert span.attributes["aiotts.bytes_written"] > 0  # type: ignore[index,operator]
        assert span.status.status_code is StatusCode.UNSET
        assert span.start_time is not None and span.end_time is not None
        assert span.start_time <= span.end_time
    failed = spans[failed_ids[0]]
    assert [event.name for event in failed.events] == ["polling", "failed"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description


async def test_retries_and_429s_are_counted_by_kind(tmp_path: Path, sdk: Sdk) -> None:
    answers = iter(
        [web.Response(status=503), web.Response(status=429, headers={"Retry-After": "0"})]
    )

    async def flaky(request: web.Request) -> web.StreamResponse:
        answer = next(answers, None)
        return answer if answer is not None else completed(request.query["id"])

    async with HostileServer() as server:
        server.route("GET", TTS_PATH, flaky)
        async with client_of(server, hooks=sdk.hooks()) as client:
            await client.fetch_all([TASK_ID], tmp_path)
    assert sdk.total("aiotts.retries", **{"aiotts.request.kind": "poll"}) == 2
    assert sdk.total("aiotts.throttled", **{"aiotts.request.kind": "poll"}) == 1
    assert sdk.total("aiotts.requests", **{"http.response.status_code": 503}) == 1
    assert sdk.total("aiotts.requests", **{"http.response.status_code": 429}) == 1


async def test_a_resumed_id_is_counted_without_a_span(
    emulator: Emulator, tmp_path: Path, sdk: Sdk
) -> None:
    ids = emulator.create_tasks(1, ready_after=0)
    manifest = tmp_path / "record.jsonl"
    async with client_for(emulator) as client:
        await client.fetch_all(ids, tmp_path, manifest=manifest)
    async with client_for(emulator, hooks=sdk.hooks()) as client:
        await client.fetch_all(ids, tmp_path, manifest=manifest, resume=True)
    assert sdk.total("aiotts.tasks", **{"aiotts.resumed": True}) == 1
    assert "aiotts.task.duration" not in sdk.points()
    assert sdk.finished() == []


async def test_a_cancelled_wait_closes_its_span(
    emulator: Emulator, tmp_path: Path, sdk: Sdk
) -> None:
    (task_id,) = emulator.create_tasks(1, ready_after=3600)
    async with client_for(emulator, hooks=sdk.hooks()) as client:
        with anyio.move_on_after(0.1):
            await client.wait(task_id, tmp_path)
    (span,) = sdk.finished()
    assert span.attributes["aiotts.task.state"] == "cancelled"  # type: ignore[index]
    assert span.status.status_code is StatusCode.UNSET


async def test_each_task_span_is_a_child_of_the_span_current_when_it_was_taken_in(
    emulator: Emulator, tmp_path: Path, sdk: Sdk
) -> None:
    first, *ids = emulator.create_tasks(3, ready_after=0)
    async with client_for(emulator, hooks=sdk.hooks()) as client:
        await client.wait(first, tmp_path)  # the client's poll loop starts outside the job
        with sdk.tracers.get_tracer("app").start_as_current_span("nightly job") as job:
            await client.fetch_all(ids, tmp_path)
    tasks = [s for s in sdk.finished() if s.attributes and s.attributes["aiotts.task.id"] in ids]
    assert len(tasks) == 2
    job_context = job.get_span_context()
    for span in tasks:
        assert span.parent is not None and span.parent.span_id == job_context.span_id
        assert span.context is not None and span.context.trace_id == job_context.trace_id


async def test_spans_can_be_left_out(emulator: Emulator, tmp_path: Path, sdk: Sdk) -> None:
    ids = emulator.create_tasks(2, ready_after=0)
    hooks = telemetry_hooks(sdk.meters, sdk.tracers, spans=False)
    async with client_for(emulator, hooks=hooks) as client:
        await client.fetch_all(ids, tmp_path)
    assert sdk.finished() == []
    assert sdk.total("aiotts.tasks", **{"aiotts.task.state": "done"}) == 2
