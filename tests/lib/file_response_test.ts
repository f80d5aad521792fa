import assert from "node:assert/strict";
import { fileResponse } from "../../lib/file_response.ts";

/** How many of this process's descriptors point at `path` (Deno reads /proc only with --allow-all). */
async function openHandles(path: string): Promise<number> {
  const out = await new Deno.Command("find", {
    args: [`/proc/${Deno.pid}/fd`, "-lname", path],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).length;
}

Deno.test("fileResponse: a reader that cancels mid-stream releases the file at once", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/big.bin`;
  try {
    await Deno.writeFile(path, new Uint8Array(4 * 1024 * 1024));
    const response = await fileResponse(new Request("http://x/"), {
      path,
      contentType: "application/octet-stream",
      etag: "e",
      cacheControl: "private",
    });
    const reader = response.body!.getReader();
    const first = await reader.read();
    assert.equal(first.value!.length, 256 * 1024);
    assert.equal(await openHandles(path), 1, "open while streaming");
    await reader.cancel();
    assert.equal(await openHandles(path), 0, "closed after the client went away");

    // Fully read and HEAD/304 responses leave nothing open either.
    const head = await fileResponse(new Request("http://x/", { method: "HEAD" }), {
      path,
      contentType: "application/octet-stream",
      etag: "e",
      cacheControl: "private",
    });
    assert.equal(head.body, null);
    const full = await fileResponse(new Request("http://x/", { headers: { range: "bytes=-10" } }), {
      path,
      contentType: "application/octet-stream",
      etag: "e",
      cacheControl: "private",
    });
    assert.equal((await full.arrayBuffer()).byteLength, 10);
    assert.equal(await openHandles(path), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
