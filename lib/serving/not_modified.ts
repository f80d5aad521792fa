import fresh from "fresh";

/**
 * Whether a GET or HEAD may be answered `304 Not Modified`: `If-None-Match`
 * against `etag` (weak comparison, `*` matches), or, without it,
 * `If-Modified-Since` against `lastModified`; never for a reload sent with
 * `Cache-Control: no-cache`. The one place these headers are read; the
 * comparison is the `fresh` package's (Express's).
 *
 * @example
 * ```ts
 * const request = new Request("http://x/", { headers: { "if-none-match": 'W/"a", "b"' } });
 * isNotModified(request.headers, '"b"'); // true
 * ```
 */
export function isNotModified(headers: Headers, etag: string, lastModified?: string): boolean {
  const noneMatch = headers.get("if-none-match");
  const modifiedSince = headers.get("if-modified-since");
  if (noneMatch === null && modifiedSince === null) return false;
  return fresh({
    "if-none-match": noneMatch ?? undefined,
    "if-modified-since": modifiedSince ?? undefined,
    "cache-control": headers.get("cache-control") ?? undefined,
  }, { etag, "last-modified": lastModified });
}
