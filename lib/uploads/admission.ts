import { ApiError } from "../core/errors.ts";
import { QueueFull, Semaphore } from "../core/semaphore.ts";

/** Seconds a refused upload is told to wait (`Retry-After`). */
const RETRY_AFTER_SECONDS = 5;

/**
 * How many upload bodies this process reads at once (UPLOADS_PER_PROCESS),
 * the others waiting in order with their bodies unread (TCP holds them back
 * at the client), at most UPLOAD_QUEUE_MAX of them. All of one process's
 * work runs on one event loop: fifty bodies parsed, hashed and written at
 * once leave a metadata read waiting behind their chunks, where four at a
 * time leave it more room and hold half the memory (the load benchmark
 * measures both). A waiting upload that disconnects gives up
 * its place; the idle timeout starts when its body is first read.
 */
export class UploadAdmission {
  readonly #slots: Semaphore | null;
  readonly #maxWaiting: number;
  #busy = 0;
  #refused = 0;

  constructor(options: { slots: number; maxWaiting: number }) {
    this.#slots = options.slots > 0 ? new Semaphore(options.slots) : null;
    this.#maxWaiting = options.maxWaiting;
  }

  /** Uploads reading their bodies now, waiting for a slot, and refused since start. */
  get counts(): { busy: number; waiting: number; refused: number } {
    return { busy: this.#busy, waiting: this.#slots?.waiting ?? 0, refused: this.#refused };
  }

  /**
   * Waits for a slot (for as long as the request lives) and returns the
   * function that frees it. Throws 503 `unavailable` with `Retry-After` when
   * the queue is full, and the signal's reason when the client goes away.
   */
  async admit(signal?: AbortSignal): Promise<() => void> {
    let release = () => {};
    if (this.#slots) {
      try {
        release = await this.#slots.acquire({ signal, maxWaiting: this.#maxWaiting });
      } catch (error) {
        if (!(error instanceof QueueFull)) throw error;
        this.#refused++;
        throw new ApiError(
          "unavailable",
          `${error.waiting} uploads already wait for this server; try again shortly`,
          { "retry-after": String(RETRY_AFTER_SECONDS) },
        );
      }
    }
    this.#busy++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#busy--;
      release();
    };
  }
}
