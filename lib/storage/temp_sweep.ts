/**
 * Removes files in a temp directory older than `maxAgeMs`: what a crash in
 * the middle of an upload or a job left behind. The age keeps it from
 * touching files that a live upload in another process is still writing.
 */
export async function sweepTempFiles(dir: string, maxAgeMs: number, now: Date): Promise<number> {
  let removed = 0;
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile) continue;
      const path = `${dir}/${entry.name}`;
      const info = await Deno.stat(path).catch(() => null);
      if (!info?.mtime || now.getTime() - info.mtime.getTime() < maxAgeMs) continue;
      await Deno.remove(path).then(() => removed++).catch(() => {});
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return removed;
}
