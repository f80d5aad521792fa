/**
 * Attachment events for the webhook receiver, written to the outbox
 * (`webhook_deliveries`) inside the transaction of the change they announce:
 * a change that rolls back sends nothing, and one that commits is delivered
 * even if the process dies the next instant (lib/webhooks/deliveries.ts).
 *
 * @module
 */
import type { Database } from "../../db/client.ts";
import { type Attachment, webhookDeliveries } from "../../db/schema.ts";
import type { WebhookConfig } from "../config/config.ts";
import { newId } from "../core/ids.ts";

/** The events a receiver gets. */
export type WebhookEvent =
  | "attachment.ready"
  | "attachment.failed"
  | "attachment.playable"
  | "attachment.deleted";

/**
 * The body of a delivery (docs/API.md, "Webhooks"). It says what happened to
 * which attachment and nothing a receiver could not fetch itself with its own
 * token: no media URLs (signed or not), no file name, no uploader.
 */
export interface WebhookPayload {
  type: WebhookEvent;
  /** When the change happened (ISO 8601); a retry keeps it. */
  timestamp: string;
  data: {
    attachment: {
      id: string;
      message_id: string;
      conversation_id: string;
      status: Attachment["status"];
      /** The reason of `attachment.failed`, otherwise null. */
      error: string | null;
      /** Seconds, as probed at upload. */
      duration: number | null;
      width: number | null;
      height: number | null;
      deleted: boolean;
    };
  };
}

/** The payload of `event` for the attachment row as the transaction left it. */
export function payloadOf(event: WebhookEvent, attachment: Attachment, at: Date): WebhookPayload {
  return {
    type: event,
    timestamp: at.toISOString(),
    data: {
      attachment: {
        id: attachment.id,
        message_id: attachment.messageId,
        conversation_id: attachment.conversationId,
        status: attachment.status,
        error: attachment.status === "failed" ? attachment.error : null,
        duration: attachment.duration,
        width: attachment.width,
        height: attachment.height,
        deleted: attachment.deletedAt !== null,
      },
    },
  };
}

/**
 * Queues the delivery of `event` inside the caller's transaction; nothing
 * when no webhook is configured. `attachment` is the row after the change.
 */
export async function enqueueWebhook(
  tx: Pick<Database, "insert">,
  webhook: WebhookConfig | undefined,
  event: WebhookEvent,
  attachment: Attachment,
  at: Date,
): Promise<void> {
  if (!webhook) return;
  const t = at.getTime();
  await tx.insert(webhookDeliveries).values({
    id: newId(),
    event,
    attachmentId: attachment.id,
    payload: JSON.stringify(payloadOf(event, attachment, at)),
    status: "queued",
    attempts: 0,
    maxAttempts: webhook.maxAttempts,
    nextAttemptAt: t,
    createdAt: t,
    updatedAt: t,
  });
}
