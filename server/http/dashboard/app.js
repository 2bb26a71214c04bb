// The dashboard: one static page, hash routes (#/queues, #/jobs,
// #/jobs/ID, #/server), every datum from the public JSON API and its SSE
// streams. Each page module exports mount(main, params) → {unmount(),
// update?(params)}.

import {api, setUnauthenticatedHandler} from "./api.js";
import {fill, h} from "./dom.js";
import {mountJob} from "./job.js";
import {mountJobs} from "./jobs.js";
import {closeAll, setIndicator} from "./live.js";
import {login, logout} from "./login.js";
import {mountQueues} from "./queues.js";
import {mountServer} from "./server.js";

const main = document.getElementById("main");
const logoutButton = document.getElementById("logout");

const ROUTES = [
  {page: "queues", pattern: /^\/queues$/, mount: mountQueues, title: "Queues"},
  {page: "jobs", pattern: /^\/jobs\/([^/]+)$/, mount: mountJob, title: "Job"},
  {page: "jobs", pattern: /^\/jobs$/, mount: mountJobs, title: "Jobs"},
  {page: "server", pattern: /^\/server$/, mount: mountServer, title: "Server"},
];

let current = null;  // {route, view}
let authenticating = false;

// "#/jobs?filter=x" → {path: "/jobs", params: URLSearchParams}
function parseHash() {
  const hash = location.hash.replace(/^#/, "") || "/queues";
  const [path, q = ""] = hash.split("?", 2);
  return {path, params: new URLSearchParams(q)};
}

function route() {
  if (authenticating) return;
  const {path, params} = parseHash();
  const found = ROUTES.find((r) => r.pattern.test(path));
  if (!found) {
    location.replace("#/queues");
    return;
  }
  const args = path.match(found.pattern).slice(1).map(decodeURIComponent);
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === found.page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  // The same page with other parameters (a filter, a page token): let it
  // update in place, keeping focus where it is.
  if (current && current.route === found && current.view.update && current.args.join() === args.join()) {
    current.view.update(params);
    return;
  }
  unmount();
  document.title = `${found.title} · jobwire`;
  const view = found.mount(main, params, ...args);
  current = {route: found, view, args};
}

function unmount() {
  if (current) current.view.unmount();
  current = null;
  closeAll();
}

async function authenticate() {
  if (authenticating) return;
  authenticating = true;
  unmount();
  document.title = "Log in · jobwire";
  await login(main);
  authenticating = false;
  logoutButton.hidden = false;
  route();
}

async function start() {
  setIndicator(document.getElementById("live"));
  setUnauthenticatedHandler(() => authenticate());
  logoutButton.addEventListener("click", async () => {
    unmount();
    await logout();
    authenticate();
  });
  window.addEventListener("hashchange", route);
  let auth;
  try {
    auth = await api("GET", "/v1/auth");
  } catch (err) {
    fill(main, h("p", {class: "error", role: "alert"}, `Cannot reach jobwired: ${err.message}`));
    return;
  }
  if (auth.authRequired && !auth.authenticated) return authenticate();
  logoutButton.hidden = !auth.authRequired;
  route();
}

start();
