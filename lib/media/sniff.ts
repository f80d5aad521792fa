/** A container this service accepts, identified from the file's first bytes. */
export interface Container {
  /** Short name used in the API (`mp4`, `mov`, `webm`, `mkv`, `ogg`, `avi`). */
  name: "mp4" | "mov" | "webm" | "mkv" | "ogg" | "avi";
  /** The ffmpeg demuxer forced with `-f` (and the only one the allowlist lets through). */
  demuxer: "mov" | "matroska" | "ogg" | "avi";
  mimeType: string;
  extension: string;
}

/** Every demuxer ffmpeg/ffprobe may use: `-format_whitelist` is set to this list. */
export const DEMUXER_ALLOWLIST = ["mov", "matroska", "ogg", "avi"] as const;

/** How many leading bytes {@linkcode sniffContainer} needs. */
export const SNIFF_BYTES = 64;

const ascii = (bytes: Uint8Array, start: number, length: number): string =>
  String.fromCharCode(...bytes.subarray(start, start + length));

const QUICKTIME_ATOMS = new Set(["moov", "mdat", "wide", "free", "skip", "pnot"]);

/**
 * Identifies the container from magic bytes, whatever the file name or the
 * client's Content-Type claim. Returns null for anything not accepted.
 *
 * @example
 * ```ts
 * const head = new TextEncoder().encode("\x00\x00\x00\x18ftypmp42");
 * sniffContainer(head)?.name; // "mp4"
 * ```
 */
export function sniffContainer(head: Uint8Array): Container | null {
  if (head.length >= 12 && ascii(head, 4, 4) === "ftyp") {
    const brand = ascii(head, 8, 4);
    if (brand === "qt  ") {
      return { name: "mov", demuxer: "mov", mimeType: "video/quicktime", extension: "mov" };
    }
    // Still-image and audio-only ISO brands are not videos.
    if (/^(heic|heix|mif1|msf1|avif|M4A |M4B |M4P )$/.test(brand)) return null;
    return { name: "mp4", demuxer: "mov", mimeType: "video/mp4", extension: "mp4" };
  }
  if (head.length >= 8 && QUICKTIME_ATOMS.has(ascii(head, 4, 4))) {
    return { name: "mov", demuxer: "mov", mimeType: "video/quicktime", extension: "mov" };
  }
  if (
    head.length >= 4 && head[0] === 0x1a && head[1] === 0x45 && head[2] === 0xdf &&
    head[3] === 0xa3
  ) {
    const isWebm = ascii(head, 0, Math.min(head.length, SNIFF_BYTES)).includes("webm");
    return isWebm
      ? { name: "webm", demuxer: "matroska", mimeType: "video/webm", extension: "webm" }
      : { name: "mkv", demuxer: "matroska", mimeType: "video/x-matroska", extension: "mkv" };
  }
  if (head.length >= 4 && ascii(head, 0, 4) === "OggS") {
    return { name: "ogg", demuxer: "ogg", mimeType: "video/ogg", extension: "ogv" };
  }
  if (head.length >= 12 && ascii(head, 0, 4) === "RIFF" && ascii(head, 8, 4) === "AVI ") {
    return { name: "avi", demuxer: "avi", mimeType: "video/x-msvideo", extension: "avi" };
  }
  return null;
}

/** Reads the first bytes of a file for {@linkcode sniffContainer}. */
export async function readHead(path: string, length = SNIFF_BYTES): Promise<Uint8Array> {
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const n = await file.read(buffer.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return buffer.subarray(0, filled);
}

const DEMUXER_BY_NAME: Record<Container["name"], Container["demuxer"]> = {
  mp4: "mov",
  mov: "mov",
  webm: "matroska",
  mkv: "matroska",
  ogg: "ogg",
  avi: "avi",
};

/** The demuxer of a stored attachment's container name. */
export function demuxerFor(name: string): Container["demuxer"] {
  const demuxer = DEMUXER_BY_NAME[name as Container["name"]];
  if (!demuxer) throw new Error(`Unknown container "${name}"`);
  return demuxer;
}
