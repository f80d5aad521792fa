/**
 * Point 8 of the threat model: the service tasks run with the narrowest Deno
 * permissions that work (`tests/cli_test.ts` starts them for real). This keeps
 * them from widening unnoticed, and the environment list in step with the
 * configuration: with `--ignore-env`, a variable missing from the list would
 * silently read as unset.
 */
import assert from "node:assert/strict";
import { CONFIG_ENV_NAMES } from "../../lib/config/config.ts";

const deno = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));

function flags(task: string): Map<string, string | null> {
  const command: string = deno.tasks[task].command;
  const found = new Map<string, string | null>();
  for (const word of command.split(/\s+/)) {
    const match = /^(--allow-[a-z]+|--ignore-[a-z]+|-A|--allow-all)(?:=(.*))?$/.exec(word);
    if (match) found.set(match[1]!, match[2] ?? null);
  }
  return found;
}

for (const task of ["start", "dev", "worker"]) {
  Deno.test(`permissions: \`deno task ${task}\` is scoped`, () => {
    const f = flags(task);
    assert.ok(!f.has("-A") && !f.has("--allow-all"), "no --allow-all");
    for (
      const name of [
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-sys",
        "--allow-run",
        "--allow-ffi",
      ]
    ) {
      assert.ok(f.has(name), `${name} is given`);
      assert.notEqual(f.get(name), null, `${name} is scoped to a list`);
    }
    assert.equal(f.get("--allow-write"), "./data");
    assert.deepEqual(f.get("--allow-run")!.split(",").sort(), ["ffmpeg", "ffprobe", "prlimit"]);
    assert.deepEqual(f.get("--allow-env")!.split(",").sort(), [...CONFIG_ENV_NAMES].sort());
    assert.ok(f.has("--ignore-env"), "other variables read as unset instead of failing");
    assert.equal(f.get("--allow-ffi"), "./node_modules");
    const net = f.get("--allow-net");
    if (task === "worker") assert.equal(f.has("--allow-net"), false, "the worker needs no network");
    else {
      assert.ok(net, "the server's network access is scoped to its listening addresses");
      for (const host of net!.split(",")) {
        assert.ok(["0.0.0.0", "127.0.0.1", "localhost", "[::]"].includes(host), host);
      }
    }
  });
}
