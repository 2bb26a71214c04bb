// Jobs: one page of ListJobs (never more: the server pages by token), with
// the AIP-160 filter box, paging, live state and progress, row actions, and
// bulk actions on the filter (a dry run first, then a confirmation).
//
// Live: ONE stream, /v1/events?filter=id = "a" OR id = "b" ..., follows the
// visible rows. On the first page it also takes the page's own filter when
// WatchJobs can evaluate it (no time or attempt terms), so an event of a
// job not shown yet (a new one) lists the page again at once (at most
// twice a second); otherwise the page is listed again every 5 s. When the
// rows change the stream is reopened from its last event id, so nothing is
// missed between the two. Hash parameters: filter, order, page (a token).

import {ApiError, api, seg} from "./api.js";
import {KeyedRows, cell, fill, h, poll, say} from "./dom.js";
import * as fmt from "./format.js";
import {follow} from "./live.js";

export const PAGE_SIZE = 50;
const RELIST_MS = 5000;
const RELIST_SOON_MS = 500;
// Fields that ListJobs filters on but WatchJobs cannot (watch_reactors.cc).
const NOT_WATCHABLE = /\b(attempt|create_time|update_time|schedule_time|finish_time)\b/;
const ORDERS = [
  ["create_time desc", "newest first"],
  ["create_time", "oldest first"],
  ["priority desc", "priority"],
  ["update_time desc", "recently updated"],
];
// A job's actions (POST /v1/jobs/{id}:NAME) and the states they apply to.
export const ACTIONS = {
  cancel: {label: "Cancel", states: ["QUEUED", "SCHEDULED", "RUNNING", "PAUSED"], kind: "danger"},
  pause: {label: "Pause", states: ["QUEUED", "SCHEDULED", "RUNNING"]},
  resume: {label: "Resume", states: ["PAUSED"]},
  retry: {label: "Retry", states: ["FAILED", "CANCELLED"]},
};
const BULK = [
  ["ACTION_CANCEL", "Cancel", "cancelled"],
  ["ACTION_PAUSE", "Pause", "paused"],
  ["ACTION_RESUME", "Resume", "resumed"],
  ["ACTION_RETRY", "Retry", "retried"],
  ["ACTION_DELETE", "Delete (finished jobs)", "deleted"],
];

