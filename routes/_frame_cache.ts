import { LRUCache } from "lru-cache";
import { TokenBuckets } from "./_rate_limit.ts";
import { ApiError } from "../lib/core/errors.ts";

/** Bytes of rendered frames a process keeps (a 320 px JPEG is 5–30 KB). */
export const FRAME_CACHE_BYTES = 16 * 1024 * 1024;

/**
 * Frames one user may have rendered a minute (cache misses only; hits are
 * free), with bursts of as many: enough to scrub a picker, far from enough
 * to keep ffmpeg busy.
 */
export const FRAME_RENDERS_PER_MINUTE = 30;

/** What a render gave: the JPEG, or null when the video has no frame there. */
type Frame = { bytes: Uint8Array | null };

/**
 * The frames the thumbnail route renders for `?time=`: the time is rounded
 * to the storyboard interval by the caller, so an attachment has at most
 * 100 keys per source; each is rendered once (concurrent requests for one
 * key share one ffmpeg run), kept in a byte-bounded LRU, and a user's cache
 * misses are rate-limited. What a caller can make ffmpeg do is therefore
 * bounded twice: by the number of intervals, and by the allowance.
 */
export class FrameCache {
  readonly #frames = new LRUCache<string, Frame>({
    maxSize: FRAME_CACHE_BYTES,
    sizeCalculation: (frame) => Math.max(1, frame.bytes?.length ?? 0),
  });
  readonly #rendering = new Map<string, Promise<Frame>>();
  readonly #renders = new TokenBuckets({
    capacity: FRAME_RENDERS_PER_MINUTE,
    periodMs: 60_000,
  });

  /**
   * The frame of `key`: from the cache (`hit`), from a render already running,
   * or rendered now on `who`'s allowance (`rendered`); 429 when it is spent.
   */
  async get(
    key: string,
    options: { who: string; now: number; render: () => Promise<Uint8Array | null> },
  ): Promise<{ frame: Uint8Array | null; result: "hit" | "rendered" }> {
    const cached = this.#frames.get(key);
    if (cached) return { frame: cached.bytes, result: "hit" };
    const running = this.#rendering.get(key);
    if (running) return { frame: (await running).bytes, result: "hit" };
    this.spend(options.who, options.now);
    const render = options.render().then((bytes) => {
      const frame = { bytes };
      this.#frames.set(key, frame);
      return frame;
    }).finally(() => this.#rendering.delete(key));
    this.#rendering.set(key, render);
    return { frame: (await render).bytes, result: "rendered" };
  }

  /**
   * Takes one render from `who`'s allowance, or throws 429 with `Retry-After`:
   * also spent by a poster choice, which runs ffmpeg the same way.
   */
  spend(who: string, now: number): void {
    const waitMs = this.#renders.take(who, now);
    if (waitMs > 0) {
      throw new ApiError(
        "too_many_requests",
        `More than ${FRAME_RENDERS_PER_MINUTE} frames rendered a minute; try again later`,
        { "retry-after": String(Math.ceil(waitMs / 1000)) },
      );
    }
  }
}

const caches = new WeakMap<object, FrameCache>();

/** The frame cache of one app (keyed by its deps, so that apps in one process do not share it). */
export function frameCacheOf(deps: object): FrameCache {
  let cache = caches.get(deps);
  if (!cache) caches.set(deps, cache = new FrameCache());
  return cache;
}
