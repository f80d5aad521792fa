const SAFE_ASCII = /^[\x20-\x7e]*$/;

function encodeRfc5987(value: string): string {
  return encodeURIComponent(value).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * Builds a `Content-Disposition` header (RFC 6266): a plain quoted `filename`
 * only for safe ASCII, otherwise an ASCII fallback plus `filename*=UTF-8''…`.
 *
 * @example
 * ```ts
 * contentDisposition("attachment", "vidéo.mp4");
 * // attachment; filename="vid_o.mp4"; filename*=UTF-8''vid%C3%A9o.mp4
 * ```
 */
export function contentDisposition(type: "attachment" | "inline", fileName: string): string {
  const plain = SAFE_ASCII.test(fileName) && !/["\\%]/.test(fileName);
  if (plain) return `${type}; filename="${fileName}"`;
  const fallback = Array.from(
    fileName,
    (ch) => /^[\x20-\x7e]$/.test(ch) && !/["\\%]/.test(ch) ? ch : "_",
  )
    .join("");
  return `${type}; filename="${fallback}"; filename*=UTF-8''${encodeRfc5987(fileName)}`;
}
