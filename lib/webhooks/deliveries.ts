/**
 * Webhook deliveries: the `webhook_deliveries` table as a small queue of its
 * own (claim by lease, as the jobs table: lib/processing/jobs.ts), the signed
 * POST of one delivery, and the loop a worker process runs them in.
 *
 * Why not a job kind: jobs are media work for one attachment, claimed in
 * upload order by worker slots that may be busy for minutes with a ladder,
 * and offered to remote runners by kind. A delivery takes milliseconds, runs
 * no tool, and must not wait behind a transcode; its own table also keeps
 * its history (status, attempts, the receiver's answer) for the admin view
 * after an attachment's jobs are dropped.
 *
 * @module
 */
import { desc, eq, lt, type SQL, sql } from "drizzle-orm";
import { getLogger } from "@logtape/logtape";
import { Webhook } from "standardwebhooks";
import type { Database } from "../../db/client.ts";
import { webhookDeliveries, type WebhookDelivery } from "../../db/schema.ts";
import type { WebhookConfig } from "../config/config.ts";
import type { Clock } from "../core/clock.ts";
import { Naps } from "../core/naps.ts";
import { stripUnsafeCharacters } from "../core/unsafe_text.ts";
import type { AppDeps } from "../deps.ts";
import { literalMessage } from "../observability/logging.ts";
import { checkTarget, dnsResolver, RefusedTarget, type Resolver } from "./addresses.ts";

/** How long a receiver may take to answer, headers and the bytes of the body read. */
export const DELIVERY_TIMEOUT_MS = 10_000;
/** Bytes of a receiver's answer read (and kept, in part, as the error); the rest is dropped. */
export const RESPONSE_BYTES = 1024;
/** The longest wait between two attempts. */
export const MAX_RETRY_DELAY_MS = 3_600_000;
/** How long a claimed delivery is a process's before another may take it over. */
const LEASE_MS = 60_000;

/** Delay before retry number `attempt` (1-based): base, 2×base, 4×base … capped at an hour. */
export function webhookRetryDelayMs(baseMs: number, attempt: number): number {
  return Math.min(baseMs * 2 ** (attempt - 1), MAX_RETRY_DELAY_MS);
}

/** How one attempt ended. */
export interface AttemptResult {
  ok: boolean;
  /** The receiver's HTTP status, when it answered. */
  status?: number;
  error?: string;
  /** The target's address was refused (lib/webhooks/addresses.ts): retried like any failure. */
  refused?: boolean;
}

/** What {@linkcode sendDelivery} needs. */
export interface SendOptions {
  webhook: Pick<WebhookConfig, "url" | "secret" | "allowHosts">;
  resolve: Resolver;
  clock: Clock;
  timeoutMs?: number;
}

/**
 * POSTs one delivery, signed per Standard Webhooks (`webhook-id` is the
 * delivery's id, so a receiver can drop a retry it already handled). The
 * target's addresses are checked first ({@linkcode checkTarget}); redirects
 * are not followed (a 3xx is a failure); the whole exchange has a timeout,
 * and at most {@linkcode RESPONSE_BYTES} of the answer are read.
 */
export async function sendDelivery(
  delivery: Pick<WebhookDelivery, "id" | "payload">,
  options: SendOptions,
): Promise<AttemptResult> {
  const url = new URL(options.webhook.url);
  try {
    await checkTarget(url, { allowHosts: options.webhook.allowHosts }, options.resolve);
  } catch (error) {
    if (error instanceof RefusedTarget) return { ok: false, refused: true, error: error.message };
    return { ok: false, error: `Resolving ${url.hostname} failed: ${String(error)}` };
  }
  const now = options.clock();
  const signature = new Webhook(options.webhook.secret).sign(delivery.id, now, delivery.payload);
  const signal = AbortSignal.timeout(options.timeoutMs ?? DELIVERY_TIMEOUT_MS);
  try {
    const response = await fetch(url, {
      method: "POST",
      redirect: "manual",
      signal,
      headers: {
        "content-type": "application/json",
        "user-agent": "OffChat-Media-Webhooks/1",
        "webhook-id": delivery.id,
        "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
        "webhook-signature": signature,
      },
      body: delivery.payload,
    });
    const text = await readSome(response, RESPONSE_BYTES);
    if (response.status >= 200 && response.status < 300) {
      return { ok: true, status: response.status };
    }
    const redirect = response.status >= 300 && response.status < 400;
    return {
      ok: false,
      status: response.status,
      error: redirect
        ? `The receiver answered ${response.status} (redirects are not followed)`
        : `The receiver answered ${response.status}${text ? `: ${text.slice(0, 200)}` : ""}`,
    };
  } catch (error) {
    return {
      ok: false,
      error: signal.aborted
        ? `No answer within ${options.timeoutMs ?? DELIVERY_TIMEOUT_MS} ms`
        : `The request failed: ${error instanceof Error ? error.message : String(error)}`,
    };
  }
}

