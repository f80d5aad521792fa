import assert from "node:assert/strict";
import { fileResponse } from "../../../lib/serving/file_response.ts";
import { OpenFiles } from "../../../lib/serving/open_files.ts";

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
  using files = new OpenFiles();
  try {
    await Deno.writeFile(path, new Uint8Array(4 * 1024 * 1024));
    // A whole GET (the file's own stream) and a bounded range (read in a loop).
    for (const range of [null, "bytes=1-4000000"]) {
      const response = await fileResponse(
        new Request("http://x/", { headers: range ? { range } : {} }),
        {
          path,
          contentType: "application/octet-stream",
          etag: "e",
          cacheControl: "private",
          files,
        },
      );
      const reader = response.body!.getReader();
      const first = await reader.read();
      assert.ok(first.value!.length > 0);
      assert.equal(await openHandles(path), 2, `${range}: the cached handle and the stream's own`);
      await reader.cancel();
      assert.equal(
        await openHandles(path),
        1,
        `${range}: the stream's closed when the client left`,
      );
    }

    // Fully read and HEAD/304 responses leave nothing open either.
    const head = await fileResponse(new Request("http://x/", { method: "HEAD" }), {
      path,
      contentType: "application/octet-stream",
      etag: "e",
      cacheControl: "private",
      files,
    });
    assert.equal(head.body, null);
    const full = await fileResponse(new Request("http://x/", { headers: { range: "bytes=-10" } }), {
      path,
      contentType: "application/octet-stream",
      etag: "e",
      cacheControl: "private",
      files,
    });
    assert.equal((await full.arrayBuffer()).byteLength, 10);
    assert.equal(await openHandles(path), 1, "small reads share the cached handle");
    files.clear();
    assert.equal(await openHandles(path), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("OpenFiles: handles close when they expire, when evicted and on clear", async () => {
  const dir = await Deno.makeTempDir();
  let now = 0;
  using files = new OpenFiles({ ttlMs: 1000, maxEntries: 2, now: () => now });
  try {
    for (const name of ["a", "b", "c"]) await Deno.writeTextFile(`${dir}/${name}`, name);
    const a = files.get(`${dir}/a`);
    assert.equal(a.size, 1);
    assert.equal(files.get(`${dir}/a`), a, "reused within the window");
    assert.equal(await openHandles(`${dir}/a`), 1);

    // A deleted file stays readable through the cache for the window, then is let go.
    await Deno.remove(`${dir}/a`);
    assert.equal(files.get(`${dir}/a`), a);
    now = 1000;
    assert.throws(() => files.get(`${dir}/a`), Deno.errors.NotFound);
    assert.equal(await openHandles(`${dir}/a`), 0);

    files.get(`${dir}/b`);
    files.get(`${dir}/c`);
    now = 1500;
    files.get(`${dir}/b`);
    assert.equal(await openHandles(`${dir}/b`), 1);
    files.clear();
    assert.equal(await openHandles(`${dir}/b`) + await openHandles(`${dir}/c`), 0);

    now = 3000;
    for (const name of ["b", "c"]) files.get(`${dir}/${name}`);
    await Deno.writeTextFile(`${dir}/d`, "d");
    files.get(`${dir}/d`);
    assert.equal(await openHandles(`${dir}/b`), 0, "the oldest goes when the cache is full");
    assert.equal(await openHandles(`${dir}/d`), 1);
  } finally {
    files.clear();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fileResponse: If-Range compares entity tags strongly and dates exactly", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/f.bin`;
  using files = new OpenFiles();
  try {
    await Deno.writeFile(path, new Uint8Array(1000).map((_, i) => i % 251));
    const lastModified = (await Deno.stat(path)).mtime!.toUTCString();
    const ask = (ifRange: string) =>
      fileResponse(
        new Request("http://x/", { headers: { range: "bytes=10-19", "if-range": ifRange } }),
        {
          path,
          contentType: "application/octet-stream",
          etag: "e",
          cacheControl: "private",
          files,
        },
      );
    const cases: [string, number][] = [
      ['"e"', 206],
      ['W/"e"', 200],
      ['"other"', 200],
      [lastModified, 206],
      [new Date(Date.parse(lastModified) - 60_000).toUTCString(), 200],
      ["not a date", 200],
    ];
    for (const [ifRange, status] of cases) {
      const response = ask(ifRange);
      assert.equal(response.status, status, ifRange);
      const bytes = new Uint8Array(await response.arrayBuffer());
      assert.equal(bytes.length, status === 206 ? 10 : 1000, ifRange);
    }
  } finally {
    files.clear();
    await Deno.remove(dir, { recursive: true });
  }
});
