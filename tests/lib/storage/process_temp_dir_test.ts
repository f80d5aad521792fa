import assert from "node:assert/strict";
import { claimProcessTempDir, sweepDeadOwners } from "../../../lib/storage/process_temp_dir.ts";

const MODULE = new URL("../../../lib/storage/process_temp_dir.ts", import.meta.url).href;

/** Another process that claims a temp directory under `root`, writes a file in it and waits. */
async function otherProcess(root: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `const { claimProcessTempDir } = await import(${JSON.stringify(MODULE)});
       const dir = await claimProcessTempDir(${JSON.stringify(root)});
       await Deno.writeTextFile(dir.path + "/upload-x.part", "partial");
       console.log(dir.path);
       setInterval(() => {}, 1000);`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the other process exited");
    text += value;
  }
  reader.releaseLock();
  return { child, path: text.trim() };
}

Deno.test("process temp dirs: a live owner's directory is kept, a SIGKILLed owner's is removed at the next sweep", async () => {
  const root = await Deno.makeTempDir({ prefix: "offchat-tmpdirs-" });
  const mine = await claimProcessTempDir(root);
  const other = await otherProcess(root);
  try {
    await Deno.writeTextFile(`${mine.path}/mine.part`, "x");
    // Both alive: nothing is removed, whoever sweeps.
    assert.equal(await sweepDeadOwners(root), 0);
    assert.ok((await Deno.stat(`${other.path}/upload-x.part`)).isFile);

    other.child.kill("SIGKILL");
    await other.child.status;
    await other.child.stdout.cancel().catch(() => {});
    const adopted: string[] = [];
    assert.equal(
      await sweepDeadOwners(root, {
        adopt: (_path, name) => Promise.resolve(void adopted.push(name)),
      }),
      1,
    );
    assert.deepEqual(adopted, ["upload-x.part"]);
    await assert.rejects(Deno.stat(other.path), Deno.errors.NotFound);
    // Only this process's directory and lock are left.
    const left = (await Array.fromAsync(Deno.readDir(root), (e) => e.name)).sort();
    const owner = mine.path.split("/").pop()!;
    assert.deepEqual(left, [owner, `${owner}.lock`]);
    assert.ok((await Deno.stat(`${mine.path}/mine.part`)).isFile);
  } finally {
    try {
      other.child.kill("SIGKILL");
    } catch {
      // killed above
    }
    await other.child.status;
    mine.release();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("process temp dirs: release removes the directory and its lock; a directory without a lock is swept", async () => {
  const root = await Deno.makeTempDir({ prefix: "offchat-tmpdirs-" });
  try {
    const dir = await claimProcessTempDir(root);
    dir.release();
    assert.deepEqual(await Array.fromAsync(Deno.readDir(root)), []);
    await Deno.mkdir(`${root}/p1-0123abcd`);
    await Deno.writeTextFile(`${root}/p1-0123abcd/x.part`, "x");
    // Not an owner's name: left to the age-based sweep.
    await Deno.mkdir(`${root}/other`);
    assert.equal(await sweepDeadOwners(root), 1);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(root), (e) => e.name), ["other"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
