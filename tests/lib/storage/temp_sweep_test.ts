import assert from "node:assert/strict";
import { sweepTempFiles } from "../../../lib/storage/temp_sweep.ts";

Deno.test("sweepTempFiles: removes only files older than the age", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/old.part`, "x");
    await Deno.writeTextFile(`${dir}/new.part`, "x");
    const hourAgo = new Date(Date.now() - 3600_000);
    await Deno.utime(`${dir}/old.part`, hourAgo, hourAgo);
    assert.equal(await sweepTempFiles(dir, 600_000, new Date()), 1);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir), (e) => e.name), ["new.part"]);
    assert.equal(await sweepTempFiles(`${dir}/missing`, 1, new Date()), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
