/** Why {@linkcode Semaphore.acquire} gave no slot. */
export class QueueFull extends Error {
  constructor(readonly waiting: number) {
    super(`${waiting} tasks already wait for a slot`);
  }
}

/** Bounds how many tasks run at once; the rest wait in order. */
export class Semaphore {
  #free: number;
  #waiting: { grant: () => void; abandon: () => void }[] = [];

  constructor(slots: number) {
    if (!Number.isInteger(slots) || slots < 1) throw new Error(`Invalid slot count "${slots}"`);
    this.#free = slots;
  }

  /** Tasks waiting for a slot now. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Waits for a slot, first come first served, and returns the function
   * that gives it back (once; later calls do nothing). Throws
   * {@linkcode QueueFull} at once when `maxWaiting` tasks already wait, and
   * the signal's reason when it aborts while waiting (the place in the queue
   * is then given up).
   */
  async acquire(options: { signal?: AbortSignal; maxWaiting?: number } = {}): Promise<() => void> {
    const { signal, maxWaiting = Infinity } = options;
    signal?.throwIfAborted();
    if (this.#free > 0) this.#free--;
    else if (this.#waiting.length >= maxWaiting) throw new QueueFull(this.#waiting.length);
    else {
      await new Promise<void>((resolve, reject) => {
        const waiter = {
          grant: () => {
            signal?.removeEventListener("abort", waiter.abandon);
            resolve();
          },
          abandon: () => {
            const at = this.#waiting.indexOf(waiter);
            if (at >= 0) this.#waiting.splice(at, 1);
            reject(signal?.reason);
          },
        };
        this.#waiting.push(waiter);
        signal?.addEventListener("abort", waiter.abandon, { once: true });
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next.grant();
      else this.#free++;
    };
  }

  /** Runs `task` once a slot is free. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await task();
    } finally {
      release();
    }
  }
}
