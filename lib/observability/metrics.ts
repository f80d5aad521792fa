import { sql } from "drizzle-orm";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Database } from "../../db/client.ts";
import type { Clock } from "../core/clock.ts";
import type { UploadAdmission } from "../uploads/admission.ts";
import type { StorageRequestCount } from "../storage/s3_storage.ts";

/** Why a job's media tool failed: see `JobReport.cause` (lib/processing/worker.ts). */
export type ToolFailureCause = "timeout" | "signal" | "exit" | "output";

/** One answered HTTP request, as {@linkcode Metrics.observeRequest} counts it. */
export interface RequestSample {
  method: string;
  /** The matched route pattern (`/api/chat/videos/:id/stream`), never the raw path. */
  route: string;
  status: number;
  /** Until the response head was ready (a streamed body is not included). */
  seconds: number;
}

/** One finished job run, as {@linkcode Metrics.observeJob} counts it. */
export interface JobSample {
  kind: string;
  outcome: "done" | "retry" | "failed";
  ms: number;
  cause?: ToolFailureCause;
}

/** Latency buckets of HTTP requests, in seconds: range reads take milliseconds, uploads seconds. */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Job duration buckets, in seconds: a thumbnail takes a fraction, a ladder of a long video minutes. */
const JOB_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

/**
 * The Prometheus metrics of one process (of one app, in the tests): a
 * registry of its own, never prom-client's global one, so that any number of
 * apps live in one process. The counters and histograms count what this
 * process did since it started; the attachment and job gauges are read from
 * the database at each scrape, so every process reports the same queue.
 */
export class Metrics {
  readonly registry: Registry = new Registry();
  readonly #requests: Counter<"method" | "route" | "status">;
  readonly #requestSeconds: Histogram<"method" | "route" | "status">;
  readonly #uploadBytes: Counter<"protocol">;
  readonly #jobSeconds: Histogram<"kind" | "outcome">;
  readonly #toolFailures: Counter<"kind" | "cause">;
  readonly #sseConnections: Gauge;
  readonly #webhookDeliveries: Counter<"event" | "outcome">;
  readonly #frames: Counter<"result">;

