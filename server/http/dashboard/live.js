// Server-Sent Events from /v1/jobs/{id}/events and /v1/events (README:
// "Server-Sent Events"). EventSource resumes by itself with Last-Event-ID
// and sends the session cookie on this origin; no token goes in the URL.

const EVENT_TYPES = ["snapshot", "state_changed", "progress", "updated", "log", "webhook_delivery"];

// Shows "live", "reconnecting" or nothing in the header.
let openStreams = new Set();
let indicator = null;
export function setIndicator(el) {
  indicator = el;
}

function paint() {
  if (!indicator) return;
  const states = [...openStreams].map((s) => s.status);
  indicator.textContent = states.includes("reconnecting")
    ? "reconnecting…"
    : states.includes("live")
      ? "● live"
      : "";
  indicator.dataset.state = indicator.textContent ? states[0] : "";
}

// follow(url, {event(type, jobEvent, cursor), reset(), draining()}) → {close()}
// `event` gets each JobEvent (camelCase proto JSON) and its SSE id.
export function follow(url, handlers) {
  const source = new EventSource(url);
  const stream = {status: "connecting", source};
  openStreams.add(stream);
  const set = (status) => {
    stream.status = status;
    paint();
  };
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (e) => {
      set("live");
      handlers.event?.(type, JSON.parse(e.data), e.lastEventId);
    });
  }
  source.addEventListener("reset", (e) => handlers.reset?.(JSON.parse(e.data)));
  source.addEventListener("draining", () => set("reconnecting"));
  source.addEventListener("open", () => {
    set("live");
    handlers.open?.();
  });
  source.addEventListener("error", () => {
    // Closed: the server refused (an answer other than 200) or said there
    // is nothing more (204). Otherwise EventSource reconnects by itself.
    set(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
    if (source.readyState === EventSource.CLOSED) handlers.closed?.();
  });
  return {
    close() {
      source.close();
      openStreams.delete(stream);
      paint();
    },
  };
}

// Closes every open stream (on leaving a page, or on logging out).
export function closeAll() {
  for (const s of openStreams) s.source.close();
  openStreams = new Set();
  paint();
}
