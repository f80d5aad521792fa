/** The stable error codes of the HTTP contract. */
export type ErrorCode =
  | "invalid_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "gone"
  | "file_too_large"
  | "payload_too_large"
  | "unsupported_media_type"
  | "range_not_satisfiable"
  | "invalid_video"
  | "invalid_subtitles"
  | "request_timeout"
  | "too_many_requests"
  | "unavailable"
  | "insufficient_storage"
  | "internal_error";

/** The HTTP statuses the error codes map to (all of them carry a body). */
export type ErrorStatus =
  | 400
  | 401
  | 403
  | 404
  | 408
  | 409
  | 410
  | 413
  | 415
  | 416
  | 422
  | 429
  | 500
  | 503
  | 507;

const TITLES: Record<ErrorCode, [ErrorStatus, string]> = {
  invalid_request: [400, "Invalid request"],
  unauthorized: [401, "Unauthorized"],
  forbidden: [403, "Forbidden"],
  not_found: [404, "Not found"],
  conflict: [409, "Conflict"],
  gone: [410, "Gone"],
  file_too_large: [413, "File too large"],
  payload_too_large: [413, "Payload too large"],
  unsupported_media_type: [415, "Unsupported media type"],
  range_not_satisfiable: [416, "Range not satisfiable"],
  invalid_video: [422, "Invalid video"],
  invalid_subtitles: [422, "Invalid subtitles"],
  request_timeout: [408, "Request timeout"],
  too_many_requests: [429, "Too many requests"],
  unavailable: [503, "Service unavailable"],
  insufficient_storage: [507, "Insufficient storage"],
  internal_error: [500, "Internal server error"],
};

/** An error that becomes an `application/problem+json` response with a stable `code`. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: ErrorStatus;
  readonly headers: Record<string, string>;
  constructor(code: ErrorCode, detail: string, headers: Record<string, string> = {}) {
    super(detail);
    this.name = "ApiError";
    this.code = code;
    this.status = TITLES[code][0];
    this.headers = headers;
  }
}

/** The RFC 9457 body of a problem response. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
}

/** Builds the problem+json body for an error code. */
export function problemBody(code: ErrorCode, detail: string): Problem {
  const [status, title] = TITLES[code];
  return { type: `https://offchat.dev/problems/${code}`, title, status, detail, code };
}

/** Builds a complete problem+json `Response`. */
export function problemResponse(error: ApiError): Response {
  return new Response(JSON.stringify(problemBody(error.code, error.message)), {
    status: error.status,
    headers: { "content-type": "application/problem+json", ...error.headers },
  });
}

/** Shorthand for the 404 that hides whether a resource exists. */
export function notFound(what: string): ApiError {
  return new ApiError("not_found", `${what} not found`);
}
