/** The longest file name kept, in characters. */
export const MAX_FILE_NAME_LENGTH = 255;

/**
 * Makes a client-supplied file name safe to store and show: the last path
 * segment only, no control characters, trimmed, bounded. It is a label and
 * never part of a storage path.
 *
 * @example
 * ```ts
 * sanitizeFileName("../../etc/passwd\r\n.mp4"); // "passwd.mp4"
 * ```
 */
export function sanitizeFileName(raw: string, fallback = "video"): string {
  const lastSegment = raw.split(/[\\/]/).pop() ?? "";
  // deno-lint-ignore no-control-regex
  const cleaned = lastSegment.normalize("NFC").replace(/[\u0000-\u001f\u007f-\u009f]/g, "")
    .replace(/[\u202a-\u202e\u2066-\u2069]/g, "")
    .trim()
    .replace(/^\.+/, "");
  const chars = Array.from(cleaned);
  if (chars.length === 0) return fallback;
  if (chars.length <= MAX_FILE_NAME_LENGTH) return cleaned;
  const dot = cleaned.lastIndexOf(".");
  const extension = dot > 0 && cleaned.length - dot <= 10 ? cleaned.slice(dot) : "";
  return chars.slice(0, MAX_FILE_NAME_LENGTH - extension.length).join("") + extension;
}
