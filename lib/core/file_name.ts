import { stripUnsafeCharacters } from "./unsafe_text.ts";

/** The longest file name kept, in characters. */
export const MAX_FILE_NAME_LENGTH = 255;

/**
 * Makes a client-supplied file name safe to store and show: the last path
 * segment only, without control, invisible or bidirectional-override
 * characters (see `lib/core/unsafe_text.ts`; they are removed, not refused, since
 * the name is only a label and the upload should not fail over it), trimmed,
 * bounded; `fallback` ("video") when nothing is left. It is never part of a
 * storage path.
 *
 * @example
 * ```ts
 * sanitizeFileName("../../etc/passwd\r\n.mp4"); // "passwd.mp4"
 * sanitizeFileName("clip\u202Egpj.exe"); // "clipgpj.exe"
 * ```
 */
export function sanitizeFileName(raw: string, options: { fallback?: string } = {}): string {
  const { fallback = "video" } = options;
  const lastSegment = raw.split(/[\\/]/).pop() ?? "";
  const cleaned = stripUnsafeCharacters(lastSegment.normalize("NFC")).trim().replace(/^\.+/, "");
  const chars = Array.from(cleaned);
  if (chars.length === 0) return fallback;
  if (chars.length <= MAX_FILE_NAME_LENGTH) return cleaned;
  const dot = cleaned.lastIndexOf(".");
  const extension = dot > 0 && cleaned.length - dot <= 10 ? cleaned.slice(dot) : "";
  // Cutting may split an emoji flag sequence, leaving tag characters on their own.
  return stripUnsafeCharacters(
    chars.slice(0, MAX_FILE_NAME_LENGTH - extension.length).join("") + extension,
  );
}
