"""Live metrics for Prometheus: a ``/metrics`` endpoint over the run's OpenTelemetry metrics.

``rtfleet run --metrics-port`` and ``rtfleet serve --metrics-port`` (and embedders through
``open_fleet(metrics_port=…)``) expose what the process measures while it runs, through the
OpenTelemetry Prometheus exporter (``PrometheusMetricReader``): OTel instrument names are
mapped as that exporter maps them (``rtfleet.turn.duration``, unit ``s`` ->
``rtfleet_turn_duration_seconds_bucket|_sum|_count``; counters get ``_total``; attributes
become labels, ``rtfleet.population`` -> ``rtfleet_population``).

The endpoint is a small trio HTTP/1.1 server (h11) on the run's own event loop: a scrape
renders the exporter's registry (``prometheus_client.generate_latest``) and closes the
connection. It binds 127.0.0.1 by default; binding another address (``--metrics-host``) is
the opt-in to remote scrapes. On a loopback binding a scrape from another address (a port
forwarded into a container, say) is refused with 403 and a message saying how to opt in.

Histograms use :data:`BUCKETS` (ten a decade from 0.1 ms to 100 s; a quantile read from them
is within one bucket, about 26%, of the exact one) instead of OTel's default boundaries,
which are meant for milliseconds and would put every latency here in its first bucket.
"""

from __future__ import annotations

from typing import Any

import attrs
import h11
import trio

from orchestrator.loopback import is_loopback

__all__ = ["BUCKETS", "MetricsEndpoint", "WorkerScrapes", "histogram_views"]

#: histogram boundaries in seconds: 10 a decade (x1.259), 0.1 ms .. 100 s
BUCKETS: tuple[float, ...] = tuple(float(f"{10 ** (k / 10):.4g}") for k in range(-40, 21))
MAX_REQUEST = 16 * 1024
READ_TIMEOUT = 10.0


def histogram_views() -> list[Any]:
    """OTel SDK views giving rtfleet's histograms (all in seconds) :data:`BUCKETS`."""
    from opentelemetry.sdk.metrics import Histogram
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    return [View(instrument_type=Histogram, instrument_name="rtfleet.*",
                 aggregation=ExplicitBucketHistogramAggregation(boundaries=BUCKETS))]




@attrs.define(eq=False)
class MetricsEndpoint:
    """``GET /metrics`` for one process; make it, add :meth:`reader` to a MeterProvider, then
    ``await nursery.start(endpoint.serve)`` (raises OSError when the port is taken)."""

    port: int
    host: str = "127.0.0.1"
    registry: Any = attrs.field(factory=lambda: _new_registry())
    scrapes: int = 0
    refused: int = 0
    #: the bound port (``port=0`` picks a free one)
    bound_port: int | None = None
    _scraped: trio.Event = attrs.field(factory=trio.Event)
    #: awaited before each scrape is rendered (the parent of ``--workers`` fetches its
    #: workers' metrics there)
    before_scrape: Any = None

    async def next_scrape(self) -> None:
        """Return once the next scrape has been answered."""
        await self._scraped.wait()

    def reader(self) -> Any:
        """A PrometheusMetricReader collecting into this endpoint's own registry."""
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        return PrometheusMetricReader(registry=self.registry)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.bound_port or self.port}/metrics"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        self.bound_port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(READ_TIMEOUT):
                await self._one_request(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async def _one_request(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(4096)
                if not data:
                    return
                conn.receive_data(data)
                continue
            break
        if not isinstance(event, h11.Request):
            return
        peer = stream.socket.getpeername()[0]
        target = event.target.decode("latin-1").split("?", 1)[0]
        if is_loopback(self.host) and not is_loopback(peer):
            self.refused += 1
            status, body, kind = 403, (
                f"rtfleet metrics: scrapes from {peer} are refused; the endpoint is bound to "
                f"{self.host} (loopback). Bind it with --metrics-host to accept remote "
                "scrapes.\n").encode(), b"text/plain; charset=utf-8"
        elif event.method not in (b"GET", b"HEAD") or target not in ("/metrics", "/"):
            status, body, kind = 404, b"rtfleet metrics: GET /metrics\n", b"text/plain; charset=utf-8"
        else:
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            if self.before_scrape is not None:
                await self.before_scrape()
            self.scrapes += 1
            status, body, kind = 200, generate_latest(self.registry), CONTENT_TYPE_LATEST.encode()
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        out = conn.send(h11.Response(status_code=status, headers=headers))
        if event.method != b"HEAD":
            out += conn.send(h11.Data(data=body))
        out += conn.send(h11.EndOfMessage())
        await stream.send_all(out)
        if status == 200:
            self._scraped.set()
            self._scraped = trio.Event()


def _new_registry() -> Any:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry(auto_describe=False)


@attrs.define(eq=False)
class WorkerScrapes:
    """The parent of ``rtfleet run --workers N``: one scrape of its endpoint sees the whole run.
    Each worker serves its own metrics on a free loopback port and says where (a ``metrics``
    frame); before each scrape the parent fetches them all (concurrently, each within
    ``timeout``) and this collector re-exposes every sample with a ``rtfleet_worker`` label
    (``1``..``N``), so ``sum without (rtfleet_worker)`` is the run's figure. A worker that does
    not answer (it has ended) is shown as it last answered: a worker lingers until the parent
    fetched it once after its run ended, so after the run every worker's final figures stay
    in the parent's scrapes (the parent lingers for one more with ``--metrics-linger``)."""

    #: worker label -> its /metrics URL, filled as the workers report
    urls: dict[str, str] = attrs.field(factory=dict)
    timeout: float = 2.0
    _texts: dict[str, str] = attrs.field(factory=dict)

    def attach(self, endpoint: MetricsEndpoint) -> None:
        endpoint.registry.register(self)
        endpoint.before_scrape = self.fetch

    async def fetch(self) -> None:
        import httpx

        texts = dict(self._texts)  # a worker that does not answer keeps its last figures

        async def one(client: httpx.AsyncClient, worker: str, url: str) -> None:
            try:
                response = await client.get(url)
                if response.status_code == 200:
                    texts[worker] = response.text
            except httpx.HTTPError:
                pass

        async with httpx.AsyncClient(timeout=self.timeout) as client:
            async with trio.open_nursery() as nursery:
                for worker, url in list(self.urls.items()):
                    nursery.start_soon(one, client, worker, url)
        self._texts = texts

    def collect(self) -> Any:
        from prometheus_client.metrics_core import Metric
        from prometheus_client.parser import text_string_to_metric_families

        merged: dict[str, Any] = {}
        for worker, text in sorted(self._texts.items()):
            for family in text_string_to_metric_families(text):
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(family.name, family.documentation,
                                                        family.type, family.unit)
                for sample in family.samples:
                    into.add_sample(sample.name, {**sample.labels, "rtfleet_worker": worker},
                                    sample.value, sample.timestamp, sample.exemplar)
        return iter(merged.values())
