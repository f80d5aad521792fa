import { ApiError } from "../core/errors.ts";

/** The error a body errors with when its client sent nothing for too long. */
export function uploadIdleTimeout(timeoutMs: number): ApiError {
  return new ApiError(
    "request_timeout",
    `The upload sent nothing for ${timeoutMs} ms`,
    // The rest of the body is never read: the connection is closed after the answer.
    { connection: "close" },
  );
}

/** Options for {@linkcode idleGuardedBody}. */
export interface IdleGuardOptions {
  /**
   * Called with the 408 when the timer fires, for a consumer (a library) that
   * reports the body's error as something of its own.
   */
  onIdle?: (error: ApiError) => void;
  /**
   * Cancels the source when aborted, whoever holds the returned stream: for a
   * consumer (a library) that stops reading without cancelling. A request
   * body left half-read keeps its connection open for as long as the client
   * keeps its socket, even after the answer.
   */
  release?: AbortSignal;
}

/**
 * `body`, erroring with 408 `request_timeout` ({@linkcode uploadIdleTimeout})
 * when a read waits more than `timeoutMs` for the client's next bytes; the
 * source is then cancelled, which lets the server drop the connection. The
 * clock runs only while the consumer waits for the client, never while it
 * is busy with a chunk (a slow disk is not an idle client).
 *
 * @example
 * ```ts
 * const reader = idleGuardedBody(request.body!, 30_000).getReader();
 * ```
 */
export function idleGuardedBody(
  body: ReadableStream<Uint8Array>,
  timeoutMs: number,
  options: IdleGuardOptions = {},
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let timedOut = false;
  options.release?.addEventListener("abort", () => {
    reader.cancel(options.release?.reason).catch(() => {});
  }, { once: true });
  return new ReadableStream<Uint8Array>({
    async pull(controller): Promise<void> {
      const timer = setTimeout(() => {
        timedOut = true;
        const error = uploadIdleTimeout(timeoutMs);
        options.onIdle?.(error);
        controller.error(error);
        reader.cancel(error).catch(() => {});
      }, timeoutMs);
      try {
        const { done, value } = await reader.read();
        if (timedOut) return;
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        if (!timedOut) controller.error(error);
      } finally {
        clearTimeout(timer);
      }
    },
    async cancel(reason): Promise<void> {
      await reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}
