import { type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { AttachmentSchema } from "./_schemas.ts";
import type { AppEnv } from "./_env.ts";
import { activityContext, urlContext } from "./_context.ts";
import { requireUser } from "./_auth.ts";
import { admitUpload } from "./_rate_limit.ts";
import { bearer, json, newRouter, problems } from "./_router.ts";
import type { TusEndpoint } from "./_tus.ts";

const tags = ["uploads"];

const PATHS = ["/uploads", "/uploads/", "/uploads/:id"];

/**
 * `/api/chat/videos/uploads`: resumable uploads (tus 1.0). The protocol is
 * `@tus/server`'s, behind `tus`; these routes authenticate and hand the raw
 * request over.
 */
export function createUploadRoutes(tus: TusEndpoint): OpenAPIHono<AppEnv> {
  const uploadRoutes = newRouter();
  // Hono routes HEAD through GET handlers; the tus code sees the real method.
  uploadRoutes.on(
    ["POST", "GET", "PATCH", "DELETE"],
    PATHS,
    requireUser(),
    admitUpload(),
    async function tusRequest(c: Context<AppEnv>): Promise<Response> {
      return await tus.handle(c.req.raw, {
        user: c.get("user"),
        actor: activityContext(c),
        urls: urlContext(c),
        uploadId: c.req.param("id"),
      });
    },
  );
  // Capabilities only (Tus-Version, Tus-Max-Size, Tus-Extension): no token needed.
  uploadRoutes.on("OPTIONS", PATHS, async (c) => await tus.handle(c.req.raw, null));
  describeUploadRoutes(uploadRoutes);
  return uploadRoutes;
}

const tusHeaders = {
  "Tus-Resumable": z.literal("1.0.0").openapi({ description: "Required on every request" }),
};
const uploadId = z.object({
  id: z.string().uuid().openapi({ param: { name: "id", in: "path" } }),
});
const uploadProblems = {
  401: problems[401],
  404: { ...problems[404], description: "No such upload, or it is someone else's" },
  410: { ...problems[404], description: "The upload expired" },
};

/** The OpenAPI description of the tus routes (their validation is the protocol's). */
function describeUploadRoutes(uploadRoutes: OpenAPIHono<AppEnv>): void {
  uploadRoutes.openAPIRegistry.registerPath({
    method: "post",
    path: "/uploads",
    tags,
    summary: "Create a resumable upload (tus creation, creation-with-upload)",
    description: "Checked before any byte is read: `Upload-Length` (required, at most " +
      "MAX_UPLOAD_BYTES: 413), `Upload-Metadata` `message_id` (base64 of a message the caller " +
      "sent in a conversation they are in: 404/409) and `filename`, and the caller's number of " +
      "unfinished uploads (MAX_UNFINISHED_UPLOADS: 429). Answers 201 with `Location` and " +
      "`Upload-Expires`.",
    security: bearer,
    request: {
      headers: z.object({
        ...tusHeaders,
        "Upload-Length": z.string().openapi({ description: "Total size in bytes" }),
        "Upload-Metadata": z.string().openapi({
          description: "tus metadata: `message_id <base64>,filename <base64>`",
        }),
      }),
    },
    responses: {
      201: {
        description: "Created; when the body carried every byte, the Attachment JSON",
        content: { "application/json": { schema: AttachmentSchema } },
      },
      ...problems,
      409: {
        ...problems[400],
        description:
          "The message was sent by someone else, or has MAX_ATTACHMENTS_PER_MESSAGE videos",
      },
      413: { ...problems[400], description: "Upload-Length is over the limit" },
      429: { ...problems[400], description: "Too many unfinished uploads (Retry-After)" },
      507: { ...problems[400], description: "Less than MIN_FREE_BYTES free (Retry-After)" },
    },
  });

  uploadRoutes.openAPIRegistry.registerPath({
    method: "head",
    path: "/uploads/{id}",
    tags,
    summary: "The upload's offset (tus): where to resume",
    security: bearer,
    request: { params: uploadId, headers: z.object(tusHeaders) },
    responses: {
      200: { description: "`Upload-Offset`, `Upload-Length`, `Upload-Expires`" },
      ...uploadProblems,
    },
  });

  uploadRoutes.openAPIRegistry.registerPath({
    method: "patch",
    path: "/uploads/{id}",
    tags,
    summary: "Send bytes from `Upload-Offset` (tus)",
    description: "Body `application/offset+octet-stream`. The request that completes the upload " +
      "runs the same checks and processing as a multipart upload and answers 200 with the " +
      "Attachment JSON, or the same problem (415, 422…) with the upload removed.",
    security: bearer,
    request: {
      params: uploadId,
      headers: z.object({
        ...tusHeaders,
        "Upload-Offset": z.string().openapi({ description: "The offset HEAD returned" }),
      }),
      body: {
        content: {
          "application/offset+octet-stream": { schema: z.string().openapi({ format: "binary" }) },
        },
      },
    },
    responses: {
      200: json(AttachmentSchema, "The last bytes: the attachment, status `processing`"),
      204: { description: "Bytes stored; `Upload-Offset` is the new offset" },
      409: { ...problems[400], description: "Upload-Offset does not match the server's" },
      ...uploadProblems,
      413: { ...problems[400], description: "More bytes than Upload-Length" },
      408: {
        ...problems[400],
        description: "The body sent nothing for UPLOAD_IDLE_TIMEOUT_MS; what arrived is kept " +
          "(HEAD and resume)",
      },
      415: { ...problems[400], description: "The completed file is not an accepted container" },
      422: { ...problems[400], description: "The completed file is not a readable video" },
      507: {
        ...problems[400],
        description: "Less than MIN_FREE_BYTES free (nothing written, resume later), or the " +
          "disk filled up during the PATCH (the upload is removed); Retry-After",
      },
    },
  });

  uploadRoutes.openAPIRegistry.registerPath({
    method: "delete",
    path: "/uploads/{id}",
    tags,
    summary: "Abandon an upload (tus termination)",
    security: bearer,
    request: { params: uploadId, headers: z.object(tusHeaders) },
    responses: { 204: { description: "Removed" }, ...uploadProblems },
  });

  uploadRoutes.openAPIRegistry.registerPath({
    method: "options",
    path: "/uploads",
    tags,
    summary: "tus capabilities: Tus-Version, Tus-Max-Size, Tus-Extension",
    responses: { 204: { description: "The capabilities, in headers" } },
  });
}
