// Server: GET /v1/server every 5 s: version, uptime, listeners, storage,
// dispatch, counts, and the store's group-commit totals; a link to /metrics.

import {api} from "./api.js";
import {fill, h, poll} from "./dom.js";
import * as fmt from "./format.js";

const POLL_MS = 5000;

export function mountServer(main) {
  const error = h("p", {class: "error", role: "alert"});
  const about = h("dl", {class: "fields", id: "server-info"});
  const counts = h("dl", {class: "fields", id: "server-counts"});
  const commits = h("dl", {class: "fields", id: "group-commit"});
  fill(main,
    h("h1", {}, "Server"),
    error,
    h("div", {class: "columns"},
      h("section", {"aria-labelledby": "about-title"}, h("h2", {id: "about-title"}, "jobwired"), about),
      h("section", {"aria-labelledby": "counts-title"}, h("h2", {id: "counts-title"}, "Jobs"), counts),
      h("section", {"aria-labelledby": "commit-title"},
        h("h2", {id: "commit-title"}, "Group commit (since start)"), commits)),
    h("p", {}, h("a", {href: "/metrics", id: "metrics-link"}, "Prometheus metrics (/metrics)"),
      " — every counter, for a scraper; opens with the same session."));

  const poller = poll(POLL_MS, async () => {
    let s;
    try {
      s = await api("GET", "/v1/server");
    } catch (err) {
      if (err.httpStatus !== 401) error.textContent = `Cannot load: ${err.message}`;
      return;
    }
    error.textContent = "";
    const d = s.dispatch || {};
    fill(about, pairs([
      ["Version", s.version],
      ["Uptime", fmt.duration(s.uptime)],
      ["Started", fmt.fullTime(s.startTime)],
      ["Listeners", h("ul", {class: "plain"}, (s.listeners || []).map((l) => h("li", {class: "mono"}, l)))],
      ["Database", h("span", {class: "mono"}, s.storagePath || "—")],
      ["Database size", fmt.bytes(s.storageBytes)],
      ["Dispatch", d.paused ? `paused${d.reason ? `: ${d.reason}` : ""}` : "running"],
      ["Draining", s.draining ? "yes (stopping)" : "no"],
      ["Workers", fmt.num(s.workers)],
      ["Watchers", fmt.num(s.watchers)],
    ]));
    const jobCounts = s.jobCounts || {};
    const total = Object.values(jobCounts).reduce((a, b) => a + Number(b || 0), 0);
    fill(counts, pairs([
      ...fmt.STATES.map((st) => [st.toLowerCase(), fmt.num(jobCounts[st])]),
      ["total", fmt.num(total)],
    ]));
    const g = s.storage || {};
    const n = Number(g.commits || 0);
    const per = (dur) => (n ? fmt.duration(String(fmt.seconds(dur) / n)) : "—");
    fill(commits, pairs([
      ["Commits", fmt.num(g.commits)],
      ["Requests", fmt.num(g.requests)],
      ["Write requests", fmt.num(g.writeRequests)],
      ["Requests per commit", n ? new Intl.NumberFormat(undefined, {maximumFractionDigits: 1}).format(Number(g.requests || 0) / n) : "—"],
      ["Queue wait (total, per commit)", `${fmt.duration(g.queueWait)}, ${per(g.queueWait)}`],
      ["Apply", `${fmt.duration(g.apply)}, ${per(g.apply)}`],
      ["Commit (fsync)", `${fmt.duration(g.commit)}, ${per(g.commit)}`],
      ["Complete", `${fmt.duration(g.complete)}, ${per(g.complete)}`],
    ]));
  });
  return {unmount: () => poller.stop()};
}

function pairs(list) {
  return list.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]);
}
