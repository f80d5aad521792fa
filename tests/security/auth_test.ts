/**
 * Point 5 of the threat model: every forged, confused, expired or misused
 * token is the same 401, whatever was wrong with it.
 */
import assert from "node:assert/strict";
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { fixture } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  TEST_SECRET,
  type TestContext,
  uploadFile,
} from "../_helpers.ts";

const secret = new TextEncoder().encode(TEST_SECRET);
const now = () => Math.floor(Date.now() / 1000);
const b64 = (value: unknown) =>
  btoa(JSON.stringify(value)).replace(/=+$/, "").replaceAll("+", "-").replaceAll("/", "_");

/** A compact JWS with any header and payload, signed with HMAC-SHA-256 under `key`. */
async function hs256(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  key: Uint8Array = secret,
): Promise<string> {
  const input = `${b64(header)}.${b64(payload)}`;
  const hmac = await crypto.subtle.importKey(
    "raw",
    key as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const signature = new Uint8Array(
    await crypto.subtle.sign("HMAC", hmac, new TextEncoder().encode(input)),
  );
  const sig = btoa(String.fromCharCode(...signature)).replace(/=+$/, "").replaceAll("+", "-")
    .replaceAll("/", "_");
  return `${input}.${sig}`;
}

interface Answer {
  status: number;
  contentType: string | null;
  wwwAuthenticate: string | null;
  body: Record<string, unknown>;
}

async function answer(ctx: TestContext, path: string, token: string | null): Promise<Answer> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const response = await ctx.app.request(path, { headers });
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    wwwAuthenticate: response.headers.get("www-authenticate"),
    body: await body(response),
  };
}

Deno.test("auth: forged, confused and expired user tokens all get the identical 401", async () => {
  await using ctx = await createTestContext({ worker: false });
  const claims = { sub: "alice", exp: now() + 3600 };
  const cases: Record<string, string> = {
    "alg none": `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`,
    "alg None": `${b64({ alg: "None" })}.${b64(claims)}.`,
    "alg none with a signature": `${b64({ alg: "none" })}.${b64(claims)}.${"A".repeat(43)}`,
    "HS512 (not the pinned algorithm)": await new SignJWT({}).setProtectedHeader({ alg: "HS512" })
      .setSubject("alice").setExpirationTime("1h").sign(
        new TextEncoder().encode(TEST_SECRET.repeat(2)),
      ),
    "wrong secret": await hs256({ alg: "HS256" }, claims, new TextEncoder().encode("x".repeat(40))),
    "missing exp": await hs256({ alg: "HS256" }, { sub: "alice" }),
    "expired": await hs256({ alg: "HS256" }, { sub: "alice", exp: now() - 60 }),
    "not yet valid (nbf)": await hs256({ alg: "HS256" }, { ...claims, nbf: now() + 600 }),
    "string exp": await hs256({ alg: "HS256" }, { sub: "alice", exp: String(now() + 3600) }),
    "string nbf": await hs256({ alg: "HS256" }, { ...claims, nbf: "yesterday" }),
    "unknown crit header": await hs256(
      { alg: "HS256", crit: ["x-offchat"], "x-offchat": 1 },
      claims,
    ),
    "tampered payload": await (async () => {
      const [h, , s] = (await hs256({ alg: "HS256" }, claims)).split(".");
      return `${h}.${b64({ ...claims, role: "admin" })}.${s}`;
    })(),
    "no subject": await hs256({ alg: "HS256" }, { exp: now() + 3600 }),
    "subject with path syntax": await hs256({ alg: "HS256" }, { ...claims, sub: "../../etc" }),
    "subject with a newline": await hs256({ alg: "HS256" }, { ...claims, sub: "alice\nroot" }),
    "a media URL token": await ctx.deps.auth.signMediaToken({ id: "alice", admin: false }, {
      attachmentId: "01936b2e-6f3a-7cc4-9d5e-2f0c1a9b8e77",
      purpose: "download",
    }),
  };
  const reference = await answer(ctx, "/api/chat/conversations", "not.a.jwt");
  assert.equal(reference.status, 401);
  assert.equal(reference.contentType, "application/problem+json");
  assert.deepEqual(reference.body, {
    type: "https://offchat.dev/problems/unauthorized",
    title: "Unauthorized",
    status: 401,
    detail: "Invalid or expired token",
    code: "unauthorized",
  });
  for (const path of ["/api/chat/conversations", "/api/admin/activity"]) {
    for (const [label, token] of Object.entries(cases)) {
      assert.deepEqual(await answer(ctx, path, token), reference, `${label} on ${path}`);
    }
  }
  // The good token works, so the cases above fail for the reason they name.
  const good = await answer(ctx, "/api/chat/conversations", await hs256({ alg: "HS256" }, claims));
  assert.equal(good.status, 200);
});

