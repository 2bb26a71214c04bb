"""Progress over many jobs: aggregate counts from one WatchJobs stream.

    from jobwire import Client
    from jobwire.progress import follow_jobs, watch_progress

    with Client() as client:
        for p in watch_progress(client, 'labels.batch = "b1"'):
            print(p.ended, "/", p.total, p.rate, p.eta)
        final = follow_jobs(client, 'labels.batch = "b1"')  # a bar

``watch_progress`` takes a cursor (the server info's ``last_event_id``),
lists the jobs a filter matches, then follows them (and any that appear
later) on one ``watch_jobs`` stream from that cursor, skipping what the list
already saw, until every one has ended; it yields a
``Progress`` at the start and after each change. ``follow_jobs`` draws it as
a ``tqdm`` bar when tqdm is installed (an optional dependency:
``pip install jobwire[progress]``), else writes a line each time a job ends.
"""

import dataclasses
import sys
import time
from typing import (Callable, Collection, Dict, Iterator, Optional, TextIO,
                    Tuple)

from jobwire.client import Client, Job, is_terminal

_SUCCEEDED = Job.STATE_SUCCEEDED
_FAILED = Job.STATE_FAILED
_CANCELLED = Job.STATE_CANCELLED
_RUNNING = Job.STATE_RUNNING


@dataclasses.dataclass(frozen=True)
class Progress:
    """The selected jobs at one moment."""

    total: int
    succeeded: int
    failed: int
    cancelled: int
    running: int
    # Jobs ended per second since the watch began (those that ended while
    # watched), and the seconds left at that rate (None: unknown or done).
    rate: float
    eta: Optional[float]

    @property
    def ended(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def done(self) -> bool:
        return self.ended == self.total

    def __str__(self) -> str:
        eta = "-" if self.eta is None else f"{self.eta:.0f}s"
        return (f"{self.ended}/{self.total} ended: {self.succeeded} "
                f"succeeded, {self.failed} failed, {self.cancelled} "
                f"cancelled; {self.running} running; {self.rate:.1f}/s; "
                f"ETA {eta}")


def watch_progress(client: Client, filter: str = "", *,
                   ids: Optional[Collection[str]] = None,
                   clock: Callable[[], float] = time.monotonic
                   ) -> Iterator[Progress]:
    """Aggregate counts of the jobs ``filter`` matches (only ``ids`` among
    them when given), until all have ended. ``clock`` gives seconds (the
    rate's time base). Stop early by breaking out of the loop."""
    start = clock()
    known: Dict[str, Tuple[int, int]] = {}  # id -> (state, seq)
    ended_here = 0

    def wanted(job_id: str) -> bool:
        return ids is None or job_id in ids

    def progress() -> Progress:
        counts = {_SUCCEEDED: 0, _FAILED: 0, _CANCELLED: 0, _RUNNING: 0}
        for state, _ in known.values():
            if state in counts:
                counts[state] += 1
        total = len(known)
        ended = counts[_SUCCEEDED] + counts[_FAILED] + counts[_CANCELLED]
        seconds = clock() - start
        rate = ended_here / seconds if seconds > 0 else 0.0
        eta = (total - ended) / rate if rate > 0 and ended < total else None
        return Progress(total, counts[_SUCCEEDED], counts[_FAILED],
                        counts[_CANCELLED], counts[_RUNNING], rate, eta)

    def all_ended() -> bool:
        return all(is_terminal(state) for state, _ in known.values())

    # The cursor before the list: every change after the list is on the
    # stream, which replays nothing older.
    cursor = client.admin.get_server_info().last_event_id
    for job in client.list_jobs(filter):
        if wanted(job.id):
            known[job.id] = (job.state, job.last_seq)
    yield progress()
    if all_ended():
        return
    stream = client.watch_jobs(filter, after_event_id=cursor)
    try:
        for event in stream:
            if not wanted(event.job_id):
                continue
            if event.HasField("state_changed"):
                state = event.state_changed.to
            elif event.HasField("snapshot"):
                state = event.snapshot.state
            else:
                continue
            before = known.get(event.job_id)
            if before is not None and event.seq <= before[1]:
                continue  # a replay of what the list saw
            if (before is not None and is_terminal(state)
                    and not is_terminal(before[0])):
                ended_here += 1
            known[event.job_id] = (state, event.seq)
            yield progress()
            if all_ended():
                return
    finally:
        stream.close()


def follow_jobs(client: Client, filter: str = "", *,
                ids: Optional[Collection[str]] = None,
                out: TextIO = sys.stderr, bar: Optional[bool] = None
                ) -> Progress:
    """Follows the jobs ``filter`` matches to their end and returns the last
    ``Progress``: a tqdm bar on ``out`` when tqdm is importable (and ``bar``
    is not False), else a line each time the count of ended jobs changes."""
    tqdm_class = None
    if bar is not False:
        try:
            from tqdm import tqdm as tqdm_class
        except ImportError:
            tqdm_class = None
    last: Optional[Progress] = None
    if tqdm_class is not None:
        with tqdm_class(total=0, unit="job", file=out) as shown:
            for last in watch_progress(client, filter, ids=ids):
                shown.total = last.total
                shown.n = last.ended
                shown.set_postfix(succeeded=last.succeeded,
                                  failed=last.failed,
                                  cancelled=last.cancelled,
                                  running=last.running, refresh=False)
                shown.refresh()
        assert last is not None
        return last
    printed = -1
    for last in watch_progress(client, filter, ids=ids):
        if last.ended != printed:
            printed = last.ended
            print(last, file=out, flush=True)
    assert last is not None
    return last
