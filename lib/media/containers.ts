/** How many leading bytes {@linkcode sniffContainer} needs. */
export const SNIFF_BYTES = 64;

const ascii = (bytes: Uint8Array, start: number, length: number): string =>
  String.fromCharCode(...bytes.subarray(start, start + length));

/** The brand of an ISO base media file (`ftyp` box first), or null. */
function isoBrand(head: Uint8Array): string | null {
  return head.length >= 12 && ascii(head, 4, 4) === "ftyp" ? ascii(head, 8, 4) : null;
}

/** ISO brands of still images and audio-only files: not videos. */
const NOT_VIDEO_BRANDS = new Set(["heic", "heix", "mif1", "msf1", "avif", "M4A ", "M4B ", "M4P "]);

/** Top-level atoms a QuickTime file without `ftyp` may start with. */
const QUICKTIME_ATOMS = new Set(["moov", "mdat", "wide", "free", "skip", "pnot"]);

function isEbml(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x1a && head[1] === 0x45 && head[2] === 0xdf &&
    head[3] === 0xa3;
}

function saysWebm(head: Uint8Array): boolean {
  return ascii(head, 0, Math.min(head.length, SNIFF_BYTES)).includes("webm");
}

/** One row of {@linkcode CONTAINERS}. */
interface ContainerSpec {
  /** Short name used in the API (an Attachment's `container`). */
  name: string;
  /** What a client shows. */
  label: string;
  /** The ffmpeg demuxer forced with `-f`, and let through by `-format_whitelist`. */
  demuxer: "mov" | "matroska" | "ogg" | "avi";
  /** MIME types clients use for it; the first is the one stored and served. */
  mimeTypes: readonly [string, ...string[]];
  /** File name extensions; the first is the one a stored original gets. */
  extensions: readonly [string, ...string[]];
  /** The ffmpeg muxer that writes this container (for the receivers' stripped copy). */
  muxer: string;
  /** Whether a file's first bytes ({@linkcode SNIFF_BYTES} of them) are this container. */
  magic(head: Uint8Array): boolean;
}

/**
 * The containers this service accepts, in the order clients list them. The
 * one table behind sniffing ({@linkcode sniffContainer}), ffmpeg's demuxer
 * allowlist ({@linkcode DEMUXER_ALLOWLIST}), and what clients are told
 * before an upload (`GET /api/ui/config`). The `magic` tests exclude each
 * other, so at most one row matches a file.
 */
export const CONTAINERS = [
  {
    name: "mp4",
    label: "MP4",
    demuxer: "mov",
    muxer: "mp4",
    mimeTypes: ["video/mp4"],
    extensions: ["mp4", "m4v"],
    magic: (head: Uint8Array) => {
      const brand = isoBrand(head);
      return brand !== null && brand !== "qt  " && !NOT_VIDEO_BRANDS.has(brand);
    },
  },
  {
    name: "mov",
    label: "QuickTime MOV",
    demuxer: "mov",
    muxer: "mov",
    mimeTypes: ["video/quicktime"],
    extensions: ["mov", "qt"],
    magic: (head: Uint8Array) =>
      isoBrand(head) === "qt  " ||
      (head.length >= 8 && QUICKTIME_ATOMS.has(ascii(head, 4, 4))),
  },
  {
    name: "webm",
    label: "WebM",
    demuxer: "matroska",
    muxer: "webm",
    mimeTypes: ["video/webm"],
    extensions: ["webm"],
    magic: (head: Uint8Array) => isEbml(head) && saysWebm(head),
  },
  {
    name: "mkv",
    label: "Matroska MKV",
    demuxer: "matroska",
    muxer: "matroska",
    mimeTypes: ["video/x-matroska"],
    extensions: ["mkv"],
    magic: (head: Uint8Array) => isEbml(head) && !saysWebm(head),
  },
  {
    name: "ogg",
    label: "Ogg",
    demuxer: "ogg",
    muxer: "ogg",
    mimeTypes: ["video/ogg"],
    extensions: ["ogv", "ogg"],
    magic: (head: Uint8Array) => head.length >= 4 && ascii(head, 0, 4) === "OggS",
  },
  {
    name: "avi",
    label: "AVI",
    demuxer: "avi",
    muxer: "avi",
    mimeTypes: ["video/x-msvideo", "video/avi", "video/msvideo"],
    extensions: ["avi"],
    magic: (head: Uint8Array) =>
      head.length >= 12 && ascii(head, 0, 4) === "RIFF" && ascii(head, 8, 4) === "AVI ",
  },
] as const satisfies readonly ContainerSpec[];

/** A container this service accepts: one row of {@linkcode CONTAINERS}. */
export type Container = (typeof CONTAINERS)[number];

/** Every demuxer ffmpeg/ffprobe may use: `-format_whitelist` is set to this list. */
export const DEMUXER_ALLOWLIST: readonly Container["demuxer"][] = [
  ...new Set(CONTAINERS.map((c) => c.demuxer)),
];

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
  return CONTAINERS.find((container) => container.magic(head)) ?? null;
}

/** The container of a stored attachment's `container` name. */
export function containerNamed(name: string): Container {
  const container = CONTAINERS.find((c) => c.name === name);
  if (!container) throw new Error(`Unknown container "${name}"`);
  return container;
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