Deno.test("auth: wrong iss and aud are the same 401 when configured", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { JWT_ISSUER: "https://id.example", JWT_AUDIENCE: "offchat" },
  });
  const claims = { sub: "alice", exp: now() + 3600, iss: "https://id.example", aud: "offchat" };
  const good = await answer(ctx, "/api/chat/conversations", await hs256({ alg: "HS256" }, claims));
  assert.equal(good.status, 200);
  const reference = await answer(ctx, "/api/chat/conversations", "not.a.jwt");
  for (
    const bad of [
      { ...claims, iss: "https://evil.example" },
      { ...claims, aud: "other" },
      { ...claims, aud: "offchat-media" },
      { sub: "alice", exp: now() + 3600 },
    ]
  ) {
    const token = await hs256({ alg: "HS256" }, bad);
    assert.deepEqual(await answer(ctx, "/api/chat/conversations", token), reference);
  }
});

Deno.test("auth: with an RSA identity provider, HS/RS confusion and other algorithms are 401", async () => {
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  const pem = await exportSPKI(publicKey);
  await using ctx = await createTestContext({
    worker: false,
    env: { JWT_SECRET: "", JWT_PUBLIC_KEY: pem },
  });
  const claims = { sub: "carol", exp: now() + 3600 };
  const good = await new SignJWT({}).setProtectedHeader({ alg: "RS256" }).setSubject("carol")
    .setExpirationTime("1h").sign(privateKey);
  assert.equal((await answer(ctx, "/api/chat/conversations", good)).status, 200);
  const reference = await answer(ctx, "/api/chat/conversations", "not.a.jwt");
  const ps256Key = (await generateKeyPair("PS256")).privateKey;
  const cases: Record<string, string> = {
    "HS256 signed with the PEM text": await hs256(
      { alg: "HS256" },
      claims,
      new TextEncoder().encode(pem),
    ),
    "HS256 signed with the PEM body": await hs256(
      { alg: "HS256" },
      claims,
      new TextEncoder().encode(pem.replace(/-----[A-Z ]+-----|\s/g, "")),
    ),
    "HS256 signed with the local secret": await hs256({ alg: "HS256" }, claims),
    "PS256 (not pinned)": await new SignJWT({}).setProtectedHeader({ alg: "PS256" })
      .setSubject("carol").setExpirationTime("1h").sign(ps256Key),
    "alg none": `${b64({ alg: "none" })}.${b64(claims)}.`,
    "RS256 by another key": await new SignJWT({}).setProtectedHeader({ alg: "RS256" })
      .setSubject("carol").setExpirationTime("1h").sign(
        (await generateKeyPair("RS256")).privateKey,
      ),
  };
  for (const [label, token] of Object.entries(cases)) {
    assert.deepEqual(await answer(ctx, "/api/chat/conversations", token), reference, label);
  }
});

Deno.test("auth: a media token opens only its attachment for its purpose; user tokens are not media tokens", async () => {
  await using ctx = await createTestContext({ worker: false });
  const { messageId } = await conversationWithMessage(ctx, "alice");
  const a = await body(await uploadFile(ctx, "alice", messageId, await fixture("h264.mp4")));
  const b = await body(await uploadFile(ctx, "alice", messageId, await fixture("h264.mp4")));
  const user = { id: "alice", admin: false };
  const mediaFor = (id: unknown, purpose: "download" | "stream") =>
    ctx.deps.auth.signMediaToken(user, { attachmentId: String(id), purpose });
  const reference = await (async () => {
    const response = await ctx.app.request(`/api/chat/videos/${a.id}/download?token=x.y.z`);
    return { status: response.status, body: await body(response) };
  })();
  assert.equal(reference.status, 401);
  const [h, p] = (await mediaFor(a.id, "download")).split(".");
  const cases: Record<string, string> = {
    "another attachment's token": await mediaFor(b.id, "download"),
    "another purpose's token": await mediaFor(a.id, "stream"),
    "a user token as media token": await ctx.token("alice"),
    "a tampered media token": `${h}.${
      b64({ ...JSON.parse(atob(p!.replaceAll("-", "+").replaceAll("_", "/"))), att: b.id })
    }.x`,
    "a media token signed with the user key": await hs256(
      { alg: "HS256" },
      { sub: "alice", aud: "offchat-media", att: a.id, use: "download", exp: now() + 60 },
    ),
  };
  for (const [label, token] of Object.entries(cases)) {
    const response = await ctx.app.request(`/api/chat/videos/${a.id}/download?token=${token}`);
    assert.deepEqual({ status: response.status, body: await body(response) }, reference, label);
  }
  const ok = await ctx.app.request(
    `/api/chat/videos/${a.id}/download?token=${await mediaFor(a.id, "download")}`,
  );
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
});