  constructor(
    deps: {
      db: Database;
      clock: Clock;
      uploads?: UploadAdmission;
      /** RUNNER_STALL_MS: a runner seen within it counts as active. */
      runnerStallMs?: number;
      /** The bucket's storage (`STORAGE=s3`), whose requests are counted. */
      storage?: { requestCounts(): StorageRequestCount[] };
    },
  ) {
    const registers = [this.registry];
    this.#requests = new Counter({
      name: "offchat_http_requests_total",
      help: "HTTP requests answered, by method, route pattern and status.",
      labelNames: ["method", "route", "status"],
      registers,
    });
    this.#requestSeconds = new Histogram({
      name: "offchat_http_request_duration_seconds",
      help: "Time until the response head, by method, route pattern and status " +
        "(a streamed body is not included).",
      labelNames: ["method", "route", "status"],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.#uploadBytes = new Counter({
      name: "offchat_upload_bytes_total",
      help: "Request body bytes received by the upload routes, by protocol (multipart, tus), " +
        "refused uploads included.",
      labelNames: ["protocol"],
      registers,
    });
    this.#jobSeconds = new Histogram({
      name: "offchat_job_duration_seconds",
      help: "Job runs in this process by kind and outcome (done, retry, failed), in seconds.",
      labelNames: ["kind", "outcome"],
      buckets: JOB_BUCKETS,
      registers,
    });
    this.#toolFailures = new Counter({
      name: "offchat_ffmpeg_failures_total",
      help: "Job runs that failed in a media tool, by job kind and cause: timeout, signal " +
        "(killed, e.g. out of memory), exit (non-zero exit code), output (exited 0 but the " +
        "output check failed).",
      labelNames: ["kind", "cause"],
      registers,
    });
    this.#frames = new Counter({
      name: "offchat_thumbnail_frames_total",
      help: "Thumbnail route requests with `?time=`, by result: hit (from the frame cache), " +
        "rendered (an ffmpeg run), limited (429, the per-user allowance of renders spent), " +
        "none (no frame there).",
      labelNames: ["result"],
      registers,
    });
    this.#sseConnections = new Gauge({
      name: "offchat_sse_connections",
      help: "Open attachment event streams (Server-Sent Events) in this process.",
      registers,
    });
    new Gauge({
      name: "process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      registers,
      collect() {
        this.set(Deno.memoryUsage().rss);
      },
    });
    const { db, clock, uploads } = deps;
    if (uploads) {
      new Gauge({
        name: "offchat_upload_slots",
        help: "Upload bodies this process reads now (state=busy, at most UPLOADS_PER_PROCESS) " +
          "and uploads waiting for a slot (state=waiting).",
        labelNames: ["state"],
        registers,
        collect() {
          const { busy, waiting } = uploads.counts;
          this.set({ state: "busy" }, busy);
          this.set({ state: "waiting" }, waiting);
        },
      });
      new Counter({
        name: "offchat_upload_queue_refused_total",
        help: "Uploads refused with 503 because UPLOAD_QUEUE_MAX uploads already waited.",
        registers,
        collect() {
          this.reset();
          this.inc(uploads.counts.refused);
        },
      });
    }
    const { storage } = deps;
    if (storage) {
      new Counter({
        name: "offchat_storage_requests_total",
        help: "Requests to the bucket (STORAGE=s3) by S3 operation and outcome: ok, not_found, " +
          "error (after the SDK's retries).",
        labelNames: ["operation", "outcome"],
        registers,
        collect() {
          this.reset();
          for (const { operation, outcome, count } of storage.requestCounts()) {
            this.inc({ operation, outcome }, count);
          }
        },
      });
    }
    new Gauge({
      name: "offchat_attachments",
      help: "Live attachments by status.",
      labelNames: ["status"],
      registers,
      async collect() {
        const rows = await db.all<{ status: string; n: number }>(
          sql`SELECT status, COUNT(*) AS n FROM attachments WHERE deleted_at IS NULL GROUP BY status`,
        );
        this.reset();
        for (const row of rows) this.set({ status: row.status }, Number(row.n));
      },
    });
    new Gauge({
      name: "offchat_jobs",
      help:
        "Processing jobs by kind (thumbnail, strip, subtitles, rendition, hls, storyboard) and status; " +
        'status="queued" is the queue depth.',
      labelNames: ["kind", "status"],
      registers,
      async collect() {
        const rows = await db.all<{ kind: string; status: string; n: number }>(
          sql`SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status`,
        );
        this.reset();
        for (const row of rows) this.set({ kind: row.kind, status: row.status }, Number(row.n));
      },
    });
    // Webhooks (lib/webhooks/).
    this.#webhookDeliveries = new Counter({
      name: "offchat_webhook_deliveries_total",
      help: "Webhook delivery attempts by event and outcome: delivered, retry (it failed and is " +
        "queued again), failed (it failed for good), refused (the target's address is not allowed).",
      labelNames: ["event", "outcome"],
      registers,
    });
    new Gauge({
      name: "offchat_webhook_deliveries",
      help: 'Webhook deliveries by status; status="queued" is the queue depth, ' +
        'status="failed" those given up on (resend them from the admin API).',
      labelNames: ["status"],
      registers,
      async collect() {
        const rows = await db.all<{ status: string; n: number }>(
          sql`SELECT status, COUNT(*) AS n FROM webhook_deliveries GROUP BY status`,
        );
        this.reset();
        for (const row of rows) this.set({ status: row.status }, Number(row.n));
      },
    });
    // Remote runners (lib/runners/).
    const runnerStallMs = deps.runnerStallMs ?? 60_000;
    new Gauge({
      name: "offchat_runners",
      help: "Remote runners by state: registered (not revoked), active (registered and seen " +
        "within RUNNER_STALL_MS), busy (holding a job), revoked.",
      labelNames: ["state"],
      registers,
      async collect() {
        const [row] = await db.all<Record<string, number>>(sql`
          SELECT
            COALESCE(SUM(revoked_at IS NULL), 0) AS registered,
            COALESCE(SUM(revoked_at IS NULL AND last_seen_at >= ${
          clock().getTime() - runnerStallMs
        }), 0) AS active,
            COALESCE(SUM(revoked_at IS NOT NULL), 0) AS revoked,
            (SELECT COUNT(DISTINCT locked_by) FROM jobs
               WHERE status = 'running' AND locked_by LIKE 'runner-%')
              AS busy
          FROM runners`);
        this.reset();
        for (const state of ["registered", "active", "busy", "revoked"]) {
          this.set({ state }, Number(row?.[state] ?? 0));
        }
      },
    });
    new Gauge({
      name: "offchat_jobs_queued_age_seconds",
      help: "By kind, how long the queued job that has waited longest has been runnable " +
        "(0 when every queued job of the kind is backing off).",
      labelNames: ["kind"],
      registers,
      async collect() {
        const rows = await db.all<{ kind: string; since: number }>(
          sql`SELECT kind, MIN(run_after) AS since FROM jobs WHERE status = 'queued' GROUP BY kind`,
        );
        const now = clock().getTime();
        this.reset();
        for (const row of rows) {
          this.set({ kind: row.kind }, Math.max(0, (now - Number(row.since)) / 1000));
        }
      },
    });
  }

  /** Counts an answered request. */
  observeRequest(sample: RequestSample): void {
    const labels = { method: sample.method, route: sample.route, status: String(sample.status) };
    this.#requests.inc(labels);
    this.#requestSeconds.observe(labels, sample.seconds);
  }

  /** Counts bytes of an upload request's body as they are read. */
  addUploadBytes(protocol: "multipart" | "tus", bytes: number): void {
    this.#uploadBytes.inc({ protocol }, bytes);
  }

  /** Counts a `?time=` thumbnail request by how it was answered. */
  countFrame(result: "hit" | "rendered" | "limited" | "none"): void {
    this.#frames.inc({ result });
  }

  /** Counts a finished job run, and its media tool's failure when it had one. */
  observeJob(sample: JobSample): void {
    this.#jobSeconds.observe({ kind: sample.kind, outcome: sample.outcome }, sample.ms / 1000);
    if (sample.outcome !== "done" && sample.cause) {
      this.#toolFailures.inc({ kind: sample.kind, cause: sample.cause });
    }
  }

  /** Counts one webhook delivery attempt. */
  observeWebhook(
    sample: { event: string; outcome: "delivered" | "retry" | "failed" | "refused" },
  ): void {
    this.#webhookDeliveries.inc({ event: sample.event, outcome: sample.outcome });
  }

  /** An event stream opened; call the returned function once when it closes. */
  openEventStream(): () => void {
    this.#sseConnections.inc();
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      this.#sseConnections.dec();
    };
  }

  /** The Prometheus text exposition of every metric. */
  async text(): Promise<string> {
    return await this.registry.metrics();
  }

  /** The content type of {@linkcode text}. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
