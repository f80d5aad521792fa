import assert from "node:assert/strict";
import { LocalCopies } from "../../../lib/storage/local_copies.ts";

/** A fetch that writes `size` bytes and counts its calls. */
function fetcher(size: number) {
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    fetch: async (path: string) => {
      calls++;
      await Deno.writeFile(path, new Uint8Array(size));
    },
  };
}

async function files(dir: string): Promise<number> {
  return (await Array.fromAsync(Deno.readDir(dir))).length;
}

Deno.test("local copies: one fetch per key while kept, shared by concurrent users", async () => {
  const dir = await Deno.makeTempDir({ prefix: "offchat-copies-" });
  try {
    const copies = new LocalCopies(dir, 1000);
    const source = fetcher(100);
    const paths = await Promise.all(
      [1, 2, 3].map(() => copies.use("media/a.mp4", source.fetch, (path) => Promise.resolve(path))),
    );
    assert.equal(source.calls, 1);
    assert.equal(new Set(paths).size, 1);
    await copies.use("media/a.mp4", source.fetch, () => Promise.resolve());
    assert.equal(source.calls, 1, "kept after use");
    assert.equal(copies.bytes, 100);
    await copies.forget("media/a.mp4");
    assert.equal(await files(dir), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("local copies: the least recently used go past the bound, never one in use", async () => {
  const dir = await Deno.makeTempDir({ prefix: "offchat-copies-" });
  try {
    const copies = new LocalCopies(dir, 250);
    const source = fetcher(100);
    await copies.use("a", source.fetch, () => Promise.resolve());
    await copies.use("b", source.fetch, () => Promise.resolve());
    // While "c" is fetched and used, "a" (least recent) goes; "c" itself stays.
    await copies.use("c", source.fetch, async () => {
      await copies.use("d", source.fetch, () => Promise.resolve());
    });
    assert.ok(copies.bytes <= 250, String(copies.bytes));
    assert.equal(await files(dir), 2);
    const again = source.calls;
    await copies.use("c", source.fetch, () => Promise.resolve());
    assert.equal(source.calls, again, "c was kept");
    await copies.use("a", source.fetch, () => Promise.resolve());
    assert.equal(source.calls, again + 1, "a was evicted");

    // An adopted file is the copy; one larger than the bound is removed instead.
    await Deno.writeFile(`${dir}/upload`, new Uint8Array(50));
    await copies.adopt("e", `${dir}/upload`);
    await copies.use("e", source.fetch, () => Promise.resolve());
    assert.equal(source.calls, again + 1);
    await Deno.writeFile(`${dir}/huge`, new Uint8Array(300));
    await copies.adopt("f", `${dir}/huge`);
    await assert.rejects(Deno.stat(`${dir}/huge`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("local copies: a failed fetch is not kept, and a copy removed by the sweep is fetched again", async () => {
  const dir = await Deno.makeTempDir({ prefix: "offchat-copies-" });
  try {
    const copies = new LocalCopies(dir, 1000);
    await assert.rejects(
      copies.use("a", () => Promise.reject(new Deno.errors.NotFound("gone")), () => {
        throw new Error("not reached");
      }),
      Deno.errors.NotFound,
    );
    assert.equal(await files(dir), 0);
    const source = fetcher(10);
    const path = await copies.use("a", source.fetch, (p) => Promise.resolve(p));
    await Deno.remove(path);
    await copies.use("a", source.fetch, () => Promise.resolve());
    assert.equal(source.calls, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