export function mountJobs(main, params) {
  let state = readParams(params);
  let tokens = [];  // tokens of the pages before this one (for "Previous")
  let nextToken = "";
  let stream = null;
  let streamFilter = null;
  let soon = null;  // a pending relist
  let cursor = "";  // the last event id seen on the stream
  let firstRender = true;

  // --- the filter box ---
  const filterInput = h("input", {
    id: "filter", name: "filter", type: "search", spellcheck: "false", autocomplete: "off",
    placeholder: "state = RUNNING AND queue = \"emails\"", "aria-describedby": "filter-help filter-error",
  });
  const order = h("select", {id: "order", name: "order"},
    ORDERS.map(([value, label]) => h("option", {value}, label)));
  const filterError = h("p", {id: "filter-error", class: "error", role: "alert"});
  const filterForm = h("form", {class: "filter", role: "search"},
    h("label", {for: "filter"}, "Filter"),
    h("div", {class: "filter-row"},
      filterInput,
      h("label", {for: "order", class: "sr-only"}, "Order"), order,
      h("button", {type: "submit", class: "primary"}, "Apply")),
    h("p", {id: "filter-help", class: "muted small"},
      "AIP-160: state, queue, kind, priority, attempt, labels.KEY, create_time, update_time, " +
      "schedule_time, finish_time; = != < > <= >=, AND, OR, NOT. Example: ",
      h("code", {}, "state = FAILED AND create_time > \"2026-01-01T00:00:00Z\"")),
    filterError);
  filterForm.addEventListener("submit", (e) => {
    e.preventDefault();
    navigate({filter: filterInput.value.trim(), order: order.value, page: ""});
  });

  // --- bulk actions on the filter ---
  const bulkAction = h("select", {id: "bulk-action"}, BULK.map(([v, label]) => h("option", {value: v}, label)));
  const bulkPreview = h("button", {type: "button"}, "Preview");
  const bulkResult = h("div", {id: "bulk-result", role: "status", "aria-live": "polite"});
  const bulk = h("details", {class: "panel bulk"},
    h("summary", {}, "Bulk action on every job the filter matches"),
    h("div", {class: "inline-form"},
      h("label", {for: "bulk-action"}, "Action"), bulkAction, bulkPreview),
    bulkResult);
  bulkPreview.addEventListener("click", () => previewBulk());

  // --- the table ---
  const notice = h("p", {class: "notice", role: "status", "aria-live": "polite"});
  const tbody = h("tbody");
  const table = h("table", {class: "grid jobs", "aria-labelledby": "jobs-title"},
    h("thead", {}, h("tr", {},
      ["ID", "Queue", "Kind", "State", "Progress", "Attempt", "Created", "Actions"]
        .map((c) => h("th", {scope: "col"}, c)))),
    tbody);
  const empty = h("p", {class: "muted", hidden: true}, "No job matches.");
  const prev = h("button", {type: "button"}, "← Previous");
  const next = h("button", {type: "button"}, "Next →");
  const pageInfo = h("span", {class: "muted"});
  prev.addEventListener("click", () => {
    const token = tokens.pop() || "";
    navigate({...state, page: token}, /*keepTokens=*/true);
  });
  next.addEventListener("click", () => {
    tokens.push(state.page);
    navigate({...state, page: nextToken}, true);
  });
  const rows = new KeyedRows(tbody, (j) => j.id, (j) => jobRow(j, rowAction));

  fill(main,
    h("h1", {id: "jobs-title"}, "Jobs"),
    filterForm, bulk, notice,
    h("div", {class: "table-wrap"}, table), empty,
    h("nav", {class: "pager", "aria-label": "Pages of jobs"}, prev, pageInfo, next));

  function navigate(next, keepTokens = false) {
    if (!keepTokens) tokens = [];
    const q = new URLSearchParams();
    if (next.filter) q.set("filter", next.filter);
    if (next.order && next.order !== ORDERS[0][0]) q.set("order", next.order);
    if (next.page) q.set("page", next.page);
    const hash = `#/jobs${q.toString() ? `?${q}` : ""}`;
    if (location.hash === hash) load();
    else location.hash = hash;
  }

  // Lists the page; `relist` keeps the current rows on an error.
  async function load(relist = false) {
    if (!relist) {
      filterInput.value = state.filter;
      order.value = state.order;
    }
    let page;
    try {
      page = await api("GET", "/v1/jobs", null, {
        filter: state.filter, order_by: state.order, page_size: PAGE_SIZE, page_token: state.page,
      });
    } catch (err) {
      if (relist || err.httpStatus === 401) return;
      showError(err);
      rows.sync([]);
      empty.hidden = true;
      closeStream();
      return;
    }
    if (!relist) showError(null);
    const jobs = page.jobs || [];
    rows.sync(jobs);
    empty.hidden = jobs.length > 0;
    nextToken = page.nextPageToken || "";
    next.disabled = !nextToken;
    prev.disabled = !state.page;
    pageInfo.textContent = `page ${tokens.length + 1}${jobs.length ? ` · ${fmt.num(jobs.length)} jobs` : ""}`;
    openStream(jobs.map((j) => j.id));
    if (firstRender) {
      firstRender = false;
      performance.mark("jobwire:jobs-rendered");
    }
  }

  function showError(err) {
    if (!err) {
      filterError.textContent = "";
      filterInput.removeAttribute("aria-invalid");
      return;
    }
    const where = err instanceof ApiError && err.violations.some((v) => v.field === "filter") ? "Filter" : "Error";
    filterError.textContent = `${where}: ${err.describe ? err.describe() : err.message}`;
    if (where === "Filter") filterInput.setAttribute("aria-invalid", "true");
  }

  // The WatchJobs filter for these rows (null: no stream). On the first
  // page, the page's filter alone when its rows cannot leave it by a state
  // change (no `state` term): then new rows do not reopen the stream.
  function filterFor(ids) {
    const terms = ids.map((id) => `id = "${id}"`);
    const bare = state.filter.replace(/"[^"]*"/g, '""');
    if (!state.page && !NOT_WATCHABLE.test(bare)) {
      if (!/\bstate\b/.test(bare)) return state.filter;  // "": every job
      terms.unshift(`(${state.filter})`);
    }
    return terms.length ? terms.join(" OR ") : null;
  }

  // One stream for the visible rows, reopened when its filter changes.
  function openStream(ids) {
    const filter = filterFor(ids);
    if (filter === streamFilter) return;
    closeStream();
    streamFilter = filter;
    if (filter === null) return;
    const q = new URLSearchParams({filter});
    if (cursor) q.set("after_event_id", cursor);
    stream = follow(`/v1/events?${q}`, {
      event(type, e, id) {
        if (id) cursor = id;
        const row = rows.get(e.jobId);
        if (row) row.apply(type, e);
        else relistSoon();
      },
      open() {
        // Events between the listing and this stream's start were missed.
        if (!cursor) relistSoon();
      },
      reset() {
        cursor = "";
        relistSoon();
      },
    });
  }

  function relistSoon() {
    if (!soon) soon = setTimeout(() => { soon = null; relister.now(); }, RELIST_SOON_MS);
  }

  function closeStream() {
    stream?.close();
    stream = null;
    streamFilter = null;
  }

  async function rowAction(name, job) {
    try {
      const updated = await api("POST", `/v1/jobs/${seg(job.id)}:${name}`, {});
      say(notice, `${ACTIONS[name].label}: ${job.id}`);
      rows.get(job.id)?.update(updated.job || updated);
    } catch (err) {
      say(notice, `${ACTIONS[name].label} ${job.id} failed: ${err.describe ? err.describe() : err.message}`, "error");
    }
  }

  // The dry run: what the action would touch, then a confirmation.
  async function previewBulk() {
    const [action, label, done] = BULK.find(([v]) => v === bulkAction.value);
    const request = {filter: state.filter, action};
    fill(bulkResult, h("p", {class: "muted"}, "Counting…"));
    let dry;
    try {
      dry = await api("POST", "/v1/jobs:bulkUpdate", {...request, dryRun: true});
    } catch (err) {
      fill(bulkResult, h("p", {class: "error"}, `Dry run failed: ${err.describe ? err.describe() : err.message}`));
      return;
    }
    const updated = Number(dry.updated || 0);
    const what = state.filter ? h("code", {}, state.filter) : h("strong", {}, "every job (no filter)");
    const confirm = h("button", {type: "button", class: "danger", id: "bulk-confirm", disabled: updated === 0},
      `${label.replace(/ \(.*/, "")} ${fmt.num(updated)} jobs`);
    const back = h("button", {type: "button"}, "Back");
    back.addEventListener("click", () => fill(bulkResult));
    confirm.addEventListener("click", async () => {
      confirm.disabled = true;
      back.disabled = true;
      try {
        const r = await api("POST", "/v1/jobs:bulkUpdate", request);
        fill(bulkResult, h("p", {id: "bulk-done"},
          `Done: ${fmt.num(r.updated)} ${done}, ${fmt.num(r.skipped)} skipped, ${fmt.num(r.failed)} failed.`),
        failures(r));
        relister.now();
      } catch (err) {
        fill(bulkResult, h("p", {class: "error"}, `Failed: ${err.describe ? err.describe() : err.message}`));
      }
    });
    fill(bulkResult,
      h("p", {id: "bulk-dry-run"}, "Dry run for ", what, `: ${fmt.num(dry.matched)} jobs match; `,
        h("strong", {id: "bulk-count"}, fmt.num(updated)), ` would be ${done}, ${fmt.num(dry.skipped)} skipped`,
        Number(dry.failed || 0) ? `, ${fmt.num(dry.failed)} would fail` : "", ". Nothing has changed yet."),
      h("div", {class: "actions"}, confirm, back));
    confirm.focus();
  }

  // The first run shows errors and fills the box; later ones (polls) keep
  // the rows on an error and leave what is being typed alone.
  let polled = false;
  const relister = poll(RELIST_MS, () => {
    const relist = polled;
    polled = true;
    return load(relist);
  });
  return {
    update(params) {
      const nextState = readParams(params);
      if (nextState.filter !== state.filter || nextState.order !== state.order) {
        tokens = [];
        cursor = "";
        fill(bulkResult);
      }
      state = nextState;
      load();
    },
    unmount() {
      relister.stop();
      clearTimeout(soon);
      closeStream();
    },
  };
}

