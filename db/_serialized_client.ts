import type { Client, Transaction } from "@libsql/client";

/** A FIFO lock: `acquire()` resolves with the function that releases it. */
class Lock {
  #tail: Promise<void> = Promise.resolve();

  acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((resolve) => (release = resolve));
    const ready = this.#tail.then(() => once(release));
    this.#tail = this.#tail.then(() => next);
    return ready;
  }
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      fn();
    }
  };
}

const STATEMENT_METHODS = new Set(["execute", "batch", "executeMultiple", "migrate"]);
const ENDING_METHODS = new Set(["commit", "rollback", "close"]);

function releasingTransaction(tx: Transaction, release: () => void): Transaction {
  return new Proxy(tx, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      if (!ENDING_METHODS.has(String(prop))) return value.bind(target);
      return async (...args: unknown[]) => {
        try {
          return await value.apply(target, args);
        } finally {
          release();
        }
      };
    },
  });
}

/**
 * Serializes one process's use of an embedded libSQL file. The native driver
 * runs statements synchronously, so a write that waits on SQLite's busy
 * timeout while this process's own transaction is open (between two awaits)
 * blocks the event loop the transaction needs to finish: a deadlock until the
 * timeout fires. Queuing every statement and transaction behind one lock
 * turns that into an ordinary async wait. Other processes still meet the busy
 * timeout, which is fine: their lock holder makes progress on its own.
 */
export function serializeClient(client: Client): Client {
  const lock = new Lock();
  return new Proxy(client, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      const name = String(prop);
      if (STATEMENT_METHODS.has(name)) {
        return async (...args: unknown[]) => {
          const release = await lock.acquire();
          try {
            return await value.apply(target, args);
          } finally {
            release();
          }
        };
      }
      if (name === "transaction") {
        return async (...args: unknown[]) => {
          const release = await lock.acquire();
          try {
            return releasingTransaction(await value.apply(target, args), release);
          } catch (error) {
            release();
            throw error;
          }
        };
      }
      return value.bind(target);
    },
  });
}
