import { and, eq, isNull, sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { attachments } from "../../db/schema.ts";
import { ApiError } from "../core/errors.ts";

/**
 * Bytes a user may still upload under `USER_QUOTA_BYTES` (the sizes of their
 * live originals count; derived files do not), or null without a quota.
 * Throws 413 `file_too_large` when nothing is left, or when the request
 * declares a `Content-Length` that cannot fit, before any byte is read.
 */
export async function remainingQuota(
  db: Pick<Database, "select">,
  options: {
    userId: string;
    quotaBytes: number;
    declaredLength: number | null;
    /** Bytes of framing around the file in `declaredLength` (64 KiB of multipart by default). */
    envelopeBytes?: number;
  },
): Promise<number | null> {
  if (options.quotaBytes <= 0) return null;
  const [row] = await db.select({
    used: sql<number>`coalesce(sum(${attachments.fileSize}), 0)`,
  }).from(attachments).where(
    and(eq(attachments.uploaderId, options.userId), isNull(attachments.deletedAt)),
  );
  const remaining = options.quotaBytes - Number(row?.used ?? 0);
  // The multipart envelope around the file is small; a declared length well past
  // what is left cannot be a file that fits.
  const envelope = options.envelopeBytes ?? 64 * 1024;
  if (
    remaining <= 0 ||
    (options.declaredLength !== null && options.declaredLength > remaining + envelope)
  ) {
    throw new ApiError(
      "file_too_large",
      `The upload would exceed your storage quota of ${options.quotaBytes} bytes`,
    );
  }
  return remaining;
}
