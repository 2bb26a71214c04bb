// The JSON API of jobwired (README: "From a web page"), from this origin.
// Every request other than GET carries `X-Jobwire-Csrf: 1`, which the
// session cookie requires and which a page of another origin cannot send.
// The token itself never passes through here except to log in (login.js).

// A google.rpc.Status answer: `code` is its gRPC code name's number,
// `violations` the BadRequest field violations ({field, description}).
export class ApiError extends Error {
  constructor(httpStatus, body) {
    super(body?.message || `HTTP ${httpStatus}`);
    this.name = "ApiError";
    this.httpStatus = httpStatus;
    this.code = body?.code || 0;
    this.violations = [];
    for (const detail of body?.details || []) {
      for (const v of detail.fieldViolations || []) this.violations.push(v);
    }
  }

  // "filter: unknown field colour" (or the message when no violation).
  describe() {
    if (this.violations.length === 0) return this.message;
    return this.violations.map((v) => (v.field ? `${v.field}: ${v.description}` : v.description)).join("; ");
  }
}

let onUnauthenticated = () => {};

// Called when an answer is 401 (no or expired session): app.js asks for the
// token again.
export function setUnauthenticatedHandler(fn) {
  onUnauthenticated = fn;
}

// api("GET", "/v1/jobs", null, {page_size: 50}) → the parsed JSON answer;
// throws ApiError (or TypeError when the server cannot be reached).
export async function api(method, path, body = null, params = null, {quiet401 = false} = {}) {
  const headers = {Accept: "application/json"};
  const init = {method, headers, credentials: "same-origin", cache: "no-store"};
  if (method !== "GET") {
    headers["X-Jobwire-Csrf"] = "1";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  const response = await fetch(path + query(params), init);
  let data = {};
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = {};
    }
  }
  if (!response.ok) {
    if (response.status === 401 && !quiet401) onUnauthenticated();
    throw new ApiError(response.status, data);
  }
  return data;
}

// "?a=1&b=x" from an object, leaving out empty values; "" when none.
export function query(params) {
  if (!params) return "";
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// Path segment for an id or queue name.
export function seg(s) {
  return encodeURIComponent(s);
}
