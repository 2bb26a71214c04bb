// One job: its fields, args, result and error as JSON, its attempts, the
// gates that hold it (GET /v1/jobs/{id}:explain, while it waits), and its
// event log, live (/v1/jobs/{id}/events?after_seq=0: the whole log from
// the durable store, then every new event; the stream ends after the
// terminal event).

import {api, seg} from "./api.js";
import {fill, h, poll, say} from "./dom.js";
import * as fmt from "./format.js";
import {ACTIONS, applyEvent, paintProgress} from "./jobs.js";
import {follow} from "./live.js";

// The log keeps this many entries on the page; older ones are dropped (the
// page of a job that logs forever stays bounded).
const MAX_LOG = 500;
const EXPLAIN_MS = 3000;

export function mountJob(main, _params, id) {
  let job = null;
  let stream = null;
  let lastSeq = 0;  // the stream's cursor
  let dropped = 0;
  const attempts = new Map();  // attempt number → {start, end, outcome, error}

  const title = h("h1", {class: "mono"}, id);
  const badge = h("span", {class: "badge"});
  const notice = h("p", {class: "notice", role: "status", "aria-live": "polite"});
  const buttons = Object.entries(ACTIONS).map(([name, a]) => {
    const b = h("button", {type: "button", class: a.kind || "", "data-action": name}, a.label);
    b.addEventListener("click", () => act(name, a.label));
    return b;
  });
  const bar = h("progress", {max: 1, "aria-label": "Progress"});
  const progressText = h("span", {class: "muted"});
  const fields = h("dl", {class: "fields"});
  const gates = h("section", {class: "panel", id: "gates", "aria-labelledby": "gates-title", hidden: true});
  const args = h("pre", {class: "json", id: "args", tabindex: 0});
  const result = h("pre", {class: "json", id: "result", tabindex: 0});
  const error = h("pre", {class: "json", id: "error", tabindex: 0});
  const attemptsBody = h("tbody", {}, h("tr", {}, h("td", {colspan: 5, class: "muted"}, "No attempt yet.")));
  const log = h("ol", {class: "log", id: "log", "aria-live": "off"});
  const logNote = h("p", {class: "muted small"});

  fill(main,
    h("p", {}, h("a", {href: "#/jobs"}, "← Jobs")),
    h("div", {class: "job-head"}, title, badge),
    h("div", {class: "row-actions"}, buttons),
    notice,
    h("div", {class: "progress big"}, bar, progressText),
    gates,
    h("div", {class: "columns"},
      h("section", {"aria-labelledby": "fields-title"}, h("h2", {id: "fields-title"}, "Fields"), fields),
      h("section", {"aria-labelledby": "data-title"},
        h("h2", {id: "data-title"}, "Args"), args,
        h("h2", {}, "Result"), result,
        h("h2", {}, "Error"), error)),
    h("section", {"aria-labelledby": "attempts-title"},
      h("h2", {id: "attempts-title"}, "Attempts"),
      h("div", {class: "table-wrap"}, h("table", {class: "grid attempts"},
        h("thead", {}, h("tr", {}, ["Attempt", "Started", "Ended", "Outcome", "Error"].map((c) => h("th", {scope: "col"}, c)))),
        attemptsBody))),
    h("section", {"aria-labelledby": "log-title"},
      h("h2", {id: "log-title"}, "Events"), logNote, log));

  function paint() {
    const s = fmt.state(job.state);
    badge.className = `badge ${s}`;
    badge.textContent = s.toLowerCase();
    badge.id = "job-state";
    document.title = `${s.toLowerCase()} ${job.kind} · jobwire`;
    paintProgress(bar, progressText, job);
    for (const b of buttons) {
      b.disabled = !ACTIONS[b.dataset.action].states.includes(s);
    }
    const labels = Object.entries(job.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    const rows = [
      ["Queue", job.queue], ["Kind", job.kind], ["Priority", fmt.num(job.priority)],
      ["Attempt", `${fmt.num(job.attempt)} of ${job.maxAttempts ? fmt.num(job.maxAttempts) : "default"}`],
      ["Labels", labels || "—"],
      ["Created", fmt.fullTime(job.createTime)], ["Scheduled for", fmt.fullTime(job.scheduleTime)],
      ["Started", fmt.fullTime(job.startTime)], ["Updated", fmt.fullTime(job.updateTime)],
      ["Finished", fmt.fullTime(job.finishTime)],
      ["Worker", job.workerId || "—"], ["Lease until", fmt.fullTime(job.leaseExpireTime)],
      ["Attempt timeout", job.attemptTimeout ? fmt.duration(job.attemptTimeout) : "—"],
      ["Payload", job.payload ? `${fmt.num(atob(job.payload).length)} bytes` : "—"],
      ["Webhook", job.webhook?.url || "—"], ["Etag", job.etag || "—"],
    ];
    fill(fields, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    args.textContent = job.args ? fmt.json(job.args) : "—";
    result.textContent = job.result ? fmt.json(job.result) : "—";
    error.textContent = job.error ? fmt.json(job.error) : "—";
  }

  async function explain() {
    if (!job) return;
    const s = fmt.state(job.state);
    if (fmt.TERMINAL.has(s)) {
      gates.hidden = true;
      return;
    }
    const r = await api("GET", `/v1/jobs/${seg(id)}:explain`);
    const list = r.gates || [];
    gates.hidden = false;
    fill(gates,
      h("h2", {id: "gates-title"}, s === "RUNNING" ? "What holds it" : "Why it waits"),
      list.length === 0
        ? h("p", {}, "Nothing holds it: it runs as soon as a worker takes it.")
        : h("ul", {class: "gates"}, list.map((g) =>
          h("li", {"data-gate": g.type}, h("strong", {}, g.type), " ", g.description))));
  }

  function addLog(type, e) {
    const entry = h("li", {"data-type": type},
      h("span", {class: "seq"}, `#${e.seq}`), " ",
      h("time", {datetime: e.time, title: fmt.fullTime(e.time)}, fmt.time(e.time)), " ",
      h("span", {class: "type"}, type.replace("_", " ")), " ",
      h("span", {class: "what"}, describe(type, e)));
    log.append(entry);
    while (log.childElementCount > MAX_LOG) {
      log.firstElementChild.remove();
      dropped++;
    }
    logNote.textContent = dropped ? `${fmt.num(dropped)} older events are not shown.` : "";
  }

  function noteAttempt(e) {
    const c = e.stateChanged;
    if (!c) return;
    const to = fmt.state(c.to);
    const n = c.attempt || job?.attempt || 1;
    const a = attempts.get(n) || {n};
    if (to === "RUNNING") a.start = e.time;
    else if (fmt.state(c.from) === "RUNNING" || a.start) {
      a.end = e.time;
      a.outcome = to;
      if (c.error) a.error = c.error.message;
      if (c.reason && !a.error && to !== "SUCCEEDED") a.error = c.reason;
    }
    if (!a.start && !a.end) return;
    attempts.set(n, a);
    fill(attemptsBody, [...attempts.values()].map((x) => h("tr", {},
      h("td", {"data-label": "attempt"}, fmt.num(x.n)),
      h("td", {"data-label": "started"}, fmt.time(x.start)),
      h("td", {"data-label": "ended"}, fmt.time(x.end)),
      h("td", {"data-label": "outcome"}, x.outcome ? h("span", {class: `badge ${x.outcome}`}, x.outcome.toLowerCase()) : "running"),
      h("td", {"data-label": "error"}, x.error || ""))));
  }

  function openStream() {
    stream?.close();
    stream = follow(`/v1/jobs/${seg(id)}/events?after_seq=${lastSeq}`, {
      event(type, e) {
        const seq = Number(e.seq || 0);
        if (seq <= lastSeq) return;
        lastSeq = seq;
        addLog(type, e);
        if (type === "state_changed") noteAttempt(e);
        if (!job) return;
        if (seq > Number(job.lastSeq || 0)) {
          job = applyEvent(job, type, e);
          paint();
        }
        if (type === "updated") refetch();
        if (type === "state_changed") {
          explainer.now();
          if (fmt.TERMINAL.has(fmt.state(e.stateChanged.to))) {
            // The server ends the stream here; closing first spares the
            // reconnect that it would answer 204.
            stream?.close();
            stream = null;
            refetch();
          }
        }
      },
      reset() {
        // The log before the cursor was pruned: start over from what is kept.
        fill(log);
        lastSeq = 0;
      },
      closed() {
        stream?.close();
        stream = null;
      },
    });
  }

  async function refetch() {
    try {
      job = await api("GET", `/v1/jobs/${seg(id)}`);
      paint();
    } catch (err) {
      // the next event or action tries again
    }
  }

  async function act(name, label) {
    try {
      job = await api("POST", `/v1/jobs/${seg(id)}:${name}`, {});
      paint();
      say(notice, `${label}: done`);
      explainer.now();
      if (!stream) openStream();  // a retried job has a future again
    } catch (err) {
      say(notice, `${label} failed: ${err.describe ? err.describe() : err.message}`, "error");
    }
  }

  const explainer = poll(EXPLAIN_MS, explain);
  (async () => {
    try {
      job = await api("GET", `/v1/jobs/${seg(id)}`);
    } catch (err) {
      if (err.httpStatus !== 401) fill(main, h("h1", {}, "Job"), h("p", {class: "error", role: "alert"}, err.describe ? err.describe() : err.message));
      explainer.stop();
      return;
    }
    paint();
    explainer.now();
    openStream();
  })();

  return {
    unmount() {
      explainer.stop();
      stream?.close();
    },
  };
}

function describe(type, e) {
  switch (type) {
    case "snapshot":
      return `state ${fmt.state(e.snapshot.state).toLowerCase()}`;
    case "state_changed": {
      const c = e.stateChanged;
      const parts = [`${fmt.state(c.from).toLowerCase()} → ${fmt.state(c.to).toLowerCase()}`];
      if (c.attempt) parts.push(`attempt ${c.attempt}`);
      if (c.reason) parts.push(c.reason);
      if (c.error?.message) parts.push(`error: ${c.error.message}`);
      return parts.join(" · ");
    }
    case "progress": {
      const p = e.progress;
      return `${fmt.num(p.done)} / ${fmt.num(p.total)}${p.message ? ` ${p.message}` : ""}`;
    }
    case "updated":
      return (e.updated.paths || []).join(", ");
    case "log":
      return e.log.line;
    case "webhook_delivery": {
      const d = e.webhookDelivery;
      return `attempt ${d.attempt || 1}: ${d.delivered ? "delivered" : "not delivered"}` +
        `${d.httpStatus ? ` (HTTP ${d.httpStatus})` : ""}${d.error ? ` ${d.error}` : ""}`;
    }
    default:
      return "";
  }
}
