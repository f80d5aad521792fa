/**
 * Waits that end early when woken: a worker loop's pause before it looks
 * for work again, cut short when work arrives or the loop stops. Any number
 * of naps may run at once; {@linkcode Naps.wakeAll} ends every one.
 */
export class Naps {
  readonly #wakers = new Set<() => void>();

  /** Resolves after `ms`, or at the next {@linkcode wakeAll}, whichever comes first. */
  nap(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const wakers = this.#wakers;
      function done(): void {
        clearTimeout(timer);
        wakers.delete(done);
        resolve();
      }
      wakers.add(done);
    });
  }

  /** Ends every nap now. */
  wakeAll(): void {
    for (const wake of [...this.#wakers]) wake();
  }
}