/** Reads at most `limit` bytes of a body as text, then cancels the rest. */
async function readSome(response: Response, limit: number): Promise<string> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes.subarray(0, limit));
}

/** The `webhook_deliveries` table seen by one process: claim by lease, record, list, resend. */
export class WebhookQueue {
  readonly #db: Database;
  readonly #clock: Clock;
  readonly #workerId: string;

  constructor(options: { db: Database; clock: Clock; workerId: string }) {
    this.#db = options.db;
    this.#clock = options.clock;
    this.#workerId = options.workerId;
  }

  /**
   * Claims the next due delivery in one statement (two processes never get
   * the same one): a queued one whose time has come, or a running one whose
   * lease expired (its process died mid-request: it is sent again, which
   * `webhook-id` lets the receiver recognize).
   */
  async claim(): Promise<WebhookDelivery | null> {
    const t = this.#clock().getTime();
    const [row] = await this.#db.update(webhookDeliveries)
      .set({
        status: "running",
        lockedBy: this.#workerId,
        lockedUntil: t + LEASE_MS,
        attempts: sql`${webhookDeliveries.attempts} + 1`,
        updatedAt: t,
      })
      .where(eq(
        webhookDeliveries.id,
        sql`(SELECT id FROM webhook_deliveries
              WHERE (status = 'queued' AND next_attempt_at <= ${t})
                 OR (status = 'running' AND locked_until < ${t})
              ORDER BY next_attempt_at, id LIMIT 1)`,
      ))
      .returning();
    return row ?? null;
  }

  /**
   * Records an attempt: delivered, queued again after the backoff, or
   * failed for good after the last attempt. Nothing is written when this
   * claim no longer holds the delivery.
   */
  async record(
    delivery: WebhookDelivery,
    result: AttemptResult,
    retryBaseMs: number,
  ): Promise<"delivered" | "retry" | "failed"> {
    const t = this.#clock().getTime();
    const outcome = result.ok
      ? "delivered"
      : delivery.attempts >= delivery.maxAttempts
      ? "failed"
      : "retry";
    await this.#db.update(webhookDeliveries)
      .set({
        status: outcome === "retry" ? "queued" : outcome,
        nextAttemptAt: outcome === "retry"
          ? t + webhookRetryDelayMs(retryBaseMs, delivery.attempts)
          : delivery.nextAttemptAt,
        lastError: result.error
          ? stripUnsafeCharacters(result.error.slice(0, 500), { multiline: false })
          : null,
        lastStatus: result.status ?? null,
        lockedBy: null,
        lockedUntil: null,
        updatedAt: t,
        deliveredAt: result.ok ? t : null,
      })
      .where(this.#held(delivery));
    return outcome;
  }

  #held(delivery: WebhookDelivery): SQL | undefined {
    return sql`${webhookDeliveries.id} = ${delivery.id} AND ${webhookDeliveries.status} = 'running'
      AND ${webhookDeliveries.lockedBy} = ${this.#workerId}
      AND ${webhookDeliveries.attempts} = ${delivery.attempts}`;
  }
}

/** The most recent deliveries, newest first (ids are time-ordered). */
export async function listDeliveries(
  db: Database,
  options: { limit: number; before?: string },
): Promise<WebhookDelivery[]> {
  return await db.select().from(webhookDeliveries)
    .where(options.before ? lt(webhookDeliveries.id, options.before) : undefined)
    .orderBy(desc(webhookDeliveries.id))
    .limit(options.limit);
}

