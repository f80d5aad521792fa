import { ApiError } from "../core/errors.ts";
import { stripUnsafeCharacters } from "../core/unsafe_text.ts";

/**
 * SubRip and WebVTT read by our own code, for sidecar files an uploader sends
 * and for what ffmpeg extracts from an upload: the same parser normalises
 * both to WebVTT. Hand-written rather than handed to ffmpeg because the
 * input is hostile and tiny: a line-based reader with hard limits on bytes,
 * cues and cue length cannot be steered into another demuxer (an HLS
 * playlist named `.vtt` is just text without cues here), and the cue text
 * is rebuilt from an allowlist of WebVTT's own tags.
 */

/** One cue: times in milliseconds, text as sanitised WebVTT cue text. */
export interface Cue {
  start: number;
  end: number;
  text: string;
}

/** Limits of {@linkcode parseSubtitles}. */
export interface SubtitleLimits {
  /** Most cues a file may have. */
  maxCues: number;
  /** Longest cue text, in characters, after sanitising. */
  maxCueChars: number;
}

/**
 * A sidecar's limits: a feature film has 1,000 to 2,000 cues, so 5,000 is
 * room for any real file while bounding the work and the stored size.
 */
export const SIDECAR_LIMITS: SubtitleLimits = { maxCues: 5000, maxCueChars: 1000 };

/** Latest cue time accepted: 48 hours, past any video this service keeps. */
const MAX_TIME_MS = 48 * 3600 * 1000;

/** `[hh:]mm:ss[,.]mmm`, the hours optional (WebVTT) and the separator either (SRT or WebVTT). */
const TIME = /^(?:(\d{1,3}):)?(\d{2}):(\d{2})[,.](\d{3})$/;

