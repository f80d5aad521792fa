/**
 * The one rule for characters that free text (conversation titles, message
 * bodies, file names) may not carry, because they change how the text
 * around them is shown or stored rather than being shown themselves:
 *
 * - Unicode `Cc`, the controls: NUL (a stored message came back from the
 *   database cut at it), BEL, ESC (terminal escape sequences), DEL, C1;
 * - `Cf`, format characters: the bidirectional overrides, embeddings,
 *   isolates and marks (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
 *   U+061C) that make `gpj.exe` read as `exe.jpg`, the zero-width space and
 *   the byte order mark (U+200B, U+FEFF) that make two different strings look
 *   the same, the soft hyphen, and the rest;
 * - `Zl` and `Zp`, the line and paragraph separators U+2028 and U+2029;
 * - lone surrogates, which cannot be stored as UTF-8 and would come back as
 *   U+FFFD.
 *
 * Allowed on purpose, because real text needs them and they reorder nothing:
 * U+200C (zero-width non-joiner: Persian, Indic scripts) and U+200D
 * (zero-width joiner: emoji sequences such as 👨‍👩‍👧, Indic conjuncts); tag
 * characters U+E0020–U+E007F only as an emoji flag sequence (U+1F3F4, tags,
 * cancel tag, as in 🏴󠁧󠁢󠁳󠁣󠁴󠁿), never on their own where they would be
 * invisible text; and, in multi-line text only, tab, line feed and CR LF (a
 * bare CR, which makes a terminal overwrite the line, is refused).
 */

/** Unsafe characters, or a whole emoji tag sequence (group 1), which is kept. */
const SINGLE_LINE =
  /(\u{1F3F4}[\u{E0020}-\u{E007E}]+\u{E007F})|(?![\u200C\u200D])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
const MULTILINE =
  /(\u{1F3F4}[\u{E0020}-\u{E007E}]+\u{E007F})|(?![\u200C\u200D\t\n]|\r\n)[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

/** Options for {@linkcode findUnsafeCharacter} and {@linkcode stripUnsafeCharacters}. */
export interface UnsafeTextOptions {
  /** Allow tab, line feed and CR LF (message bodies); default false (titles, names). */
  multiline?: boolean;
}

function pattern(options: UnsafeTextOptions): RegExp {
  return options.multiline ? MULTILINE : SINGLE_LINE;
}

/**
 * The first character of `text` that the rule above refuses, as `U+XXXX`, or
 * null when the text is clean.
 *
 * @example
 * ```ts
 * findUnsafeCharacter("evil\u202Egpj.exe"); // "U+202E"
 * findUnsafeCharacter("line one\nline two", { multiline: true }); // null
 * ```
 */
export function findUnsafeCharacter(
  text: string,
  options: UnsafeTextOptions = {},
): string | null {
  for (const match of text.matchAll(pattern(options))) {
    if (match[1] === undefined) {
      return `U+${match[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
    }
  }
  return null;
}

/**
 * `text` without the characters the rule above refuses, for labels that
 * should not make a request fail (file names, logged header values).
 *
 * @example
 * ```ts
 * stripUnsafeCharacters("clip\u200F\u200B.mp4"); // "clip.mp4"
 * ```
 */
export function stripUnsafeCharacters(text: string, options: UnsafeTextOptions = {}): string {
  return text.replace(pattern(options), (_match, flag: string | undefined) => flag ?? "");
}
