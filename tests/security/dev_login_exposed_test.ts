/**
 * Dev sign-in mints admin tokens for anyone who asks, so it must never listen
 * where the network can reach it: `DEV_LOGIN=1` is refused unless `HOST` is a
 * loopback address. Only `HOST` decides; `PUBLIC_URL` says nothing about who can connect.
 */
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../lib/config/config.ts";

const REACHABLE = [
  undefined, // the default, 0.0.0.0
  "0.0.0.0",
  "::",
  "[::]",
  "0:0:0:0:0:0:0:0",
  "192.168.1.20",
  "10.0.0.5",
  "fe80::1",
  "::ffff:192.168.1.20",
  "128.0.0.1",
  "example.com",
  "localhost.example.com",
  "127.0.0.1.example.com",
  "1::1",
];

const LOOPBACK = [
  "127.0.0.1",
  "127.0.0.2",
  "127.255.255.254",
  "::1",
  "[::1]",
  "0:0::1",
  "localhost",
];

Deno.test("dev sign-in exposed: DEV_LOGIN=1 is refused on any address the network can reach", () => {
  for (const host of REACHABLE) {
    for (const publicUrl of [undefined, "http://localhost:8000", "http://127.0.0.1:8000"]) {
      const env = { DEV_LOGIN: "1", HOST: host, PUBLIC_URL: publicUrl };
      assert.throws(() => parseConfig(env), (error) => {
        assert.ok(error instanceof ConfigError, JSON.stringify(env));
        assert.equal(error.issues.length, 1);
        assert.match(error.issues[0]!, /^DEV_LOGIN, HOST: /);
        assert.ok(error.issues[0]!.includes(`"${host ?? "0.0.0.0"}"`), error.issues[0]!);
        return true;
      });
    }
  }
});

Deno.test("dev sign-in exposed: DEV_LOGIN=1 is accepted on loopback addresses", () => {
  for (const host of LOOPBACK) {
    const config = parseConfig({ DEV_LOGIN: "1", HOST: host, PUBLIC_URL: "https://chat.example" });
    assert.equal(config.devLogin, true, host);
    assert.equal(config.host, host);
  }
});

Deno.test("dev sign-in exposed: without DEV_LOGIN, any address is fine", () => {
  for (const host of [...REACHABLE, ...LOOPBACK]) {
    for (const devLogin of [undefined, "0", "false"]) {
      assert.equal(parseConfig({ DEV_LOGIN: devLogin, HOST: host }).devLogin, false);
    }
  }
});
