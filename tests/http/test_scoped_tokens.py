"""Scoped tokens (--auth-token-file) over HTTP (#27): the route's gRPC method
decides the scope, as over gRPC; a token without it gets 403 naming the
scope; sessions and tickets carry the token's name and scopes and die when
the token leaves the file."""

import os
import time

import httpx_sse
import pytest

from conftest import Server

TOKENS = """# name token scopes
reader  r3ader-token  read
sub     subm1t-token  submit
boss    b0ss-token    admin,read,submit
"""


@pytest.fixture
def scoped(tmp_path):
    path = tmp_path / "tokens"
    path.write_text(TOKENS)
    os.chmod(path, 0o600)
    s = Server(tmp_path, "--auth-token-file", str(path), "--shutdown-grace=1s")
    s.tokens = path
    yield s
    assert s.stop() == 0


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_each_route_needs_its_methods_scope(scoped):
    with scoped.client() as http:
        assert http.get("/v1/jobs").status_code == 401
        assert http.get("/v1/jobs", headers=bearer("wrong-token")
                        ).status_code == 401
        r = http.post("/v1/jobs", json={"job": {"kind": "k"}},
                      headers=bearer("subm1t-token"))
        assert r.status_code == 200, r.text
        job = r.json()["job"]["id"]
        r = http.get(f"/v1/jobs/{job}", headers=bearer("subm1t-token"))
        assert r.status_code == 403
        assert r.json()["code"] == 7
        assert "lacks the scope 'read'" in r.json()["message"], r.text
        assert http.get(f"/v1/jobs/{job}", headers=bearer("r3ader-token")
                        ).status_code == 200
        r = http.post("/v1/jobs", json={"job": {"kind": "k"}},
                      headers=bearer("r3ader-token"))
        assert r.status_code == 403 and "'submit'" in r.json()["message"]
        r = http.post(f"/v1/jobs/{job}:cancel", json={},
                      headers=bearer("r3ader-token"))
        assert r.status_code == 403 and "'admin'" in r.json()["message"]
        assert http.post(f"/v1/jobs/{job}:cancel", json={},
                         headers=bearer("b0ss-token")).status_code == 200
        # SSE routes are WatchJob/WatchJobs: scope read.
        r = http.get(f"/v1/jobs/{job}/events", headers=bearer("subm1t-token"))
        assert r.status_code == 403 and "'read'" in r.json()["message"]
        with httpx_sse.connect_sse(http, "GET", f"/v1/jobs/{job}/events",
                                   headers=bearer("r3ader-token")) as src:
            assert src.response.status_code == 200
            assert [e.event for e in src.iter_sse()] == ["snapshot"]
        assert http.get("/metrics", headers=bearer("subm1t-token")
                        ).status_code == 403
        assert http.get("/metrics", headers=bearer("r3ader-token")
                        ).status_code == 200


def test_sessions_and_tickets_keep_the_tokens_scopes(scoped):
    with scoped.client() as http:
        r = http.post("/v1/auth:login", json={"token": "r3ader-token"})
        assert r.status_code == 200, r.text
        assert "r3ader-token" not in r.headers["set-cookie"]
        assert http.get("/v1/jobs").status_code == 200
        r = http.post("/v1/jobs", json={"job": {"kind": "k"}},
                      headers={"X-Jobwire-Csrf": "1"})
        assert r.status_code == 403 and "'submit'" in r.json()["message"]
        r = http.post("/v1/auth:ticket", headers={"X-Jobwire-Csrf": "1"})
        assert r.status_code == 200, r.text
        ticket = r.json()["ticket"]
    with scoped.client() as fresh:
        assert fresh.get("/v1/jobs", params={"ticket": ticket}
                         ).status_code == 200
        # A forged name with another token's signature is refused.
        forged = ticket.replace(".reader.", ".boss.")
        assert fresh.get("/v1/jobs", params={"ticket": forged}
                         ).status_code == 401
    # The token leaves the file: its session and tickets die with it.
    scoped.tokens.write_text(TOKENS.replace("reader  r3ader-token  read\n",
                                            ""))
    os.utime(scoped.tokens, (1, 1))
    with scoped.client() as fresh:
        # The file is re-read at most once a second.
        deadline = time.monotonic() + 20
        r = fresh.get("/v1/jobs", params={"ticket": ticket})
        while r.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            r = fresh.get("/v1/jobs", params={"ticket": ticket})
        assert r.status_code == 401


def wait_for_log(server, text, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.log.read_text(errors="replace"):
            return True
        time.sleep(0.02)
    return False


def test_http_calls_are_in_the_debug_access_log(tmp_path):
    # #27: one line per HTTP call at debug, in the shape of gRPC's, naming
    # the caller (the token's name) and the peer: a Unix peer by its uid,
    # gid and pid (SO_PEERCRED), a TCP peer by its address.
    path = tmp_path / "tokens"
    path.write_text(TOKENS)
    os.chmod(path, 0o600)
    s = Server(tmp_path, "--auth-token-file", str(path), "--log-level",
               "debug", "--shutdown-grace=1s")
    try:
        with s.unix_client() as http:
            r = http.post("/v1/jobs", json={"job": {"kind": "k"}},
                          headers=bearer("subm1t-token"))
            assert r.status_code == 200, r.text
        unix_peer = (f"unix:uid={os.getuid()},gid={os.getgid()},"
                     f"pid={os.getpid()}")
        assert wait_for_log(
            s, f"call POST /v1/jobs by token:sub from {unix_peer}"), \
            s.log.read_text()
        with s.client() as http:
            assert http.get("/v1/jobs", headers=bearer("r3ader-token")
                            ).status_code == 200
        assert wait_for_log(
            s, "call GET /v1/jobs by token:reader from ipv4:127.0.0.1:"), \
            s.log.read_text()
    finally:
        assert s.stop() == 0
