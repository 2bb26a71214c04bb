// Numbers, times and states for display: the browser's locale and time zone.

const numbers = new Intl.NumberFormat();
const times = new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "medium"});
const clock = new Intl.DateTimeFormat(undefined, {timeStyle: "medium"});
const oneDecimal = new Intl.NumberFormat(undefined, {maximumFractionDigits: 1});
const relative = new Intl.RelativeTimeFormat(undefined, {numeric: "auto"});

// int64 fields arrive as strings in proto JSON; absent ones as undefined.
export function num(value) {
  return numbers.format(Number(value || 0));
}

// A google.protobuf.Timestamp in JSON (RFC 3339), in the browser's zone.
export function time(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  const today = new Date().toDateString() === d.toDateString();
  return (today ? clock : times).format(d);
}

export function fullTime(ts) {
  return ts ? times.format(new Date(ts)) : "—";
}

// "in 5 minutes", "2 hours ago".
export function fromNow(ts) {
  const seconds = (new Date(ts).getTime() - Date.now()) / 1000;
  const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size || unit === "second") {
      return relative.format(Math.round(seconds / size), unit);
    }
  }
  return "";
}

// A google.protobuf.Duration in JSON ("3723.5s") as "1h 2m 3s".
export function duration(d) {
  const total = parseFloat(d || "0");
  if (total === 0) return "0 s";
  if (total < 0.001) return `${Math.round(total * 1e6)} µs`;
  if (total < 1) return `${oneDecimal.format(total * 1000)} ms`;
  let s = Math.floor(total);
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  if (s || parts.length === 0) parts.push(`${s}s`);
  return parts.slice(0, 3).join(" ");
}

// Seconds of a Duration string, as a number.
export function seconds(d) {
  return parseFloat(d || "0");
}

export function bytes(n) {
  let value = Number(n || 0);
  for (const unit of ["B", "KiB", "MiB", "GiB"]) {
    if (value < 1024 || unit === "GiB") {
      return `${oneDecimal.format(value)} ${unit}`;
    }
    value /= 1024;
  }
  return "";
}

export const STATES = ["QUEUED", "SCHEDULED", "RUNNING", "PAUSED", "SUCCEEDED", "FAILED", "CANCELLED"];
export const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

// "STATE_RUNNING" → "RUNNING".
export function state(s) {
  return (s || "STATE_UNSPECIFIED").replace(/^STATE_/, "");
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}
