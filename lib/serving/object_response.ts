import { ApiError } from "../core/errors.ts";
import type { S3Storage } from "../storage/s3_storage.ts";
import { planResponse, type ResponseHeaders } from "./file_response.ts";

/**
 * Answers a GET or HEAD for an object of the bucket (`STORAGE=s3`) with the
 * very headers a file of the data directory gets ({@linkcode planResponse}:
 * the same validators, Range handling and 304/416), its size and
 * modification time from a HEAD of the object; the bytes (or the one range
 * asked for, as a ranged GET of the object) are streamed from the store as
 * they arrive. Throws `ApiError` 404 for an object gone.
 */
export async function objectResponse(
  request: Request,
  storage: S3Storage,
  options: ResponseHeaders & { key: string },
): Promise<Response> {
  const object = await storage.head(options.key);
  if (!object) throw new ApiError("not_found", "File not found");
  const plan = planResponse(request, options, object);
  if (plan.kind === "bodyless") return plan.response;
  const { status, headers, start, length, size } = plan;
  let read;
  try {
    read = await storage.openRead(
      options.key,
      start === 0 && length === size ? undefined : { start, length },
    );
  } catch (error) {
    // Deleted between the HEAD and here: gone, not a server error.
    if (error instanceof Deno.errors.NotFound) throw new ApiError("not_found", "File not found");
    throw error;
  }
  return new Response(read.body, { status, headers });
}
