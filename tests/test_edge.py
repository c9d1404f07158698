"""Overload and hostile connections against a real server over real sockets (edge.py, the
batcher's admission, the app's body handling), with a health probe on the health port beside
every case: past a limit, an answer that says which, never a stall, a silent zero or a dropped
probe."""
from __future__ import annotations

import json
import math
import random
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from devtools.servers import HealthProbe, free_port, minilm_profiles
from tests.conftest import Server
from tests.test_hostile_corpus import HEALTH_BOUND_S

CAP, RESERVE = 48, 4


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    path = tmp_path_factory.mktemp("edge") / "profiles.yaml"
    path.write_text(minilm_profiles(timeout_s=4))
    health = free_port()
    s = Server("--profiles", str(path), env={
        "HARMO_HEADER_TIMEOUT_S": "1.5", "HARMO_BODY_TIMEOUT_S": "2", "HARMO_MAX_CONNECTIONS": str(CAP),
        "HARMO_PROBE_CONNECTIONS": str(RESERVE), "HARMO_HEALTH_PORT": str(health)})
    probe = HealthProbe(f"http://127.0.0.1:{health}")
    probe.start()
    yield s, probe
    probe.stop()
    s.stop()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return out


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed before reading it all: what is tested


@pytest.mark.parametrize("size", [40 * 1024, 8 * 2**20, 64 * 2**20])
def test_headers_past_the_limit_are_431(edge, size):
    server, _ = edge
    sock = _connect(server.port)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    sender = threading.Thread(target=_send_quietly, args=(sock, head))
    sender.start()
    got = _answer(sock)
    sender.join(30)
    sock.close()
    assert got.startswith(b"HTTP/1.1 431"), got[:200]
    assert b"headers pass 32768 bytes" in got


def test_headers_under_the_limit_are_served(edge):
    server, _ = edge
    r = httpx.get(f"{server.url}/healthz", headers={"X-Big": "a" * 16_000})
    assert r.status_code == 200


def test_heads_and_bodies_that_never_end_are_dropped(edge):
    """Connections that never finish their head (nothing after the request line; a byte now and
    then), a body shorter than it says, a chunk of 2^64-1 bytes: each is closed by the server,
    408 where the app had not begun on the request, while the probes keep answering."""
    server, _ = edge
    socks = []
    for _ in range(20):  # the request line, then nothing
        s = _connect(server.port)
        s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    trickle = _connect(server.port)
    body = _connect(server.port)
    body.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    chunked = _connect(server.port)
    chunked.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n")
    stop = threading.Event()

    def drip():  # a byte every 0.2 s, for as long as the server keeps the connection
        for b in b"POST /score HTTP/1.1\r\nHost: x\r\n" * 100:
            if stop.wait(0.2):
                return
            try:
                trickle.send(bytes([b]))
            except OSError:
                return

    dripper = threading.Thread(target=drip)
    dripper.start()
    try:
        with ThreadPoolExecutor(len(socks) + 3) as ex:
            answers = list(ex.map(_answer, socks + [trickle, body, chunked]))
    finally:
        stop.set()
        dripper.join(5)
    assert not dripper.is_alive() or stop.is_set()
    for a in answers[:21]:  # closed with a 408 that says why
        assert a.startswith(b"HTTP/1.1 408") and b"did not arrive within 1.5s" in a, a[:200]
    assert answers[21] == b""  # the app was waiting for the body: it sees the client gone
    assert answers[22] == b"" or answers[22].startswith((b"HTTP/1.1 400", b"HTTP/1.1 408")), answers[22][:200]
    for s in socks + [trickle, body, chunked]:
        s.close()


def test_connections_past_the_cap_are_refused_and_the_health_port_answers(edge):
    server, probe = edge
    before = probe.probes
    socks = [_connect(server.port) for _ in range(CAP + RESERVE + 12)]
    with ThreadPoolExecutor(len(socks)) as ex:
        answers = list(ex.map(_answer, socks))  # each closed: refused at once, or at its head timeout
    for s in socks:
        s.close()
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
    assert len(refused) >= 12 and all(b"limit of 48 connections" in a for a in refused)
    assert all(a.startswith((b"HTTP/1.1 503", b"HTTP/1.1 408")) for a in answers)
    assert probe.probes > before and not probe.failures  # the probes went on meanwhile
    assert httpx.get(f"{server.url}/healthz").status_code == 200  # and the service port is back


def test_overload_is_refused_up_front_never_a_zero(edge):
    """More open-ended work than the model serves in its timeout: what cannot be done in time is
    refused up front (503 with Retry-After, or items typed accuracy/overloaded with no reward),
    and nothing that was accepted times out into a number."""
    server, _ = edge
    rng = random.Random(3)
    words = "the of a river mountain city light quickly green under over seven people".split()

    def request(k: int) -> httpx.Response:
        items = [{"id": f"{k}-{i}", "response": " ".join(rng.choice(words) for _ in range(1400)),
                  "reference": "a city under a mountain by the river"} for i in range(1000)]
        return httpx.post(f"{server.url}/score", json={"items": items}, timeout=120)

    with ThreadPoolExecutor(3) as ex:
        answers = list(ex.map(request, range(3)))
    refused_up_front = 0
    for r in answers:
        if r.status_code == 503:
            assert int(r.headers["retry-after"]) >= 1 and "saturated" in r.json()["detail"]
            refused_up_front += 1000
            continue
        assert r.status_code == 200, r.text[:300]
        for x in r.json()["results"]:
            codes = {e["code"] for e in x["errors"]}
            assert "model_timeout" not in codes, x
            if codes & {"overloaded", "model_error"}:
                assert x["reward"] is None, x  # never a zero the policy did not ask for
                refused_up_front += 1
            else:
                assert x["accuracy"]["source"].startswith("model:") and x["reward"] is not None, x
    assert refused_up_front > 0  # the load was past the model's capacity: some of it was refused


def test_a_big_body_is_read_off_the_event_loop(edge):
    """A body of tens of MB: read, validated and scored while the probes keep answering (the
    module's health assertion), every verdict right."""
    server, _ = edge
    rng = random.Random(5)
    items = [{"id": str(i), "response": "<think>" + "step " * 6000 + f"</think><answer>\\boxed{{{n}}}</answer>",
              "reference": str(n if i % 2 else n + 1)} for i, n in enumerate(rng.randrange(1000) for _ in range(2048))]
    body = json.dumps({"profile": "harmo", "items": items}).encode()
    assert len(body) > 60_000_000
    r = httpx.post(f"{server.url}/score", content=body, headers={"content-type": "application/json"}, timeout=300)
    assert r.status_code == 200, r.text[:300]
    verdicts = [x["accuracy"]["verdict"] for x in r.json()["results"]]
    assert verdicts == ["correct" if i % 2 else "incorrect" for i in range(2048)]


def test_health_answered_within_bound_throughout(edge):
    _, probe = edge
    assert probe.probes > 50 and not probe.failures, probe.failures[:3]
    assert probe.slowest < HEALTH_BOUND_S and math.isfinite(probe.slowest), f"/healthz took {probe.slowest:.3f}s"
