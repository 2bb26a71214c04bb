"""Auth (bearer, session cookie, stream ticket), CORS, and hostile HTTP."""

import socket
import time

import httpx
import httpx_sse
import pytest

from conftest import Server

TOKEN = "t0ken-for-tests"


@pytest.fixture
def secured(tmp_path):
    s = Server(tmp_path, "--auth-token", TOKEN, "--shutdown-grace=1s",
               "--http-cors-origin", "https://app.example.com",
               "--http-request-timeout", "1s")
    yield s
    assert s.stop() == 0


def test_every_route_but_healthz_needs_the_token(secured):
    with secured.client() as http:
        assert http.get("/healthz").json() == {"status": "SERVING"}
        r = http.get("/v1/jobs")
        assert r.status_code == 401
        assert r.json()["code"] == 16
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert http.get("/metrics").status_code in (401, 404)
        r = http.get("/v1/jobs", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = http.get("/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200
        assert http.get("/v1/auth").json() == {"authRequired": True,
                                               "authenticated": False}


def test_browser_logs_in_once_and_uses_an_httponly_cookie(secured):
    with secured.client() as http:
        assert http.post("/v1/auth:login", json={"token": "nope"}
                         ).status_code == 401
        r = http.post("/v1/auth:login", json={"token": TOKEN})
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert TOKEN not in cookie
        # httpx keeps the cookie, as a browser would.
        assert http.get("/v1/jobs").status_code == 200
        assert http.get("/v1/auth").json()["authenticated"] is True
        # Writes on the cookie need the CSRF header a foreign page cannot set.
        body = {"job": {"kind": "k"}}
        assert http.post("/v1/jobs", json=body).status_code == 401
        r = http.post("/v1/jobs", json=body, headers={"X-Jobwire-Csrf": "1"})
        assert r.status_code == 200, r.text
        job = r.json()["job"]["id"]
        # SSE on the cookie.
        with httpx_sse.connect_sse(http, "GET", f"/v1/jobs/{job}/events"
                                   ) as source:
            assert source.response.status_code == 200
            assert next(source.iter_sse()).event == "snapshot"
        assert http.post("/v1/auth:logout").status_code == 204
        assert http.get("/v1/jobs").status_code == 401


def test_a_stream_ticket_opens_an_event_stream_and_nothing_else(secured):
    with secured.client() as http:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        job = http.post("/v1/jobs", json={"job": {"kind": "k"}},
                        headers=bearer).json()["job"]["id"]
        assert http.post("/v1/auth:ticket").status_code == 401
        ticket = http.post("/v1/auth:ticket", headers=bearer).json()["ticket"]
        assert TOKEN not in ticket
        with httpx_sse.connect_sse(http, "GET", f"/v1/jobs/{job}/events",
                                   params={"ticket": ticket}) as source:
            assert source.response.status_code == 200
            assert next(source.iter_sse()).event == "snapshot"
        r = http.post("/v1/jobs", params={"ticket": ticket},
                      json={"job": {"kind": "k"}})
        assert r.status_code == 401
        r = http.get("/v1/jobs", params={"ticket": ticket + "x"})
        assert r.status_code == 401


def test_cors_preflight_allows_only_the_configured_origin(secured):
    with secured.client() as http:
        ok = http.options("/v1/jobs", headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert ok.status_code == 204
        assert ok.headers["access-control-allow-origin"] == \
            "https://app.example.com"
        assert "Authorization" in ok.headers["access-control-allow-headers"]
        bad = http.options("/v1/jobs", headers={
            "Origin": "https://evil.example.com",
            "Access-Control-Request-Method": "POST"})
        assert bad.status_code == 403
        assert "access-control-allow-origin" not in bad.headers
        r = http.get("/v1/jobs", headers={
            "Origin": "https://app.example.com",
            "Authorization": f"Bearer {TOKEN}"})
        assert r.headers["access-control-allow-origin"] == \
            "https://app.example.com"


def raw(server, data: bytes, read_timeout=5.0) -> bytes:
    """Sends raw bytes (malformed on purpose: no client would send them)
    and returns what came back before the server closed."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=read_timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
        return out


def test_hostile_requests_get_a_clear_4xx_and_the_server_stays_up(secured):
    big_header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + \
        b"a" * 20000 + b"\r\n\r\n"
    assert raw(secured, big_header).startswith(b"HTTP/1.1 431")
    big_body = (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: "
                + str(5 * 1024 * 1024).encode() + b"\r\n\r\n")
    reply = raw(secured, big_body)
    assert reply.startswith(b"HTTP/1.1 413")
    assert b"at most 4194304 bytes (--max-receive-message-bytes)" in reply, \
        reply
    # The same error as over gRPC: RESOURCE_EXHAUSTED, ErrorInfo reason.
    assert b'"code":8' in reply.replace(b" ", b""), reply
    assert b"REQUEST_TOO_LARGE" in reply, reply
    assert raw(secured, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(secured, b"GET /x HTTP/9.9\r\n\r\n").startswith(b"HTTP/1.1 400")
    with secured.client() as http:
        r = http.post("/v1/jobs", content=b"\xff\xfe",
                      headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 400
        assert http.get("/healthz").status_code == 200


def test_a_slow_sender_is_cut_off_after_the_request_timeout(secured):
    host, port = secured.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and stops
        start = time.monotonic()
        assert s.recv(100) == b""  # closed
        assert time.monotonic() - start < 5
    with secured.client() as http:
        assert http.get("/healthz").status_code == 200


def test_keep_alive_serves_many_requests_on_one_connection(secured):
    with secured.client(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for _ in range(20):
            assert http.get("/v1/queues").status_code == 200
        # httpx reuses the pooled connection: one connection served all.
        assert len(http._transport._pool.connections) == 1


def test_a_stop_answers_healthz_503_and_closes_idle_connections(tmp_path):
    s = Server(tmp_path, "--shutdown-grace=3s")
    with s.client() as http:
        assert http.get("/healthz").status_code == 200
        s.proc.send_signal(15)
        assert s.proc.wait(timeout=10) == 0
        with pytest.raises(httpx.TransportError):
            http.get("/healthz")


def test_a_reader_that_stops_is_cut_off_and_memory_stays_bounded(tmp_path):
    s = Server(tmp_path, "--http-write-timeout", "1s", "--shutdown-grace=1s")
    try:
        host, port = s.url.removeprefix("http://").split(":")
        stalled = socket.socket()
        # A small receive window, filled quickly, and never read.
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect((host, int(port)))
        stalled.sendall(b"GET /v1/events?after_event_id=0 HTTP/1.1\r\n"
                        b"Host: x\r\n\r\n")
        rss_before = rss_kib(s.proc.pid)
        # Events of ~300 bytes: 40,000 of them overflow the socket buffers.
        with s.client() as http:
            for _ in range(40):
                r = http.post("/v1/jobs:batchSubmit", json={
                    "jobs": [{"job": {"kind": "k", "labels": {"n": "x" * 40}}}
                             ] * 1000})
                assert r.status_code == 200, r.text
            # The stalled stream is closed within the write timeout (plus
            # slack), while other clients are served as usual.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                info = http.get("/v1/server").json()
                if int(info.get("watchers", 0)) == 0:
                    break
                time.sleep(0.2)
            assert int(info.get("watchers", 0)) == 0, info
            assert http.get("/healthz").status_code == 200
        # 40,000 events went by; the stalled reader held a bounded few.
        assert rss_kib(s.proc.pid) - rss_before < 96 * 1024
        stalled.close()
    finally:
        assert s.stop() == 0


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