function failures(r) {
  if (!r.failures?.length) return null;
  return h("ul", {class: "failures"}, r.failures.map((f) => h("li", {}, `${f.id}: ${f.message}`)));
}

function readParams(params) {
  return {
    filter: params.get("filter") || "",
    order: params.get("order") || ORDERS[0][0],
    page: params.get("page") || "",
  };
}

// One job's row: update(job) repaints it, apply(type, event) folds in a
// live event.
function jobRow(job, rowAction) {
  let current = job;
  const link = h("a", {class: "mono", href: `#/jobs/${encodeURIComponent(job.id)}`}, job.id);
  const queue = cell("queue");
  const kind = cell("kind");
  const stateCell = cell("state");
  const bar = h("progress", {max: 1, "aria-label": `Progress of ${job.id}`});
  const progressText = h("span", {class: "small muted"});
  const attempt = cell("attempt");
  const created = cell("created");
  const buttons = Object.entries(ACTIONS).map(([name, a]) => {
    const b = h("button", {type: "button", class: `small ${a.kind || ""}`, "data-action": name,
      "aria-label": `${a.label} ${job.id}`}, a.label);
    b.addEventListener("click", () => rowAction(name, current));
    return b;
  });
  const el = h("tr", {"data-job": job.id},
    h("th", {scope: "row", "data-label": "id"}, link),
    queue, kind, stateCell,
    cell("progress", h("div", {class: "progress"}, bar, progressText)),
    attempt, created,
    cell("actions", h("div", {class: "row-actions"}, buttons)));

  function paint() {
    const s = fmt.state(current.state);
    queue.textContent = current.queue;
    kind.textContent = current.kind;
    fill(stateCell, h("span", {class: `badge ${s}`}, s.toLowerCase()));
    el.dataset.state = s;
    paintProgress(bar, progressText, current);
    attempt.textContent = fmt.num(current.attempt);
    created.textContent = fmt.time(current.createTime);
    created.title = fmt.fullTime(current.createTime);
    for (const b of buttons) {
      const enabled = ACTIONS[b.dataset.action].states.includes(s);
      // Hiding a focused button would drop the focus: disable it instead.
      b.disabled = !enabled;
    }
  }
  return {
    el,
    // A listing older than the events already applied is ignored, and so
    // is an event the listing already includes (by the job's seq).
    update(j) {
      if (Number(j.lastSeq || 0) < Number(current.lastSeq || 0)) return;
      current = j;
      paint();
    },
    apply(type, e) {
      if (e.seq && Number(e.seq) <= Number(current.lastSeq || 0)) return;
      current = applyEvent(current, type, e);
      paint();
    },
  };
}

