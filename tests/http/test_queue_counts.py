"""Job counts by queue and state (GET /v1/queues, GET /v1/server) stay exact.

The store keeps them in memory from each commit (counted once at start), so
they are checked here against what ListJobs finds, state by state, after
submits, cancels, bulk pause, move, retry and delete, and after a restart.
"""

STATES = ["QUEUED", "SCHEDULED", "RUNNING", "PAUSED", "SUCCEEDED", "FAILED",
          "CANCELLED"]
QUEUES = ["qa", "qb", "qc"]


def listed(http, queue: str, state: str) -> int:
    n, token = 0, ""
    while True:
        r = http.get("/v1/jobs", params={
            "filter": f'queue = "{queue}" AND state = {state}',
            "page_size": 1000, "page_token": token})
        assert r.status_code == 200, r.text
        body = r.json()
        n += len(body.get("jobs", []))
        token = body.get("nextPageToken", "")
        if not token:
            return n


def expect_exact(http, when: str) -> dict:
    r = http.get("/v1/queues")
    assert r.status_code == 200, r.text
    counted = {q["name"]: q.get("counts", {}) for q in r.json()["queues"]}
    r = http.get("/v1/server")
    assert r.status_code == 200, r.text
    totals = r.json().get("jobCounts", {})
    found = {}
    for queue in QUEUES:
        for state in STATES:
            n = listed(http, queue, state)
            found[(queue, state)] = n
            assert int(counted.get(queue, {}).get(state, 0)) == n, \
                (when, queue, state, counted)
    for state in STATES:
        assert int(totals.get(state, 0)) == \
            sum(found[(q, state)] for q in QUEUES), (when, state, totals)
    return counted


def bulk(http, body: dict) -> dict:
    r = http.post("/v1/jobs:bulkUpdate", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_counts_stay_exact_through_writes_bulk_changes_and_a_restart(server,
                                                                      http):
    jobs = []
    for i in range(240):
        job = {"queue": QUEUES[i % 2], "kind": "k"}
        if i % 6 == 0:
            job["scheduleTime"] = "2099-01-01T00:00:00Z"
        jobs.append({"job": job})
    r = http.post("/v1/jobs:batchSubmit", json={"jobs": jobs})
    assert r.status_code == 200, r.text
    ids = r.json()["ids"]
    expect_exact(http, "after the submits")

    for job_id in ids[:10]:
        assert http.post(f"/v1/jobs/{job_id}:cancel", json={}).status_code \
            == 200
    expect_exact(http, "after the cancels")

    paused = bulk(http, {"filter": 'queue = "qb" AND state = QUEUED',
                         "action": "ACTION_PAUSE"})
    assert int(paused.get("updated", 0)) > 0, paused
    expect_exact(http, "after a bulk pause")
    moved = bulk(http, {"filter": 'queue = "qb" AND state = PAUSED',
                        "patch": {"queue": "qc"}, "updateMask": "queue"})
    assert int(moved.get("updated", 0)) > 0, moved
    expect_exact(http, "after a bulk move to another queue")
    bulk(http, {"filter": 'queue = "qa"', "action": "ACTION_CANCEL"})
    bulk(http, {"ids": {"ids": ids[:4]}, "action": "ACTION_RETRY"})
    expect_exact(http, "after a bulk cancel and a retry")
    deleted = bulk(http, {"filter": "state = CANCELLED",
                          "action": "ACTION_DELETE"})
    assert int(deleted.get("updated", 0)) > 0, deleted
    before = expect_exact(http, "after a bulk delete")

    server.restart()
    with server.client() as again:
        assert expect_exact(again, "after a restart") == before
