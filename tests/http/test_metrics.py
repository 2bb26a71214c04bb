"""GET /metrics: Prometheus text that promtool accepts, moving with jobs."""

import re
import shutil
import subprocess


def value(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_a_live_scrape_passes_promtool_and_counters_move(server, http):
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    before = http.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain; version=0.0.4")
    for _ in range(3):
        r = http.post("/v1/jobs", json={"job": {"kind": "k", "queue": "web"}})
        job = r.json()["job"]["id"]
    http.post(f"/v1/jobs/{job}:cancel", json={})
    after = http.get("/metrics").text
    name = "jobwire_jobs_submitted_total"
    assert value(after, name, '{queue="web"}') == \
        value(before.text, name, '{queue="web"}') + 3
    assert value(after, "jobwire_jobs_cancelled_total", '{queue="web"}') == 1
    assert value(after, "jobwire_jobs", '{queue="web",state="queued"}') == 2
    assert value(after, "jobwire_http_connections") >= 1
    check = subprocess.run([promtool, "check", "metrics"], input=after,
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
