// Queues: counts by state, workers and their free slots, weight, concurrency
// limit and pause state of every queue (GET /v1/queues, polled every 2 s: the
// server keeps the counts in memory, so a poll costs no counting query
// however many jobs there are, where following /v1/events would cost the
// browser every event), with pause (now or for a while), resume and
// settings; and the server-wide dispatch pause (GET /v1/server,
// POST /v1/dispatch:pause, :resume).

import {api, seg} from "./api.js";
import {KeyedRows, cell, fill, h, poll, say} from "./dom.js";
import * as fmt from "./format.js";

const POLL_MS = 2000;
const COUNT_STATES = ["QUEUED", "SCHEDULED", "RUNNING", "PAUSED", "SUCCEEDED", "FAILED", "CANCELLED"];

export function mountQueues(main) {
  const notice = h("p", {class: "notice", role: "status", "aria-live": "polite"});
  const dispatch = h("section", {class: "panel", "aria-labelledby": "dispatch-title"});
  const tbody = h("tbody");
  const empty = h("p", {class: "muted", hidden: true}, "No queues yet: a queue appears with its first job.");
  const table = h("table", {class: "grid queues", "aria-labelledby": "queues-title"},
    h("thead", {}, h("tr", {},
      h("th", {scope: "col"}, "Queue"),
      COUNT_STATES.map((s) => h("th", {scope: "col", class: "n"}, s.toLowerCase())),
      h("th", {scope: "col", class: "n"}, "done/min"),
      h("th", {scope: "col", class: "n"}, "workers"),
      h("th", {scope: "col", class: "n", title: "free slots of the connected workers serving the queue"}, "free slots"),
      h("th", {scope: "col", class: "n"}, "weight"),
      h("th", {scope: "col", class: "n"}, "limit"),
      h("th", {scope: "col"}, "dispatch"),
      h("th", {scope: "col"}, "actions"))),
    tbody);
  fill(main,
    h("h1", {id: "queues-title"}, "Queues"),
    dispatch, notice,
    h("div", {class: "table-wrap"}, table), empty);

  const refresh = async () => {
    const [queues, server] = await Promise.all([api("GET", "/v1/queues"), api("GET", "/v1/server")]);
    rows.sync(queues.queues || []);
    empty.hidden = (queues.queues || []).length > 0;
    paintDispatch(server.dispatch || {});
  };
  const act = async (what, fn) => {
    try {
      await fn();
      say(notice, what);
    } catch (err) {
      say(notice, `${what} failed: ${err.describe ? err.describe() : err.message}`, "error");
    }
    poller.now();
  };
  const rows = new KeyedRows(tbody, (q) => q.name, (q) => queueRow(q, act));

  const reason = h("input", {id: "dispatch-reason", type: "text", placeholder: "db maintenance"});
  const dispatchState = h("p", {id: "dispatch-state"});
  const pauseButton = h("button", {type: "button", class: "danger"}, "Pause dispatch");
  const resumeButton = h("button", {type: "button", class: "primary"}, "Resume dispatch");
  pauseButton.addEventListener("click", () => act("Dispatch paused",
    () => api("POST", "/v1/dispatch:pause", {reason: reason.value})));
  resumeButton.addEventListener("click", () => act("Dispatch resumed",
    () => api("POST", "/v1/dispatch:resume", {})));
  fill(dispatch,
    h("h2", {id: "dispatch-title"}, "Dispatch (server-wide)"),
    dispatchState,
    h("div", {class: "inline-form"},
      h("label", {for: "dispatch-reason"}, "Reason"), reason, pauseButton, resumeButton));
  function paintDispatch(d) {
    fill(dispatchState, d.paused
      ? h("span", {class: "badge PAUSED"}, `paused${d.reason ? `: ${d.reason}` : ""}`)
      : h("span", {class: "badge RUNNING"}, "running"),
    d.paused ? " No job is handed to a worker; submissions are still accepted."
      : " Jobs are handed to workers.");
    pauseButton.hidden = Boolean(d.paused);
    reason.hidden = Boolean(d.paused);
    reason.labels[0].hidden = Boolean(d.paused);
    resumeButton.hidden = !d.paused;
  }

  const poller = poll(POLL_MS, async () => {
    try {
      await refresh();
    } catch (err) {
      if (err.httpStatus !== 401) say(notice, `Cannot load queues: ${err.message}`, "error");
    }
  });
  return {unmount: () => poller.stop()};
}

