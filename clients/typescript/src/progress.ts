// Progress over many jobs: aggregate counts from one WatchJobs stream.

import type { Client } from "./client";
import { isTerminal } from "./client";
import { Job_State } from "./gen/jobwire/v1/job";

/** The jobs a watchProgress follows, at one moment. */
export interface Progress {
  total: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  running: number;
  /** Ended: succeeded + failed + cancelled. */
  ended: number;
  /** Jobs ended per second since the watch began (those that ended while
   *  watched), and the seconds left at that rate (undefined: unknown or
   *  done). */
  rate: number;
  etaSeconds?: number;
}

/** Aggregate counts over the jobs `filter` matches (and any that match
 *  later) until every one has ended: one Progress at the start and one after
 *  each change. It takes a cursor (the server info's lastEventId), lists
 *  them, then follows them on one WatchJobs stream from that cursor,
 *  skipping what the list saw. Stop early with `break`. */
export async function* watchProgress(client: Client, filter = ""): AsyncGenerator<Progress> {
  const jobs = new Map<string, { state: Job_State; seq: number }>();
  const start = Date.now();
  let endedHere = 0;
  const progress = (): Progress => {
    const p: Progress = { total: jobs.size, succeeded: 0, failed: 0, cancelled: 0, running: 0, ended: 0, rate: 0 };
    for (const { state } of jobs.values()) {
      if (state === Job_State.STATE_SUCCEEDED) p.succeeded++;
      else if (state === Job_State.STATE_FAILED) p.failed++;
      else if (state === Job_State.STATE_CANCELLED) p.cancelled++;
      else if (state === Job_State.STATE_RUNNING) p.running++;
    }
    p.ended = p.succeeded + p.failed + p.cancelled;
    const seconds = (Date.now() - start) / 1000;
    p.rate = seconds > 0 ? endedHere / seconds : 0;
    if (p.rate > 0 && p.ended < p.total) p.etaSeconds = (p.total - p.ended) / p.rate;
    return p;
  };
  const allEnded = () => [...jobs.values()].every((k) => isTerminal(k.state));
  // The cursor before the list: every change after the list is on the
  // stream, which replays nothing older.
  const cursor = (await client.admin.getServerInfo()).lastEventId;
  for await (const job of client.listJobs(filter)) jobs.set(job.id, { state: job.state, seq: job.lastSeq });
  yield progress();
  if (allEnded()) return;
  const stream = client.watchJobs(filter, cursor);
  try {
    for await (const e of stream) {
      let state: Job_State;
      if (e.stateChanged) state = e.stateChanged.to;
      else if (e.snapshot) state = e.snapshot.state;
      else continue;
      const before = jobs.get(e.jobId);
      if (before && e.seq <= before.seq) continue; // a replay of what the list saw
      if (before && isTerminal(state) && !isTerminal(before.state)) endedHere++;
      jobs.set(e.jobId, { state, seq: e.seq });
      yield progress();
      if (allEnded()) return;
    }
  } finally {
    await stream.return(undefined);
  }
}
