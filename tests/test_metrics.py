"""Prometheus metrics: the exposition parsed by prometheus_client's own parser, access rules, the CLI."""

import pytest
from support import ServerThread, connect
from test_cli_options import Cli
from wsclient import WsClient, http_exchange, read_response, upgrade_request

from ratchet_sel import MessageComponent, WsServer
from ratchet_sel.http.server import HttpServer
from ratchet_sel.io.loop import Loop
from ratchet_sel.ops.metrics import CONTENT_TYPE, METRICS, LoopMonitor, MetricsEndpoint, render, snapshot
from ratchet_sel.ops.stats import STATS

parser = pytest.importorskip("prometheus_client.parser",
                             reason="prometheus_client (a development dependency) checks the exposition format")

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-token-0123456789"


def parse(text):
    """{(name, frozenset(labels)): value} through the real parser; also checks every family's type."""
    samples = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape(port, headers=()):
    request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" % "".join("%s: %s\r\n" % h for h in headers)
    return http_exchange(port, request.encode())


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0)


class Echo(MessageComponent):
    def on_message(self, conn, msg):
        if msg == "flood":
            for _ in range(64):
                conn.send(b"\x00" * 65536)
        else:
            conn.send(msg)


# -- the exposition --------------------------------------------------------------------------------

def test_every_listed_metric_is_exposed_with_help_and_type():
    text = render([snapshot()])
    for name, (kind, _, _) in METRICS.items():
        assert "# TYPE %s %s\n" % (name, kind) in text and "# HELP %s " % name in text
    families = {family.name: family for family in parser.text_string_to_metric_families(text)}
    assert families["ratchet_sel_messages_received"].type == "counter"
    assert families["ratchet_sel_connections_open"].type == "gauge"
    versions = {s.labels["version"] for s in families["ratchet_sel_connections_open"].samples}
    assert versions == {"rfc6455", "hybi-10", "hixie-76", "hixie-75"}


def test_snapshots_of_several_workers_combine():
    one = {"worker": "1", "metrics": {
        "ratchet_sel_messages_received_total": {"": 5},
        "ratchet_sel_closes_total": {'code="1000"': 2, 'code="1006"': 1},
        "ratchet_sel_connections_open": {'version="rfc6455"': 3},
        "ratchet_sel_loop_lag_seconds": {"": 0.25}}}
    two = {"worker": "2", "metrics": {
        "ratchet_sel_messages_received_total": {"": 7},
        "ratchet_sel_closes_total": {'code="1000"': 4},
        "ratchet_sel_connections_open": {'version="rfc6455"': 1, 'version="hixie-76"': 2},
        "ratchet_sel_loop_lag_seconds": {"": 0.5}}}
    samples = parse(render([one, two]))
    assert value(samples, "ratchet_sel_messages_received_total") == 12
    assert value(samples, "ratchet_sel_closes_total", code="1000") == 6
    assert value(samples, "ratchet_sel_closes_total", code="1006") == 1
    assert value(samples, "ratchet_sel_connections_open", version="rfc6455") == 4
    assert value(samples, "ratchet_sel_connections_open", version="hixie-76") == 2
    assert value(samples, "ratchet_sel_loop_lag_seconds", worker="1") == 0.25    # per worker, not summed
    assert value(samples, "ratchet_sel_loop_lag_seconds", worker="2") == 0.5
    single = parse(render([one]))
    assert value(single, "ratchet_sel_loop_lag_seconds") == 0.25                # one process: no worker label


def test_snapshot_is_plain_data():
    import json
    snap = snapshot(worker="w1")
    assert json.loads(json.dumps(snap)) == snap and snap["worker"] == "w1"


def test_loop_monitor_measures_lag_and_busy_ratio():
    loop = Loop()
    try:
        monitor = LoopMonitor(loop, interval=0.05).start()
        STATS.loop_lag = STATS.loop_busy = None

        def check():
            if STATS.loop_busy is not None:
                loop.stop()
            else:
                loop.call_later(0.05, check)
        loop.call_later(0.05, check)
        loop.call_later(10, loop.stop)
        loop.run()
        monitor.stop()
        assert STATS.loop_lag is not None and STATS.loop_lag >= 0
        assert 0.0 <= STATS.loop_busy <= 1.0
    finally:
        loop.close()


# -- live ------------------------------------------------------------------------------------------------

