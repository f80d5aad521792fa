/** Human-readable numbers for the dashboard. */

const UNITS = ["B", "KB", "MB", "GB", "TB"];

/** `1536` → `1.5 KB` (powers of 1024, as file managers show sizes). */
export function formatBytes(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return "–";
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  // 8.00 MB reads as 8 MB; 1.50 MB as 1.5 MB.
  return `${Number.parseFloat(value.toFixed(digits))} ${UNITS[unit]}`;
}

/** Bytes per second → `2.4 MB/s`. */
export function formatRate(bytesPerSecond) {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return "–";
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** Seconds → `M:SS`, or `H:MM:SS` from an hour. */
export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/**
 * A video size as a quality name, by its shorter side, as the ladder's rungs
 * are chosen: 1280 × 720 → `720p`, and a portrait 720 × 1280 too.
 */
export function formatQuality(width, height) {
  const short = Math.min(width || Infinity, height || Infinity);
  return Number.isFinite(short) ? `${short}p` : "–";
}

/** Seconds left → `about 5 s`, `about 3 min`, `about 1 h 20 min`. */
export function formatTimeLeft(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "calculating…";
  if (seconds < 1) return "almost done";
  if (seconds < 60) return `about ${Math.ceil(seconds)} s left`;
  if (seconds < 3600) return `about ${Math.ceil(seconds / 60)} min left`;
  const h = Math.floor(seconds / 3600);
  const m = Math.round((seconds % 3600) / 60);
  return `about ${h} h ${m} min left`;
}

/** An ISO time → a local date and time. */
export function formatTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "–";
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** A list of labels → `A, B or C`. */
export function formatList(items, last = "or") {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} ${last} ${items.at(-1)}`;
}

/**
 * Upload speed and time left from progress samples, over a sliding window so
 * the figures follow the connection without jumping at every event.
 */
export class RateMeter {
  #samples = [];
  #windowMs;

  constructor(windowMs = 3000) {
    this.#windowMs = windowMs;
  }

  /** Records `bytes` sent so far at time `now` (ms); returns bytes per second. */
  add(bytes, now = performance.now()) {
    this.#samples.push({ bytes, now });
    while (this.#samples.length > 2 && now - this.#samples[0].now > this.#windowMs) {
      this.#samples.shift();
    }
    return this.rate();
  }

  /** Bytes per second over the window; 0 until there are two samples far enough apart. */
  rate() {
    const first = this.#samples[0];
    const last = this.#samples.at(-1);
    if (!first || !last || last.now - first.now < 200) return 0;
    return (last.bytes - first.bytes) / ((last.now - first.now) / 1000);
  }

  /** Forgets the samples (after a pause or a reconnect). */
  reset() {
    this.#samples = [];
  }
}