/**
 * Queues a delivery again, due now, with its attempts reset: an admin's
 * answer to a failed one (or a repeat of a delivered one). The payload and
 * `webhook-id` stay the same. Returns null when there is no such delivery,
 * "running" when it is being sent right now.
 */
export async function resendDelivery(
  db: Database,
  id: string,
  now: Date,
): Promise<WebhookDelivery | "running" | null> {
  const t = now.getTime();
  const [row] = await db.update(webhookDeliveries)
    .set({ status: "queued", attempts: 0, nextAttemptAt: t, deliveredAt: null, updatedAt: t })
    .where(sql`${webhookDeliveries.id} = ${id} AND ${webhookDeliveries.status} <> 'running'`)
    .returning();
  if (row) return row;
  const [existing] = await db.select({ id: webhookDeliveries.id }).from(webhookDeliveries)
    .where(eq(webhookDeliveries.id, id));
  return existing ? "running" : null;
}

/** A running delivery loop. */
export interface WebhookSender {
  /** Looks for due deliveries now (one was queued or resent in this process). */
  notify(): void;
  /** Stops claiming and waits for the delivery in flight. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startWebhookSender}. */
export interface WebhookSenderOptions {
  /** How often it looks for due deliveries (queued by other processes, or backing off). */
  pollMs?: number;
  workerId?: string;
  /** Resolves the receiver's host; defaults to `Deno.resolveDns` (WEBHOOK_NAMESERVER). */
  resolve?: Resolver;
  onError?: (error: unknown) => void;
}

/**
 * Runs deliveries one at a time until stopped; nothing when no webhook is
 * configured. Each attempt is logged (category `offchat.webhook`) and
 * counted (`offchat_webhook_deliveries_total`). It runs beside the job
 * worker, in `serve` and `worker`, and not through runTool: it runs no tool.
 */
export function startWebhookSender(
  deps: Pick<AppDeps, "config" | "db" | "clock" | "metrics">,
  options: WebhookSenderOptions = {},
): WebhookSender | null {
  const configured = deps.config.webhook;
  if (!configured) return null;
  const webhook = configured;
  const log = getLogger(["offchat", "webhook"]);
  const pollMs = options.pollMs ?? 1000;
  const workerId = options.workerId ?? `webhooks-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const queue = new WebhookQueue({ db: deps.db, clock: deps.clock, workerId });
  const resolve = options.resolve ??
    dnsResolver(webhook.nameServer ? { ipAddr: webhook.nameServer, port: 53 } : undefined);
  const naps = new Naps();
  let stopping = false;

  async function sendOne(): Promise<boolean> {
    const delivery = await queue.claim();
    if (!delivery) return false;
    const started = performance.now();
    const result = await sendDelivery(delivery, { webhook, resolve, clock: deps.clock });
    const outcome = await queue.record(delivery, result, webhook.retryBaseMs);
    deps.metrics.observeWebhook({
      event: delivery.event,
      outcome: result.refused && outcome !== "delivered" ? "refused" : outcome,
    });
    const fields = {
      deliveryId: delivery.id,
      event: delivery.event,
      attachmentId: delivery.attachmentId,
      attempt: delivery.attempts,
      outcome,
      status: result.status,
      ms: Math.round(performance.now() - started),
      error: result.error,
    };
    log[outcome === "delivered" ? "info" : outcome === "retry" ? "warn" : "error"](
      literalMessage(`webhook ${delivery.event} ${outcome}`),
      fields,
    );
    return true;
  }

  const loop = (async () => {
    while (!stopping) {
      let worked = false;
      try {
        worked = await sendOne();
      } catch (error) {
        options.onError?.(error);
      }
      if (!worked && !stopping) await naps.nap(pollMs);
    }
  })();

  return {
    notify: () => naps.wakeAll(),
    async stop(): Promise<void> {
      stopping = true;
      naps.wakeAll();
      await loop;
    },
  };
}
