import assert from "node:assert/strict";
import { sha256, sha256File, sha256Hex } from "../../../lib/core/hash.ts";

Deno.test("sha256: streamed, in memory and from a file give the same digest", async () => {
  const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; // FIPS 180-2
  assert.equal(sha256Hex(new TextEncoder().encode("abc")), abc);
  const streamed = sha256();
  for (const part of ["a", "b", "c"]) streamed.update(new TextEncoder().encode(part));
  assert.equal(streamed.hex(), abc);

  // Larger than one read of sha256File, and not a multiple of it.
  const bytes = new Uint8Array(600 * 1024 + 7).map((_, i) => (i * 31) % 251);
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeFile(path, bytes);
    assert.equal(await sha256File(path), sha256Hex(bytes));
  } finally {
    await Deno.remove(path);
  }
});
