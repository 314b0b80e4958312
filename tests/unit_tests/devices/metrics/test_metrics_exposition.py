"""Who may read /metrics, the server's view, the bridge's port, HTTP and database timings."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import replace

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, RequestFactory
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from devices.metrics.exposition import address_allowed, metrics_view, serve_bridge_metrics

LOOPBACK = ("127.0.0.0/8", "::1")


def test_only_addresses_in_the_allowed_networks_pass():
    assert address_allowed("127.0.0.1", LOOPBACK) and address_allowed("::1", LOOPBACK)
    assert address_allowed("::ffff:127.0.0.1", LOOPBACK)  # IPv4 on a dual-stack socket
    assert not address_allowed("10.1.2.3", LOOPBACK) and not address_allowed("fe80::1", LOOPBACK)
    assert address_allowed("10.1.2.3", ("10.0.0.0/8",)) and not address_allowed("11.0.0.1", ("10.0.0.0/8",))
    assert not address_allowed(None, LOOPBACK) and not address_allowed("not-an-ip", LOOPBACK)
    assert not address_allowed("10.1.2.3", ("ten-net", "")) and address_allowed("10.1.2.3", ("bad", "10.0.0.0/8"))


@pytest.fixture
def oas():
    original = settings.OAS
    yield lambda **kw: setattr(settings, "OAS", replace(original, **kw))
    settings.OAS = original


async def test_the_view_refuses_other_networks_and_serves_allowed_ones(oas):
    oas(metrics_allow=("10.0.0.0/8",))
    refused = await metrics_view(RequestFactory().get("/metrics", REMOTE_ADDR="127.0.0.1"))
    assert refused.status_code == 403 and json.loads(refused.content)["code"] == "forbidden"
    served = await metrics_view(RequestFactory().get("/metrics", REMOTE_ADDR="10.2.3.4"))
    assert served.status_code == 200 and served["Content-Type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(served.content.decode())}
    assert {"ophydsite_open_sockets", "ophydsite_dependency_up", "ophydsite_update_latency_seconds",
            "process_cpu_seconds"} <= names


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.django_db
def test_the_bridge_port_serves_allowed_networks_only():
    server = serve_bridge_metrics(0, LOOPBACK, host="127.0.0.1")
    refusing = serve_bridge_metrics(0, ("10.0.0.0/8",), host="127.0.0.1")
    try:
        status, body = _get(f"http://127.0.0.1:{server.server_address[1]}/metrics")
        assert status == 200
        samples = {(s.name, tuple(s.labels.items())): s.value
                   for f in text_string_to_metric_families(body) for s in f.samples}
        assert samples[("ophydsite_dependency_up", (("dependency", "database"),))] == 1
        status, body = _get(f"http://127.0.0.1:{refusing.server_address[1]}/metrics")
        assert status == 403 and "OAS_METRICS_ALLOW" in json.loads(body)["error"]
    finally:
        server.shutdown()
        refusing.shutdown()


@pytest.mark.django_db
def test_database_statements_are_timed():
    connection.close()
    connection.ensure_connection()  # a new connection: the execute wrapper is added on creation
    before = REGISTRY.get_sample_value("ophydsite_db_query_duration_seconds_count", {"alias": "default"}) or 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    after = REGISTRY.get_sample_value("ophydsite_db_query_duration_seconds_count", {"alias": "default"})
    assert after == before + 1


def test_http_requests_are_counted_by_route_pattern_not_path():
    assert settings.MIDDLEWARE[0] == "devices.metrics.exposition.HttpMetricsMiddleware"  # times the whole chain
    labels = {"method": "GET", "route": "api/v1/health", "status": "2xx"}
    before = REGISTRY.get_sample_value("ophydsite_http_requests_total", labels) or 0
    missing = {"method": "GET", "route": "unmatched", "status": "4xx"}
    missing_before = REGISTRY.get_sample_value("ophydsite_http_requests_total", missing) or 0
    client = Client()
    assert client.get("/api/v1/health").status_code == 200
    assert client.get("/no/such/TST:pv").status_code == 404
    assert REGISTRY.get_sample_value("ophydsite_http_requests_total", labels) == before + 1
    assert REGISTRY.get_sample_value("ophydsite_http_requests_total", missing) == missing_before + 1
    assert (REGISTRY.get_sample_value("ophydsite_http_request_duration_seconds_count",
                                      {"method": "GET", "route": "api/v1/health"}) or 0) >= 1