// A job with one live event folded in (a copy).
export function applyEvent(job, type, e) {
  const j = {...job};
  switch (type) {
    case "snapshot":
      return e.snapshot;
    case "state_changed":
      j.state = e.stateChanged.to;
      if (e.stateChanged.attempt) j.attempt = e.stateChanged.attempt;
      if (e.stateChanged.result) j.result = e.stateChanged.result;
      if (e.stateChanged.error) j.error = e.stateChanged.error;
      if (fmt.state(j.state) === "RUNNING") j.startTime = e.time;
      if (fmt.TERMINAL.has(fmt.state(j.state))) j.finishTime = e.time;
      break;
    case "progress":
      j.progress = e.progress;
      break;
    default:
      break;
  }
  j.updateTime = e.time;
  if (e.seq) j.lastSeq = e.seq;
  return j;
}

// The bar and "3 / 10 message" of a job's progress.
export function paintProgress(bar, text, job) {
  const s = fmt.state(job.state);
  const p = job.progress || {};
  const total = Number(p.total || 0);
  const done = Number(p.done || 0);
  if (s === "SUCCEEDED") {
    bar.max = 1;
    bar.value = 1;
  } else if (total > 0) {
    bar.max = total;
    bar.value = Math.min(done, total);
  } else if (s === "RUNNING") {
    bar.removeAttribute("value");  // indeterminate
  } else {
    bar.max = 1;
    bar.value = 0;
  }
  bar.dataset.done = String(done);
  bar.dataset.total = String(total);
  text.textContent = total > 0 ? `${fmt.num(done)} / ${fmt.num(total)}${p.message ? ` ${p.message}` : ""}`
    : p.message || "";
}
