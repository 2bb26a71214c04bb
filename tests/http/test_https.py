"""HTTPS on the HTTP face's TCP listeners (#27): the --tls-cert/--tls-key
files that gRPC serves, client certificates with --tls-client-ca, reload on
change, a handshake deadline; the Unix socket stays plaintext. Certificates
are made by openssl in the test."""

import os
import shutil
import socket
import ssl
import subprocess

import httpx
import httpx_sse
import pytest

from conftest import Server

SCRIPT = r"""
set -e
ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout $1.key -out $1.pem -days 2 -subj "/CN=$1"; }
leaf() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout $1.key -out $1.csr -subj "/CN=$1"
  printf 'subjectAltName=%s\n' "$3" > $1.ext
  openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial \
    -out $1.pem -days 2 -extfile $1.ext; }
ca ca; ca ca2
leaf server ca DNS:localhost,IP:127.0.0.1
leaf server2 ca2 DNS:localhost,IP:127.0.0.1
leaf client ca DNS:client
leaf client2 ca2 DNS:client2
"""


@pytest.fixture
def certs(tmp_path):
    d = tmp_path / "certs"
    d.mkdir()
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificates")
    subprocess.run(["bash", "-c", SCRIPT], cwd=d, check=True,
                   capture_output=True)
    return d


def tls_flags(certs, client_ca=False):
    flags = ["--tls-cert", str(certs / "server.pem"),
             "--tls-key", str(certs / "server.key")]
    if client_ca:
        flags += ["--tls-client-ca", str(certs / "ca.pem")]
    return flags


def https(server, certs, ca="ca", client=None):
    cert = None
    if client:
        cert = (str(certs / f"{client}.pem"), str(certs / f"{client}.key"))
    context = ssl.create_default_context(cafile=str(certs / f"{ca}.pem"))
    if cert:
        context.load_cert_chain(*cert)
    return httpx.Client(base_url=server.url, timeout=10, verify=context)


def json_and_sse_work(http):
    """A JSON call, and an SSE stream that stays open across an event, over
    `http`."""
    r = http.post("/v1/jobs", json={"job": {"kind": "k"}})
    assert r.status_code == 200, r.text
    job = r.json()["job"]["id"]
    events = []
    with httpx_sse.connect_sse(http, "GET", f"/v1/jobs/{job}/events") as src:
        assert src.response.status_code == 200, src.response.read()
        for sse in src.iter_sse():
            events.append(sse.event)
            if sse.event == "snapshot":
                # On another connection, while this stream waits.
                r = http.post(f"/v1/jobs/{job}:cancel", json={})
                assert r.status_code == 200, r.text
    # The stream ends by itself after the terminal event.
    assert events == ["snapshot", "state_changed"], events


@pytest.fixture
def tls_server(tmp_path, certs):
    s = Server(tmp_path, "--http-request-timeout=1s", *tls_flags(certs))
    yield s
    assert s.stop() == 0


def test_json_and_sse_over_https_with_the_right_ca(tls_server, certs):
    assert tls_server.url.startswith("https://127.0.0.1:")
    with https(tls_server, certs) as http:
        json_and_sse_work(http)
    # The Unix socket stays plaintext.
    with tls_server.unix_client() as http:
        assert http.get("/v1/server").status_code == 200


def test_wrong_ca_and_plaintext_are_refused(tls_server, certs):
    with https(tls_server, certs, ca="ca2") as http:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"):
            http.get("/v1/server")
    plain = tls_server.url.replace("https://", "http://")
    with httpx.Client(base_url=plain, timeout=10) as http:
        with pytest.raises(httpx.HTTPError):
            http.get("/v1/server")


def test_a_peer_that_never_handshakes_is_closed(tls_server):
    port = int(tls_server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        # Far beyond --http-request-timeout=1s: only a hang fails.
        sock.settimeout(30)
        try:
            assert sock.recv(1) == b""
        except ConnectionResetError:
            pass


def tls_socket(server, certs):
    """A raw TLS connection to `server` that raises ssl.SSLEOFError when the
    server closes without a close_notify (a truncation)."""
    port = int(server.url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1",
                               suppress_ragged_eofs=False)


def read_to_clean_end(tls):
    """Everything the server sends until its close_notify."""
    data = b""
    while True:
        chunk = tls.recv(65536)  # SSLEOFError on a close without close_notify
        if not chunk:
            return data
        data += chunk


def test_https_closes_end_with_close_notify(tls_server, certs):
    # #27: a response that closes the connection ends with a TLS close_notify.
    with tls_socket(tls_server, certs) as tls:
        tls.sendall(b"GET /v1/server HTTP/1.1\r\nHost: localhost\r\n"
                    b"Connection: close\r\n\r\n")
        assert read_to_clean_end(tls).startswith(b"HTTP/1.1 200")
    # A client that closes first with its close_notify is answered with one.
    with tls_socket(tls_server, certs) as tls:
        tls.sendall(b"GET /v1/server HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert tls.recv(65536).startswith(b"HTTP/1.1 200")
        tls.unwrap()  # sends close_notify, then waits for the server's
    # An event stream that ends (the job's terminal event) ends cleanly too.
    with https(tls_server, certs) as http:
        r = http.post("/v1/jobs", json={"job": {"kind": "k"}})
        job = r.json()["job"]["id"]
        with tls_socket(tls_server, certs) as tls:
            tls.sendall(f"GET /v1/jobs/{job}/events HTTP/1.1\r\n"
                        "Host: localhost\r\nAccept: text/event-stream\r\n"
                        "\r\n".encode())
            assert tls.recv(65536).startswith(b"HTTP/1.1 200")
            assert http.post(f"/v1/jobs/{job}:cancel",
                             json={}).status_code == 200
            assert b"state_changed" in read_to_clean_end(tls)


def test_a_changed_certificate_is_served_without_a_restart(tls_server, certs):
    with https(tls_server, certs) as http:
        assert http.get("/v1/server").status_code == 200
    for ext in ("key", "pem"):
        tmp = certs / f"new.{ext}"
        shutil.copy(certs / f"server2.{ext}", tmp)
        os.replace(tmp, certs / f"server.{ext}")
    with https(tls_server, certs, ca="ca2") as http:
        assert http.get("/v1/server").status_code == 200
    with https(tls_server, certs) as http:
        with pytest.raises(httpx.ConnectError):
            http.get("/v1/server")


def test_client_certificates_are_required_with_a_client_ca(tmp_path, certs):
    s = Server(tmp_path, *tls_flags(certs, client_ca=True))
    try:
        with https(s, certs, client="client") as http:
            json_and_sse_work(http)
        for client in (None, "client2"):
            with https(s, certs, client=client) as http:
                # Refused in the handshake or at the first read (TLS 1.3
                # checks the client's certificate after the client's
                # Finished).
                with pytest.raises((httpx.ConnectError, httpx.ReadError,
                                    httpx.RemoteProtocolError)):
                    http.get("/v1/server")
    finally:
        assert s.stop() == 0