/** The WebVTT tags a cue may keep (the `v` and `lang` ones with an annotation). */
const TAG = /^<(\/?)(c|i|b|u|ruby|rt|v|lang)((?:\.[A-Za-z0-9_-]+)*)(?:[ \t]([^<>&"']*))?>$/;
/** A WebVTT timestamp tag (karaoke). */
const TIMESTAMP_TAG = /^<(?:\d{2,3}:)?\d{2}:\d{2}\.\d{3}>$/;
/** The character references WebVTT defines that we keep as they are. */
const ENTITY = /^&(?:amp|lt|gt|lrm|rlm|nbsp|#\d{1,7}|#x[0-9a-fA-F]{1,6});/;

function invalid(detail: string): ApiError {
  return new ApiError("invalid_subtitles", detail);
}

function parseTime(text: string): number | null {
  const match = TIME.exec(text.trim());
  if (!match) return null;
  const [, h = "0", m, s, ms] = match;
  if (Number(m) > 59 || Number(s) > 59) return null;
  return ((Number(h) * 60 + Number(m)) * 60 + Number(s)) * 1000 + Number(ms);
}

/** `hh:mm:ss.mmm`, as WebVTT writes it. */
export function formatTime(ms: number): string {
  const pad = (n: number, width = 2) => n.toString().padStart(width, "0");
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor(ms / 60_000) % 60;
  const s = Math.floor(ms / 1000) % 60;
  return `${pad(h)}:${pad(m)}:${pad(s)}.${pad(ms % 1000, 3)}`;
}

/**
 * Cue text rebuilt from an allowlist: WebVTT's own tags (`c`, `i`, `b`, `u`,
 * `ruby`, `rt`, `v`, `lang`, timestamps) are kept, every other tag
 * (`<script>`, SubRip's `<font>`) and SSA override blocks (`{\an8}`) are
 * dropped with their text kept, a stray `&`, `<` or `>` is escaped, and
 * control and bidi-override characters are removed. Nothing in the result
 * can end the cue or be read as HTML by a player.
 */
export function sanitizeCueText(raw: string): string {
  const text = stripUnsafeCharacters(raw.replace(/\{\\[^}]*\}/g, ""), { multiline: true })
    .replace(/\t/g, " ");
  let out = "";
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === "<") {
      const close = text.indexOf(">", i);
      // Only `<` followed by a name, `/` or a digit starts a tag (as an HTML parser would read it).
      const tag = close === -1 || !/[A-Za-z0-9/]/.test(text[i + 1] ?? "")
        ? null
        : text.slice(i, close + 1);
      if (tag !== null && !tag.slice(1).includes("<")) {
        if (TAG.test(tag) || TIMESTAMP_TAG.test(tag)) out += tag;
        i = close + 1;
        continue;
      }
      out += "&lt;";
    } else if (ch === ">") out += "&gt;";
    else if (ch === "&") {
      const entity = ENTITY.exec(text.slice(i, i + 12));
      out += entity ? entity[0] : "&amp;";
      if (entity) i += entity[0].length - 1;
    } else out += ch;
    i++;
  }
  return out.split("\n").map((line) => line.trimEnd()).filter((line) => line !== "").join("\n");
}

/**
 * Reads a SubRip or WebVTT file (`bytes`, already bounded by the caller) into
 * sanitised cues. A WebVTT file starts with `WEBVTT`; anything else is read
 * as SubRip. Refuses with 422 `invalid_subtitles` what is not UTF-8 text
 * (a binary file), a block that is not a cue (a playlist, a script), a bad
 * timing, no cue at all, and more than `limits.maxCues` cues (counted as
 * they are read, so a huge file stops early).
 */
export function parseSubtitles(bytes: Uint8Array, limits: SubtitleLimits): Cue[] {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw invalid("The file is not UTF-8 text");
  }
  if (text.includes("\0")) throw invalid("The file is not text");
  text = text.replace(/^\uFEFF/, "").replace(/\r\n?/g, "\n");
  const blocks = text.split(/\n[ \t]*\n/).map((block) => block.replace(/^\n+|\n+$/g, ""))
    .filter((block) => block.trim() !== "");
  const webvtt = /^WEBVTT(?:[ \t][^\n]*)?(?:\n|$)/.test(text);
  if (webvtt) blocks.shift(); // the header block, with any of its metadata lines
  const cues: Cue[] = [];
  for (const block of blocks) {
    const lines = block.split("\n");
    if (webvtt && /^(?:NOTE|STYLE|REGION)(?:[ \t]|$)/.test(lines[0]!)) continue;
    // A cue is `[identifier]` then `start --> end [settings]` then its text.
    const timing = lines[0]!.includes("-->") ? 0 : lines[1]?.includes("-->") ? 1 : -1;
    if (timing === -1) throw invalid(`Block ${cues.length + 1} is not a cue`);
    const [from, rest = ""] = lines[timing]!.split("-->", 2);
    const start = parseTime(from!);
    const end = parseTime(rest.trim().split(/[ \t]/, 1)[0]!);
    if (start === null || end === null || end < start || end > MAX_TIME_MS) {
      throw invalid(`Cue ${cues.length + 1} has a bad timing line`);
    }
    const cueText = sanitizeCueText(lines.slice(timing + 1).join("\n"));
    if (cueText.length > limits.maxCueChars) {
      throw invalid(`Cue ${cues.length + 1} is longer than ${limits.maxCueChars} characters`);
    }
    if (cueText === "") continue;
    if (cues.length === limits.maxCues) {
      throw invalid(`The file has more than ${limits.maxCues} cues`);
    }
    cues.push({ start, end, text: cueText });
  }
  if (cues.length === 0) throw invalid("The file has no cues");
  return cues;
}

/** Cues as a WebVTT file: the header, then each cue's timing and text (no settings, no ids). */
export function toWebVtt(cues: readonly Cue[]): string {
  return "WEBVTT\n\n" +
    cues.map((cue) => `${formatTime(cue.start)} --> ${formatTime(cue.end)}\n${cue.text}\n`)
      .join("\n");
}
