/**
 * Headers on every media response: the browser must not guess another type
 * (an uploaded file is never rendered as HTML), and anything that does render
 * is sandboxed with no origin and no referrer.
 */
export const MEDIA_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  "content-security-policy": "default-src 'none'; media-src 'self'; img-src 'self'; sandbox",
  "referrer-policy": "no-referrer",
};
