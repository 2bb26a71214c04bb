// verifyWebhook against the shared vectors (tests/vectors); no jobwired.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { test } from "node:test";

import { verifyWebhook, WebhookVerificationError } from "../src";

interface WebhookCase {
  name: string;
  secrets: string[];
  headers: Record<string, string>;
  body: string;
  now: number;
  tolerance_seconds?: number;
  expected: string;
  message_contains?: string;
}

const vectors = JSON.parse(
  readFileSync(resolve(__dirname, "..", "..", "..", "..", "tests", "vectors", "webhook_signatures.json"), "utf8"),
) as { default_tolerance_seconds: number; error_kinds: string[]; cases: WebhookCase[] };

function run(c: WebhookCase, body: string | Uint8Array, headers: Parameters<typeof verifyWebhook>[1]): unknown {
  try {
    verifyWebhook(body, headers, c.secrets, {
      toleranceMs: (c.tolerance_seconds ?? vectors.default_tolerance_seconds) * 1000,
      now: new Date(c.now * 1000),
    });
    return "ok";
  } catch (err) {
    return err;
  }
}

function check(c: WebhookCase, got: unknown): void {
  if (c.expected === "ok") {
    assert.equal(got, "ok", String(got));
    return;
  }
  assert.ok(got instanceof WebhookVerificationError, `want ${c.expected}, got ${String(got)}`);
  assert.equal(got.kind, c.expected, got.message);
  assert.ok(got.details.includes(c.message_contains ?? ""), got.message);
}

test("webhook vectors cover every error kind", () => {
  const kinds = new Set(vectors.cases.map((c) => c.expected));
  assert.deepEqual([...kinds].sort(), ["ok", ...vectors.error_kinds].sort());
});

for (const c of vectors.cases) {
  test(`webhook vector ${c.name}`, () => {
    // A string body and a plain object with the names as spelled.
    check(c, run(c, c.body, c.headers));
    // Bytes, and the lower-cased array-valued headers Node's http gives.
    const lower: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(c.headers)) lower[k.toLowerCase()] = [v];
    check(c, run(c, Buffer.from(c.body, "utf8"), lower));
    // Something with get(), like the fetch API's Headers.
    const map = new Map(Object.entries(c.headers).map(([k, v]) => [k.toLowerCase(), v]));
    check(c, run(c, new TextEncoder().encode(c.body), { get: (n: string) => map.get(n.toLowerCase()) ?? null }));
  });
}

test("verifyWebhook uses the system clock and a 5-minute window by default", () => {
  const c = vectors.cases[0]; // the specification's example, from 2021
  assert.throws(
    () => verifyWebhook(c.body, c.headers, c.secrets),
    (e: unknown) => e instanceof WebhookVerificationError && e.kind === "timestamp_too_old",
  );
  verifyWebhook(c.body, c.headers, c.secrets[0], { now: new Date((c.now + 300) * 1000) });
  assert.throws(
    () => verifyWebhook(c.body, c.headers, c.secrets[0], { now: new Date((c.now + 301) * 1000) }),
    (e: unknown) => e instanceof WebhookVerificationError && e.kind === "timestamp_too_old",
  );
  assert.throws(
    () => verifyWebhook(c.body, c.headers, [], { now: new Date(c.now * 1000) }),
    (e: unknown) => e instanceof WebhookVerificationError && e.kind === "invalid_secret",
  );
});