// One queue's row; `act(what, fn)` runs an action and reports it.
function queueRow(q, act) {
  const id = `q-${q.name}`;
  const counts = COUNT_STATES.map((s) => cell(s.toLowerCase()));
  for (const c of counts) c.classList.add("n");
  const finished = cell("done/min");
  const workers = cell("workers");
  const freeSlots = cell("free slots");
  const weight = cell("weight");
  const limit = cell("limit");
  const status = cell("dispatch");
  finished.classList.add("n");
  workers.classList.add("n");
  freeSlots.classList.add("n");
  freeSlots.dataset.field = "free-slots";
  weight.classList.add("n");
  limit.classList.add("n");

  const pause = h("button", {type: "button", class: "danger"}, "Pause");
  const resume = h("button", {type: "button", class: "primary"}, "Resume");
  pause.setAttribute("aria-label", `Pause queue ${q.name}`);
  resume.setAttribute("aria-label", `Resume queue ${q.name}`);
  pause.addEventListener("click", () => act(`Queue ${q.name} paused`,
    () => api("POST", `/v1/queues/${seg(q.name)}:pause`, {})));
  resume.addEventListener("click", () => act(`Queue ${q.name} resumed`,
    () => api("POST", `/v1/queues/${seg(q.name)}:resume`, {})));

  // Settings: weight, limit, and a timed pause.
  const weightInput = h("input", {id: `${id}-weight`, type: "number", min: 1, step: 1, inputmode: "numeric"});
  const limitInput = h("input", {id: `${id}-limit`, type: "number", min: 0, step: 1, inputmode: "numeric"});
  const minutes = h("input", {id: `${id}-minutes`, type: "number", min: 1, step: 1, value: 10, inputmode: "numeric"});
  const save = h("button", {type: "button", class: "primary"}, "Save");
  const pauseFor = h("button", {type: "button", class: "danger"}, "Pause for");
  save.addEventListener("click", () => act(`Queue ${q.name} updated`, () =>
    api("PATCH", `/v1/queues/${seg(q.name)}`,
      {name: q.name, weight: Number(weightInput.value), concurrencyLimit: Number(limitInput.value)},
      {update_mask: "weight,concurrency_limit"})));
  pauseFor.addEventListener("click", () => {
    const until = new Date(Date.now() + Number(minutes.value || 0) * 60000);
    act(`Queue ${q.name} paused until ${fmt.time(until.toISOString())}`,
      () => api("POST", `/v1/queues/${seg(q.name)}:pause`, {resumeTime: until.toISOString()}));
  });
  const settings = h("details", {class: "settings"},
    h("summary", {}, "Settings", h("span", {class: "sr-only"}, ` of queue ${q.name}`)),
    h("div", {class: "settings-form"},
      h("label", {for: weightInput.id}, "Weight"), weightInput,
      h("label", {for: limitInput.id}, "Limit (0: none)"), limitInput, save,
      h("label", {for: minutes.id}, "Minutes"), minutes, pauseFor));
  let edited = false;
  for (const input of [weightInput, limitInput]) input.addEventListener("input", () => { edited = true; });
  settings.addEventListener("toggle", () => { if (!settings.open) edited = false; });

  const el = h("tr", {"data-queue": q.name},
    h("th", {scope: "row", "data-label": "queue"}, h("a", {href: `#/jobs?filter=${encodeURIComponent(`queue = "${q.name}"`)}`}, q.name)),
    counts, finished, workers, freeSlots, weight, limit, status,
    cell("actions", h("div", {class: "row-actions"}, pause, resume, settings)));
  return {
    el,
    update(q) {
      COUNT_STATES.forEach((s, i) => {
        counts[i].textContent = fmt.num(q.counts?.[s]);
        counts[i].dataset.state = s;
      });
      finished.textContent = fmt.num(q.finishedLastMinute);
      workers.textContent = fmt.num(q.workers);
      freeSlots.textContent = fmt.num(q.freeSlots);
      weight.textContent = fmt.num(q.weight || 1);
      limit.textContent = q.concurrencyLimit ? fmt.num(q.concurrencyLimit) : "none";
      if (!edited) {
        weightInput.value = q.weight || 1;
        limitInput.value = q.concurrencyLimit || 0;
      }
      fill(status, q.paused
        ? h("span", {class: "badge PAUSED", title: q.resumeTime ? fmt.fullTime(q.resumeTime) : ""},
          q.resumeTime ? `paused until ${fmt.time(q.resumeTime)} (${fmt.fromNow(q.resumeTime)})` : "paused")
        : h("span", {class: "badge RUNNING"}, "running"));
      pause.hidden = Boolean(q.paused);
      resume.hidden = !q.paused;
    },
  };
}