def test_live_figures_move_with_traffic():
    with ServerThread(HttpServer(MetricsEndpoint(WsServer(Echo(), write_limit=256 * 1024)))) as st:
        status, headers, body = scrape(st.port)
        assert status == 200 and headers["content-type"] == CONTENT_TYPE
        before = parse(body.decode())
        with WsClient(st.port) as client:
            for i in range(3):
                client.send("hello %d" % i)
                assert client.recv_message() == "hello %d" % i
            with WsClient(st.port, version="8") as hybi:
                middle = parse(scrape(st.port)[2].decode())
                assert (value(middle, "ratchet_sel_connections_open", version="rfc6455")
                        - value(before, "ratchet_sel_connections_open", version="rfc6455")) == 1
                assert (value(middle, "ratchet_sel_connections_open", version="hybi-10")
                        - value(before, "ratchet_sel_connections_open", version="hybi-10")) == 1
                hybi.close(1000)
            client.close(4001)
        assert http_exchange(st.port, b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n")[0] == 400
        # a client that never reads: closed with 1008 once 256 KiB are buffered
        slow = connect(st.port, rcvbuf=4096)
        slow.sendall(upgrade_request())
        assert read_response(slow)[0] == 101
        slow.sendall(bytes((0x81, 0x85, 0, 0, 0, 0)) + b"flood")
        after = None
        for _ in range(200):
            after = parse(scrape(st.port)[2].decode())
            if value(after, "ratchet_sel_slow_clients_total", action="closed") > value(
                    before, "ratchet_sel_slow_clients_total", action="closed"):
                break
            st.sync()
        slow.close()

        def grew(name, by=None, **labels):
            delta = value(after, name, **labels) - value(before, name, **labels)
            return delta == by if by is not None else delta > 0
        assert grew("ratchet_sel_messages_received_total", 4)          # 3 echoes and "flood"
        assert value(after, "ratchet_sel_messages_sent_total") - value(before, "ratchet_sel_messages_sent_total") >= 3
        assert grew("ratchet_sel_received_bytes_total") and grew("ratchet_sel_sent_bytes_total")
        assert grew("ratchet_sel_connections_accepted_total")
        assert grew("ratchet_sel_closes_total", 1, code="4001")
        assert grew("ratchet_sel_closes_total", 1, code="1000")
        assert grew("ratchet_sel_handshakes_refused_total", 1, status="400")
        assert grew("ratchet_sel_slow_clients_total", 1, action="closed")


def test_loopback_only_without_a_token():
    with ServerThread(HttpServer(MetricsEndpoint(WsServer(Echo())))) as st:
        assert scrape(st.port)[0] == 200
        status, _, body = scrape(st.port, [("X-Forwarded-For", "203.0.113.7")])   # a local proxy's request
        assert status == 403 and b"loopback" in body
        assert http_exchange(st.port, b"POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")[0] == 405
        with WsClient(st.port) as client:                  # other paths still reach the WebSocket server
            client.send("ok")
            assert client.recv_message() == "ok"

    class Peer:
        remote_address = "203.0.113.5"
    request = type("R", (), {"method": "GET", "headers": {}})()
    assert MetricsEndpoint(Echo())._refusal(Peer(), request)[0] == 403
    Peer.remote_address = "::ffff:127.0.0.1"
    assert MetricsEndpoint(Echo())._refusal(Peer(), request) is None


def test_a_token_is_required_from_everyone_when_set():
    with ServerThread(HttpServer(MetricsEndpoint(WsServer(Echo()), token=TOKEN))) as st:
        status, headers, _ = scrape(st.port)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        assert scrape(st.port, [("Authorization", "Bearer wrong-token-000000000")])[0] == 401
        status, _, body = scrape(st.port, [("Authorization", "Bearer " + TOKEN)])
        assert status == 200 and parse(body.decode())
    with pytest.raises(ValueError):
        MetricsEndpoint(Echo(), token="")


def test_cli_metrics_option():
    with Cli("chat", "--metrics") as cli:
        status, headers, body = scrape(cli.port)
        assert status == 200 and headers["content-type"] == CONTENT_TYPE
        assert ("ratchet_sel_connections_accepted_total", frozenset()) in parse(body.decode())
        status, _, body = http_exchange(cli.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert status == 200 and b"<html" in body.lower()
    with Cli("echo", "--metrics-token", TOKEN) as cli:
        assert scrape(cli.port)[0] == 401
        assert scrape(cli.port, [("Authorization", "Bearer " + TOKEN)])[0] == 200
    with Cli("echo") as cli:                                  # off by default
        assert scrape(cli.port)[0] == 426
