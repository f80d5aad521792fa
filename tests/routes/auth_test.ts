import assert from "node:assert/strict";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from "jose";
import { body, createTestContext, TEST_SECRET } from "../_helpers.ts";

const secret = new TextEncoder().encode(TEST_SECRET);
const now = () => Math.floor(Date.now() / 1000);

async function expectUnauthorized(
  ctx: Awaited<ReturnType<typeof createTestContext>>,
  authorization: string | null,
): Promise<void> {
  const headers: Record<string, string> = authorization ? { authorization } : {};
  const response = await ctx.app.request("/api/chat/conversations", { headers });
  assert.equal(response.status, 401, `${authorization}`);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
  const problem = await body(response);
  assert.equal(problem.code, "unauthorized");
  assert.equal(problem.status, 401);
}

function unsignedToken(payload: Record<string, unknown>): string {
  const enc = (o: unknown) =>
    btoa(JSON.stringify(o)).replace(/=+$/, "").replaceAll("+", "-").replaceAll("/", "_");
  return `${enc({ alg: "none", typ: "JWT" })}.${enc(payload)}.`;
}

Deno.test("auth: a valid HS256 token is accepted", async () => {
  await using ctx = await createTestContext({ worker: false });
  const token = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("alice")
    .setExpirationTime("1h").sign(secret);
  const response = await ctx.app.request("/api/chat/conversations", {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(response.status, 200);
  assert.deepEqual(await body(response), { conversations: [], next_cursor: null });
});

Deno.test("auth: missing, malformed, expired, unsigned, wrong-algorithm, no-exp tokens are 401", async () => {
  await using ctx = await createTestContext({ worker: false });
  const expired = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("alice")
    .setExpirationTime(now() - 3600).sign(secret);
  const noExp = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("alice")
    .sign(secret);
  const noSub = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setExpirationTime("1h")
    .sign(secret);
  const hs512 = await new SignJWT({}).setProtectedHeader({ alg: "HS512" }).setSubject("alice")
    .setExpirationTime("1h").sign(new TextEncoder().encode(TEST_SECRET.repeat(2)));
  const wrongKey = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("alice")
    .setExpirationTime("1h").sign(new TextEncoder().encode("another-secret-another-secret-0123"));
  const { privateKey } = await generateKeyPair("RS256");
  const rs256 = await new SignJWT({}).setProtectedHeader({ alg: "RS256" }).setSubject("alice")
    .setExpirationTime("1h").sign(privateKey);
  const stringExp = unsignedToken({ sub: "alice", exp: "tomorrow" });
  const [h, p] = (await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("alice")
    .setExpirationTime("1h").sign(secret)).split(".");
  const tampered = `${h}.${p!.slice(0, -2)}xx.${"A".repeat(43)}`;

  await expectUnauthorized(ctx, null);
  await expectUnauthorized(ctx, "Basic YWxpY2U6cGFzcw==");
  await expectUnauthorized(ctx, "Bearer");
  await expectUnauthorized(ctx, "Bearer not-a-jwt");
  await expectUnauthorized(ctx, `Bearer ${expired}`);
  await expectUnauthorized(ctx, `Bearer ${noExp}`);
  await expectUnauthorized(ctx, `Bearer ${noSub}`);
  await expectUnauthorized(ctx, `Bearer ${unsignedToken({ sub: "alice", exp: now() + 3600 })}`);
  await expectUnauthorized(ctx, `Bearer ${hs512}`);
  await expectUnauthorized(ctx, `Bearer ${wrongKey}`);
  await expectUnauthorized(ctx, `Bearer ${rs256}`);
  await expectUnauthorized(ctx, `Bearer ${stringExp}`);
  await expectUnauthorized(ctx, `Bearer ${tampered}`);
});

Deno.test("auth: a media token never passes as a user token", async () => {
  await using ctx = await createTestContext({ worker: false });
  const media = await ctx.deps.auth.signMediaToken({ id: "alice", admin: false }, {
    attachmentId: "x",
    purpose: "download",
  });
  await expectUnauthorized(ctx, `Bearer ${media}`);
});

Deno.test("auth: admin routes need role admin (403 otherwise)", async () => {
  await using ctx = await createTestContext({ worker: false });
  const member = await ctx.request("alice", "/api/admin/activity");
  assert.equal(member.status, 403);
  assert.equal((await body(member)).code, "forbidden");
  const admin = await ctx.app.request("/api/admin/activity", {
    headers: { authorization: `Bearer ${await ctx.token("root", { admin: true })}` },
  });
  assert.equal(admin.status, 200);
  await admin.body?.cancel();
});

Deno.test("auth: iss and aud are checked when configured", async () => {
  await using ctx = await createTestContext({
    worker: false,
    env: { JWT_ISSUER: "https://id.example", JWT_AUDIENCE: "offchat" },
  });
  const sign = (iss: string, aud: string) =>
    new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("alice").setIssuer(iss)
      .setAudience(aud).setExpirationTime("1h").sign(secret);
  const good = await ctx.app.request("/api/chat/conversations", {
    headers: { authorization: `Bearer ${await sign("https://id.example", "offchat")}` },
  });
  assert.equal(good.status, 200);
  await good.body?.cancel();
  await expectUnauthorized(ctx, `Bearer ${await sign("https://evil.example", "offchat")}`);
  await expectUnauthorized(ctx, `Bearer ${await sign("https://id.example", "other")}`);
});

Deno.test("auth: tokens from an identity provider's PEM public key (RS256, pinned)", async () => {
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  await using ctx = await createTestContext({
    worker: false,
    env: { JWT_SECRET: "", JWT_PUBLIC_KEY: await exportSPKI(publicKey) },
  });
  const token = await new SignJWT({ role: "admin" }).setProtectedHeader({ alg: "RS256" })
    .setSubject("carol").setExpirationTime("1h").sign(privateKey);
  const ok = await ctx.app.request("/api/admin/activity", {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
  // HS/RS confusion: an HS256 token signed with the public key text must fail.
  const confused = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("carol")
    .setExpirationTime("1h").sign(new TextEncoder().encode(await exportSPKI(publicKey)));
  await expectUnauthorized(ctx, `Bearer ${confused}`);
});

Deno.test("auth: tokens verified against a JWKS URL", async () => {
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" };
  await using server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    () => Response.json({ keys: [jwk] }),
  );
  await using ctx = await createTestContext({
    worker: false,
    env: { JWT_SECRET: "", JWT_JWKS_URL: `http://127.0.0.1:${server.addr.port}/jwks.json` },
  });
  const token = await new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: "k1" })
    .setSubject("dave").setExpirationTime("1h").sign(privateKey);
  const ok = await ctx.app.request("/api/chat/conversations", {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
  const other = await generateKeyPair("ES256");
  const forged = await new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: "k1" })
    .setSubject("dave").setExpirationTime("1h").sign(other.privateKey);
  await expectUnauthorized(ctx, `Bearer ${forged}`);
});

Deno.test("auth: MEDIA_URL_SECRET signs media URLs that other processes with it accept", async () => {
  const env = { MEDIA_URL_SECRET: "m".repeat(40) };
  await using a = await createTestContext({ worker: false, env });
  await using b = await createTestContext({ worker: false, env: { ...env, JWT_SECRET: "" } });
  await using c = await createTestContext({ worker: false });
  const token = await a.deps.auth.signMediaToken({ id: "alice", admin: false }, {
    attachmentId: "x",
    purpose: "stream",
  });
  assert.equal(
    (await b.deps.auth.verifyMediaToken(token, { attachmentId: "x", purpose: "stream" })).user.id,
    "alice",
  );
  await assert.rejects(() =>
    c.deps.auth.verifyMediaToken(token, { attachmentId: "x", purpose: "stream" })
  );
});
