// verifyWebhook: checks, on the receiving side, a webhook jobwired sent,
// signed after the Standard Webhooks specification (standardwebhooks.com).
//
// A delivery carries `webhook-id`, `webhook-timestamp` (unix seconds) and
// `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256>` entries over
// "{id}.{timestamp}.{body}", one per secret the server signs with (two during
// a rotation). Secrets are `whsec_<base64 key>`; the base64 key alone is
// accepted too, with or without its `=` padding.

import { createHmac, timingSafeEqual } from "node:crypto";

/** How far (ms) a webhook-timestamp may lie before or after `now`. */
export const DEFAULT_WEBHOOK_TOLERANCE_MS = 5 * 60 * 1000;

/** What failed; the same words in every jobwire SDK. */
export type WebhookErrorKind =
  | "invalid_secret" // a secret given to verifyWebhook is not base64
  | "missing_header"
  | "invalid_timestamp"
  | "timestamp_too_old"
  | "timestamp_too_new"
  | "no_matching_signature";

/** A webhook that did not verify. The message never shows a secret. */
export class WebhookVerificationError extends Error {
  constructor(
    readonly kind: WebhookErrorKind,
    readonly details: string,
  ) {
    super(`${kind}: ${details}`);
    this.name = "WebhookVerificationError";
  }
}

/**
 * A request's headers: Node's `req.headers` (IncomingHttpHeaders), a plain
 * object with names in any case, or anything with `get(name)` such as the
 * fetch API's `Headers`.
 */
export type WebhookHeaders =
  | Record<string, string | string[] | undefined>
  | { get(name: string): string | null };

export interface VerifyWebhookOptions {
  /** Default DEFAULT_WEBHOOK_TOLERANCE_MS (5 minutes), edges included. */
  toleranceMs?: number;
  /** The receiver's clock; default the current time. */
  now?: Date;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
// Up to 18 digits, as in every SDK; Number() is exact below 2^53, and a
// longer value is far in the future whatever it rounds to.
const UNIX_SECONDS = /^[0-9]{1,18}$/;

function webhookKey(secret: string, index: number): Buffer {
  let text = secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret;
  text += "=".repeat((4 - (text.length % 4)) % 4);
  // Buffer.from(.., "base64") skips what is not base64: check first.
  const key = BASE64.test(text) ? Buffer.from(text, "base64") : Buffer.alloc(0);
  if (key.length === 0) {
    throw new WebhookVerificationError("invalid_secret", `secret ${index + 1} is not whsec_ followed by a base64 key`);
  }
  return key;
}

function header(headers: WebhookHeaders, name: string): string {
  let value: string | string[] | null | undefined;
  if (typeof headers.get === "function") {
    value = (headers as { get(name: string): string | null }).get(name);
  } else {
    const record = headers as Record<string, string | string[] | undefined>;
    const key = Object.keys(record).find((k) => k.toLowerCase() === name);
    value = key === undefined ? undefined : record[key];
  }
  if (Array.isArray(value)) value = value[0];
  if (!value) throw new WebhookVerificationError("missing_header", `missing header ${name}`);
  return value;
}

/**
 * Checks that `body` and `headers` are a webhook signed with one of
 * `secrets` (several while a rotation is under way: a signature by any of
 * them is accepted). `body` is the request body exactly as received, a
 * string being taken as its UTF-8 bytes; re-serialized JSON will not verify.
 * Signatures are compared in constant time (timingSafeEqual).
 *
 * Returns when the webhook verifies; throws WebhookVerificationError
 * otherwise. Checks run in this order: the secrets, the headers, the
 * timestamp's form and window, then the signatures.
 */
export function verifyWebhook(
  body: string | Uint8Array,
  headers: WebhookHeaders,
  secrets: string | readonly string[],
  options: VerifyWebhookOptions = {},
): void {
  const list = typeof secrets === "string" ? [secrets] : secrets;
  if (list.length === 0) throw new WebhookVerificationError("invalid_secret", "no secret given");
  const keys = list.map(webhookKey);
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");

  if (!UNIX_SECONDS.test(timestamp)) {
    throw new WebhookVerificationError(
      "invalid_timestamp",
      `header webhook-timestamp is not unix seconds: ${JSON.stringify(timestamp.slice(0, 40))}`,
    );
  }
  const toleranceS = (options.toleranceMs ?? DEFAULT_WEBHOOK_TOLERANCE_MS) / 1000;
  const nowS = (options.now ?? new Date()).getTime() / 1000;
  const sent = Number(timestamp);
  if (sent < nowS - toleranceS) {
    throw new WebhookVerificationError(
      "timestamp_too_old",
      `webhook-timestamp ${timestamp} is ${Math.round(nowS - sent)} s old, more than the ${toleranceS} s tolerance`,
    );
  }
  if (sent > nowS + toleranceS) {
    throw new WebhookVerificationError(
      "timestamp_too_new",
      `webhook-timestamp ${timestamp} is ${Math.round(sent - nowS)} s in the future, more than the ${toleranceS} s tolerance`,
    );
  }

  const expected = keys.map((key) =>
    createHmac("sha256", key).update(`${id}.${timestamp}.`).update(body).digest("base64"),
  );
  const expectedBytes = expected.map((e) => Buffer.from(e));
  let matched = false;
  for (const entry of signatures.split(" ")) {
    const comma = entry.indexOf(",");
    if (comma < 0 || entry.slice(0, comma) !== "v1") continue;
    const given = Buffer.from(entry.slice(comma + 1));
    for (const e of expectedBytes) {
      // timingSafeEqual needs equal lengths; a length says nothing secret.
      if (e.length === given.length && timingSafeEqual(e, given)) matched = true;
    }
  }
  if (!matched) {
    throw new WebhookVerificationError("no_matching_signature", "no v1 signature in webhook-signature matches a secret");
  }
}
