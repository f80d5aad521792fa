/**
 * Issue 12, point 1: nothing served to anyone but the uploader says where, on
 * what or by whom a video was recorded. Each fixture plants one family of
 * tags with values of its own (QuickTime `mdta` keys, `udta` atoms, XMP,
 * Matroska tags, chapter titles, comments); every byte a receiver gets (the
 * download, the stream, the thumbnail, the storyboard sprite) is searched for
 * each value, and ffprobe must not show them. What playback needs stays: the
 * display matrix, the audio language, the colour tags, and every media packet
 * (ffmpeg's `framemd5`). The uploader alone gets the exact upload back
 * (`original_url`, `?original=1`), and `STRIP_METADATA=0` turns it all off.
 */
import assert from "node:assert/strict";
import { sha256Hex } from "../../lib/core/hash.ts";
import { ffmpeg, fixture, lavfi, X264 } from "../_fixtures.ts";
import {
  body,
  conversationWithMessage,
  createTestContext,
  localPath,
  type TestContext,
  uploadFile,
  waitForProcessed,
} from "../_helpers.ts";
import { concatBytes, isoBox } from "./_payloads.ts";
import { assertProblem } from "./_world.ts";

/** A value planted in a fixture, which no receiver may get back. */
interface Needle {
  /** What carries it, for the failure message. */
  family: string;
  /** The value as ffprobe shows it (and as the file stores it, unless `raw`). */
  value: string;
  /** The bytes the file stores when they are not the text (the `loci` box's fixed-point numbers). */
  raw?: Uint8Array;
  /** Whether ffprobe (`-export_xmp 1 -show_chapters`) shows the value in the fixture. */
  inProbe: boolean;
}

interface PrivacyFixture {
  name: string;
  path: string;
  needles: Needle[];
  /** What the app decides, so that the test knows which file `stream_url` serves. */
  playback: "original" | "remux" | "transcode";
  /** The audio stream's language, which stripping keeps (null: the container has none). */
  language: string | null;
  /** Display rotation (ffprobe's Display Matrix) the fixture carries. */
  rotation: number;
}

const SECONDS = 2;
/** The `uuid` box type of XMP in ISO BMFF: BE7ACFCB-97A9-42E8-9C71-999491E3AFAC. */
const XMP_UUID = Uint8Array.from(
  "be7acfcb97a942e89c71999491e3afac".match(/../g)!,
  (hex) => parseInt(hex, 16),
);

const enc = new TextEncoder();
const dec = new TextDecoder();

/** An XMP packet as cameras and editors write it, with `value` as its description. */
function xmpPacket(value: string): Uint8Array {
  return enc.encode(
    `<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>` +
      `<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF ` +
      `xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">` +
      `<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">` +
      `<dc:description><rdf:Alt><rdf:li xml:lang="x-default">${value}</rdf:li></rdf:Alt>` +
      `</dc:description></rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>`,
  );
}

/** The top-level (or a box's child) boxes between `start` and `end`: type, offset, size. */
function boxesIn(
  bytes: Uint8Array,
  start: number,
  end: number,
): { type: string; at: number; size: number }[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const found = [];
  for (let at = start; at + 8 <= end;) {
    let size = view.getUint32(at);
    const type = dec.decode(bytes.subarray(at + 4, at + 8));
    if (size === 1) size = Number(view.getBigUint64(at + 8));
    if (size === 0) size = end - at;
    assert.ok(size >= 8 && at + size <= end, `a sane ${type} box`);
    found.push({ type, at, size });
    at += size;
  }
  return found;
}

/**
 * Adds `child` at the end of `moov/udta` (making the `udta` if there is
 * none). `moov` must be the file's last box, so that no chunk offset moves.
 */
function insertIntoMoovUdta(file: Uint8Array, child: Uint8Array): Uint8Array {
  const top = boxesIn(file, 0, file.length);
  const moov = top.at(-1)!;
  assert.equal(moov.type, "moov", "moov is the last box (no faststart)");
  const udta = boxesIn(file, moov.at + 8, moov.at + moov.size).find((b) => b.type === "udta");
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (!udta) {
    view.setUint32(moov.at, moov.size + child.length + 8);
    return concatBytes(file, isoBox("udta", child));
  }
  assert.equal(udta.at + udta.size, moov.at + moov.size, "udta ends moov");
  view.setUint32(moov.at, moov.size + child.length);
  view.setUint32(udta.at, udta.size + child.length);
  return concatBytes(file, child);
}

/**
 * Turns the QuickTime chapter text track, and the `tref` boxes that point at
 * it, into `free` boxes: what is left are the Nero `chpl` chapters (the text
 * samples stay in `mdat`, unreferenced).
 */
function hideChapterTrack(file: Uint8Array): Uint8Array {
  const out = file.slice();
  const moov = boxesIn(out, 0, out.length).find((b) => b.type === "moov")!;
  const hide = (at: number) => out.set(enc.encode("free"), at + 4);
  for (const trak of boxesIn(out, moov.at + 8, moov.at + moov.size)) {
    if (trak.type !== "trak") continue;
    const children = boxesIn(out, trak.at + 8, trak.at + trak.size);
    const mdia = children.find((b) => b.type === "mdia")!;
    const hdlr = boxesIn(out, mdia.at + 8, mdia.at + mdia.size).find((b) => b.type === "hdlr")!;
    if (dec.decode(out.subarray(hdlr.at + 16, hdlr.at + 20)) === "text") hide(trak.at);
    for (const child of children) if (child.type === "tref") hide(child.at);
  }
  return out;
}

/** The `loci` box's longitude and latitude, 16.16 fixed point, as ffmpeg's muxer writes them. */
function lociBytes(latitude: number, longitude: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setInt32(0, Math.trunc(longitude * 65536));
  view.setInt32(4, Math.trunc(latitude * 65536));
  return out;
}

function utf16(value: string, littleEndian: boolean): Uint8Array {
  const out = new Uint8Array(value.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < value.length; i++) view.setUint16(i * 2, value.charCodeAt(i), littleEndian);
  return out;
}

/** The byte strings a needle may be stored as: UTF-8 (= Latin-1 for ASCII), UTF-16 LE and BE. */
function forms(needle: Needle): Uint8Array[] {
  if (needle.raw) return [needle.raw];
  return [enc.encode(needle.value), utf16(needle.value, true), utf16(needle.value, false)];
}

function indexOfBytes(hay: Uint8Array, needle: Uint8Array): number {
  const first = needle[0]!;
  for (let at = hay.indexOf(first); at !== -1; at = hay.indexOf(first, at + 1)) {
    if (at + needle.length > hay.length) return -1;
    let i = 1;
    while (i < needle.length && hay[at + i] === needle[i]) i++;
    if (i === needle.length) return at;
  }
  return -1;
}

/** The needles found in `bytes`, as `family "value"`. */
function leaksIn(bytes: Uint8Array, needles: Needle[]): string[] {
  return needles
    .filter((n) => forms(n).some((form) => indexOfBytes(bytes, form) !== -1))
    .map((n) => `${n.family} "${n.value}"`);
}

const CHAPTERS_MP4 = `;FFMETADATA1
title=Mp4 Title Secret
comment=Mp4 Comment Secret
[CHAPTER]
TIMEBASE=1/1000
START=0
END=1000
title=Chapter Secret Title One
[CHAPTER]
TIMEBASE=1/1000
START=1000
END=2000
title=Chapter Secret Title Two
`;

const CHAPTERS_MKV = `;FFMETADATA1
[CHAPTER]
TIMEBASE=1/1000
START=0
END=1000
title=Mkv Chapter Secret One
[CHAPTER]
TIMEBASE=1/1000
START=1000
END=2000
title=Mkv Chapter Secret Two
`;

/**
 * Makes the fixtures in `dir`: one H.264/AAC encode (BT.709-tagged), then
 * each family by stream copy, so that every fixture holds the same packets.
 */
async function buildFixtures(dir: string): Promise<PrivacyFixtures> {
  const base = `${dir}/base.mkv`;
  await ffmpeg([
    ...lavfi(SECONDS, ["-c:a", "aac"], [
      ...X264,
      "-color_primaries",
      "bt709",
      "-color_trc",
      "bt709",
      "-colorspace",
      "bt709",
    ], "matroska"),
    "-y",
    base,
  ]);
  const copy = ["-i", base, "-map", "0", "-c", "copy", "-metadata:s:a:0", "language=fra"];

  // An iPhone's recording: QuickTime `mdta` keys, upright in the hand (a 90°
  // display matrix), and an XMP `uuid` box after `mdat`. moov first, H.264:
  // plays as the original.
  const mdta = `${dir}/mdta.mp4`;
  await ffmpeg([
    ...copy,
    "-metadata:s:v:0",
    "rotate=90",
    "-movflags",
    "+faststart+use_metadata_tags",
    "-metadata",
    "com.apple.quicktime.location.ISO6709=+48.8584+002.2945+035.000/",
    "-metadata",
    "com.apple.quicktime.make=AcmeMake Secret",
    "-metadata",
    "com.apple.quicktime.model=iPhone 15 Pro Max Secret",
    "-metadata",
    "com.apple.quicktime.software=SenderSoftware 17.1",
    "-metadata",
    "com.apple.quicktime.creationdate=2019-03-04T05:06:07+0100",
    "-f",
    "mp4",
    "-y",
    mdta,
  ]);
  await Deno.writeFile(
    mdta,
    concatBytes(
      await Deno.readFile(mdta),
      isoBox("uuid", concatBytes(XMP_UUID, xmpPacket("XMP Secret Uuid Value"))),
    ),
  );

  // What an iPhone records: HEVC in a MOV, `mdta` keys, held upright. The
  // download is stripped by stream copy; the stream is a transcode.
  const hevc = `${dir}/base_hevc.mkv`;
  await ffmpeg([
    "-f",
    "lavfi",
    "-i",
    `testsrc2=size=320x240:rate=25:duration=${SECONDS}`,
    "-i",
    base,
    "-map",
    "0:v",
    "-map",
    "1:a",
    "-c:v",
    "libx265",
    "-preset",
    "ultrafast",
    "-x265-params",
    "log-level=error",
    "-c:a",
    "copy",
    "-f",
    "matroska",
    "-y",
    hevc,
  ]);
  const iphone = `${dir}/iphone.mov`;
  await ffmpeg([
    "-i",
    hevc,
    "-map",
    "0",
    "-c",
    "copy",
    "-tag:v",
    "hvc1",
    "-metadata:s:a:0",
    "language=fra",
    "-metadata:s:v:0",
    "rotate=90",
    "-movflags",
    "use_metadata_tags",
    "-metadata",
    "com.apple.quicktime.location.ISO6709=+37.3349-122.0090+010.000/",
    "-metadata",
    "com.apple.quicktime.make=Apple Secret Maker",
    "-metadata",
    "com.apple.quicktime.model=iPhone 13 mini Secret",
    "-metadata",
    "com.apple.quicktime.software=iOS Secret 16.4",
    "-metadata",
    "com.apple.quicktime.creationdate=2021-08-09T10:11:12-0700",
    "-f",
    "mov",
    "-y",
    iphone,
  ]);

  // A QuickTime camera's `udta` atoms: ©xyz, ©cmt, ©nam, ©ART, ©mak, ©mod.
  const udta = `${dir}/udta.mov`;
  await ffmpeg([
    ...copy,
    "-metadata",
    "location=+40.6892-074.0445/",
    "-metadata",
    "comment=Comment Secret Text",
    "-metadata",
    "title=Title Secret Words",
    "-metadata",
    "artist=Artist Secret Name",
    "-metadata",
    "make=UdtaMake Secret",
    "-metadata",
    "model=UdtaModel Secret",
    "-f",
    "mov",
    "-y",
    udta,
  ]);

  // MP4 `udta`: iTunes `ilst` title and comment, a 3GPP `loci` location,
  // chapters, and an `XMP_` box; moov at the end. ffmpeg writes the chapters
  // twice, as a QuickTime text track and as Nero `chpl` (qt_chapters.mp4);
  // chapters.mp4 hides the text track, leaving `chpl` as many tools write it.
  const chaptersTxt = `${dir}/chapters_mp4.txt`;
  await Deno.writeTextFile(chaptersTxt, CHAPTERS_MP4);
  const qtChapters = `${dir}/qt_chapters.mp4`;
  await ffmpeg([
    ...copy.slice(0, 2),
    "-i",
    chaptersTxt,
    ...copy.slice(2),
    "-map_metadata",
    "1",
    "-map_chapters",
    "1",
    "-metadata",
    "location=+35.6586+139.7454/",
    "-f",
    "mp4",
    "-y",
    qtChapters,
  ]);
  const chapters = `${dir}/chapters.mp4`;
  await Deno.writeFile(
    chapters,
    insertIntoMoovUdta(
      hideChapterTrack(await Deno.readFile(qtChapters)),
      isoBox("XMP_", xmpPacket("XMP Secret Udta Value")),
    ),
  );

  // Matroska: global and stream tags, chapters.
  const chaptersMkvTxt = `${dir}/chapters_mkv.txt`;
  await Deno.writeTextFile(chaptersMkvTxt, CHAPTERS_MKV);
  const mkv = `${dir}/tags.mkv`;
  await ffmpeg([
    ...copy.slice(0, 2),
    "-i",
    chaptersMkvTxt,
    ...copy.slice(2),
    "-map_chapters",
    "1",
    "-metadata",
    "title=Mkv Title Secret",
    "-metadata",
    "comment=Mkv Comment Secret",
    "-metadata",
    "LOCATION=+51.5007-000.1246/",
    "-metadata",
    "MAKE=MkvMake Secret",
    "-metadata:s:v:0",
    "title=Mkv Stream Title Secret",
    "-metadata:s:v:0",
    "comment=Mkv Stream Comment Secret",
    "-f",
    "matroska",
    "-y",
    mkv,
  ]);

  // AVI `INFO` chunks (title, comment, artist); every AVI is transcoded.
  const avi = `${dir}/info.avi`;
  await ffmpeg([
    ...lavfi(SECONDS, ["-c:a", "libmp3lame"], ["-c:v", "mpeg4", "-q:v", "5"], "avi"),
    "-metadata",
    "title=Avi Title Secret",
    "-metadata",
    "comment=Avi Comment Secret",
    "-metadata",
    "artist=Avi Artist Secret",
    "-y",
    avi,
  ]);

  const n = (family: string, value: string, inProbe = true): Needle => ({
    family,
    value,
    inProbe,
  });
  const mp4Chapters = [
    n("ilst ©nam", "Mp4 Title Secret"),
    n("ilst ©cmt comment", "Mp4 Comment Secret"),
    { ...n("udta loci", "+35.6586+139.7454"), raw: lociBytes(35.6586, 139.7454) },
    n("MP4 chapter title", "Chapter Secret Title One"),
    n("MP4 chapter title", "Chapter Secret Title Two"),
  ];
  const qtChaptersFixture: PrivacyFixture = {
    name: "qt_chapters.mp4",
    path: qtChapters,
    playback: "remux",
    language: "fra",
    rotation: 0,
    needles: mp4Chapters,
  };
  const main: PrivacyFixture[] = [
    {
      name: "mdta.mp4",
      path: mdta,
      playback: "original",
      language: "fra",
      rotation: 90,
      needles: [
        n("mdta location", "+48.8584+002.2945"),
        n("mdta make", "AcmeMake Secret"),
        n("mdta model", "iPhone 15 Pro Max Secret"),
        n("mdta software", "SenderSoftware 17.1"),
        n("mdta creationdate", "2019-03-04T05:06:07"),
        n("XMP uuid box", "XMP Secret Uuid Value"),
      ],
    },
    {
      name: "iphone.mov",
      path: iphone,
      playback: "transcode",
      language: "fra",
      rotation: 90,
      needles: [
        n("mdta location (MOV)", "+37.3349-122.0090"),
        n("mdta make (MOV)", "Apple Secret Maker"),
        n("mdta model (MOV)", "iPhone 13 mini Secret"),
        n("mdta software (MOV)", "iOS Secret 16.4"),
        n("mdta creationdate (MOV)", "2021-08-09T10:11:12"),
      ],
    },
    {
      name: "udta.mov",
      path: udta,
      playback: "remux",
      language: "fra",
      rotation: 0,
      needles: [
        n("udta ©xyz", "+40.6892-074.0445"),
        n("udta ©cmt comment", "Comment Secret Text"),
        n("udta ©nam", "Title Secret Words"),
        n("udta ©ART", "Artist Secret Name"),
        n("udta ©mak", "UdtaMake Secret"),
        n("udta ©mod", "UdtaModel Secret"),
      ],
    },
    {
      name: "chapters.mp4",
      path: chapters,
      playback: "remux",
      language: "fra",
      rotation: 0,
      needles: [...mp4Chapters, n("XMP udta/XMP_ box", "XMP Secret Udta Value")],
    },
    {
      name: "tags.mkv",
      path: mkv,
      playback: "remux",
      language: "fra",
      rotation: 0,
      needles: [
        n("Matroska tag TITLE", "Mkv Title Secret"),
        n("Matroska tag COMMENT", "Mkv Comment Secret"),
        n("Matroska tag LOCATION", "+51.5007-000.1246"),
        n("Matroska tag MAKE", "MkvMake Secret"),
        n("Matroska stream tag TITLE", "Mkv Stream Title Secret"),
        n("Matroska stream tag COMMENT", "Mkv Stream Comment Secret"),
        n("Matroska chapter title", "Mkv Chapter Secret One"),
        n("Matroska chapter title", "Mkv Chapter Secret Two"),
      ],
    },
    {
      name: "info.avi",
      path: avi,
      playback: "transcode",
      language: null,
      rotation: 0,
      needles: [
        n("AVI INFO INAM", "Avi Title Secret"),
        n("AVI INFO ICMT comment", "Avi Comment Secret"),
        n("AVI INFO IART", "Avi Artist Secret"),
      ],
    },
  ];
  return { main, qtChapters: qtChaptersFixture };
}

interface PrivacyFixtures {
  /** One per family, uploaded together. */
  main: PrivacyFixture[];
  /** An MP4 with ffmpeg's QuickTime chapter text track (besides `chpl`). */
  qtChapters: PrivacyFixture;
}

let fixturesPromise: Promise<PrivacyFixtures> | null = null;

/** The fixtures, made once per test process in a temp dir removed when it ends. */
function privacyFixtures(): Promise<PrivacyFixtures> {
  if (!fixturesPromise) {
    fixturesPromise = Deno.makeTempDir({ prefix: "offchat-privacy-" }).then((dir) => {
      globalThis.addEventListener("unload", () => {
        try {
          Deno.removeSync(dir, { recursive: true });
        } catch {
          // already gone
        }
      });
      return buildFixtures(dir);
    });
  }
  return fixturesPromise;
}

interface ProbeStream {
  index: number;
  codec_type: string;
  codec_name?: string;
  width?: number;
  height?: number;
  color_primaries?: string;
  color_transfer?: string;
  color_space?: string;
  tags?: Record<string, string>;
  side_data_list?: { side_data_type?: string; rotation?: number }[];
}

interface Probe {
  streams: ProbeStream[];
  chapters: { tags?: Record<string, string> }[];
  format: { format_name: string; duration?: string; tags?: Record<string, string> };
}

/** ffprobe's JSON of a file: format, streams, chapters, XMP exported into the tags. */
async function probe(path: string): Promise<Probe> {
  const out = await new Deno.Command("ffprobe", {
    args: [
      "-v",
      "error",
      "-export_xmp",
      "1",
      "-show_format",
      "-show_streams",
      "-show_chapters",
      "-of",
      "json",
      path,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, `ffprobe ${path}: ${dec.decode(out.stderr)}`);
  return JSON.parse(dec.decode(out.stdout));
}

/** Every tag value ffprobe shows, as `where: key=value` lines. */
function probeTags(probed: Probe): string[] {
  const lines: string[] = [];
  const add = (where: string, tags: Record<string, string> | undefined) => {
    for (const [key, value] of Object.entries(tags ?? {})) lines.push(`${where}: ${key}=${value}`);
  };
  add("format", probed.format.tags);
  for (const stream of probed.streams) add(`stream ${stream.index}`, stream.tags);
  probed.chapters.forEach((chapter, i) => add(`chapter ${i}`, chapter.tags));
  return lines;
}

function rotationOf(stream: ProbeStream | undefined): number {
  return stream?.side_data_list?.find((d) => d.rotation !== undefined)?.rotation ?? 0;
}

/**
 * ffmpeg's `framemd5` of the audio and real video packets, stream-copied:
 * the extradata lines and, per packet, its stream, size and MD5 (timestamps
 * left out, their notation differs between containers). Other streams are
 * left out on purpose: an MP4's chapter titles are a text track's packets.
 */
async function framemd5(path: string): Promise<string[]> {
  const out = await new Deno.Command("ffmpeg", {
    args: [
      "-nostdin",
      "-v",
      "error",
      "-i",
      path,
      "-map",
      "0:V",
      "-map",
      "0:a?",
      "-c",
      "copy",
      "-f",
      "framemd5",
      "-",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, `framemd5 ${path}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout).split("\n").flatMap((line) => {
    if (line.startsWith("#extradata")) return [line.replace(/\s+/g, " ")];
    if (line.startsWith("#") || !line.trim()) return [];
    const cols = line.split(",").map((c) => c.trim());
    return [`stream ${cols[0]} size ${cols[4]} md5 ${cols[5]}`];
  });
}

async function getJson(
  ctx: TestContext,
  bearer: string,
  id: string,
): Promise<Record<string, unknown>> {
  const response = await ctx.app.request(`/api/chat/attachments/${id}`, {
    headers: { authorization: `Bearer ${bearer}` },
  });
  assert.equal(response.status, 200, `attachment JSON of ${id}`);
  return await body(response);
}

/** The bytes a (signed) URL serves, asserting a 200. */
async function fetchBytes(ctx: TestContext, url: unknown, label: string): Promise<Uint8Array> {
  assert.equal(typeof url, "string", `${label}: a URL`);
  const response = await ctx.app.request(localPath(url as string));
  assert.equal(response.status, 200, `${label}: ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** The sprite URLs a storyboard track's cues point at (`…#xywh=` removed), each once. */
async function spriteUrls(ctx: TestContext, vttUrl: unknown): Promise<string[]> {
  const vtt = dec.decode(await fetchBytes(ctx, vttUrl, "storyboard.vtt"));
  const urls = new Set<string>();
  for (const line of vtt.split("\n")) {
    const match = /^(\S+)#xywh=\d+,\d+,\d+,\d+$/.exec(line.trim());
    if (match) urls.add(match[1]!);
  }
  assert.ok(urls.size > 0, `the track points at a sprite:\n${vtt}`);
  return [...urls];
}

/** What one upload gave each party, fetched once for all the steps. */
interface Served {
  fixture: PrivacyFixture;
  upload: Uint8Array;
  id: string;
  alice: Record<string, unknown>;
  bob: Record<string, unknown>;
  admin: Record<string, unknown>;
  /** Bob's `url`, written to a temp file for ffprobe and ffmpeg. */
  download: Uint8Array;
  downloadPath: string;
  stream: Uint8Array;
}

/** Uploads every fixture as alice to a conversation with bob, waits for all, fetches. */
async function uploadAll(
  ctx: TestContext,
  fixtures: PrivacyFixture[],
  scratch: string,
): Promise<Served[]> {
  const { messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
  const ids: string[] = [];
  for (const f of fixtures) {
    const response = await uploadFile(ctx, "alice", messageId, f.path);
    assert.equal(response.status, 201, `upload ${f.name}: ${await response.clone().text()}`);
    ids.push(String((await body(response)).id));
  }
  const aliceToken = await ctx.token("alice");
  const bobToken = await ctx.token("bob");
  const adminToken = await ctx.token("root", { admin: true });
  const served: Served[] = [];
  for (const [i, f] of fixtures.entries()) {
    const id = ids[i]!;
    const done = await waitForProcessed(ctx, "alice", id, 120_000);
    assert.equal(done.status, "ready", `${f.name}: ${done.status} ${done.error}`);
    const bob = await getJson(ctx, bobToken, id);
    const download = await fetchBytes(ctx, bob.url, `${f.name}: bob's url`);
    const downloadPath = `${scratch}/${id}-download`;
    await Deno.writeFile(downloadPath, download);
    served.push({
      fixture: f,
      upload: await Deno.readFile(f.path),
      id,
      alice: await getJson(ctx, aliceToken, id),
      bob,
      admin: await getJson(ctx, adminToken, id),
      download,
      downloadPath,
      stream: await fetchBytes(ctx, bob.stream_url, `${f.name}: bob's stream_url`),
    });
  }
  return served;
}

/** The values bob's download and stream give away, as `fixture route: family "value"`. */
function receiverLeaks(s: Served): string[] {
  const { name, needles } = s.fixture;
  return [
    ...leaksIn(s.download, needles).map((leak) => `${name} bob's url: ${leak}`),
    ...leaksIn(s.stream, needles).map((leak) => `${name} bob's stream_url: ${leak}`),
  ];
}

/** The values ffprobe shows in a stripped download's tags, and any chapter it has. */
function probeLeaks(s: Served, probed: Probe): string[] {
  const { name, needles } = s.fixture;
  const leaks = probeTags(probed).flatMap((line) =>
    needles.filter((n) => line.includes(n.value)).map((n) => `${name} ${line} (${n.family})`)
  );
  if (probed.chapters.length > 0) leaks.push(`${name}: ${probed.chapters.length} chapters`);
  return leaks;
}

Deno.test("metadata privacy: receivers get none of the recording's tags; playback and media bytes intact", async (t) => {
  const fixtures = (await privacyFixtures()).main;
  // The "nothing else breaks" step also runs on an untagged upload.
  const plain: PrivacyFixture = {
    name: "h264.mp4 (untagged)",
    path: await fixture("h264.mp4"),
    playback: "original",
    language: null,
    rotation: 0,
    needles: [],
  };
  const scratch = await Deno.makeTempDir({ prefix: "offchat-privacy-served-" });
  // Every video gets an adaptive ladder here, however short, so that its files are checked too.
  await using ctx = await createTestContext({ env: { HLS_MIN_DURATION: "0" } });
  try {
    await t.step("every fixture carries its values (bytes and ffprobe)", async () => {
      for (const f of fixtures) {
        const bytes = await Deno.readFile(f.path);
        const shown = probeTags(await probe(f.path)).join("\n");
        for (const needle of f.needles) {
          assert.ok(
            forms(needle).some((form) => indexOfBytes(bytes, form) !== -1),
            `${f.name} holds ${needle.family} "${needle.value}"`,
          );
          if (needle.inProbe) {
            assert.ok(shown.includes(needle.value), `ffprobe shows ${needle.value} in ${f.name}`);
          }
        }
      }
    });

    const served = await uploadAll(ctx, [...fixtures, plain], scratch);
    const tagged = served.filter((s) => s.fixture.needles.length > 0);

    await t.step("the playback each fixture gets (which file stream_url serves)", () => {
      for (const s of served) assert.equal(s.bob.playback, s.fixture.playback, s.fixture.name);
    });

    await t.step("a receiver's url and stream_url carry none of the values", () => {
      assert.deepEqual(tagged.flatMap(receiverLeaks), []);
    });

    await t.step("an original playback streams the stripped copy, not the upload", () => {
      for (const s of served.filter((s) => s.fixture.playback === "original")) {
        assert.equal(
          sha256Hex(s.stream),
          sha256Hex(s.download),
          `${s.fixture.name}: stream_url serves what url does`,
        );
      }
      for (const s of tagged.filter((s) => s.fixture.playback === "original")) {
        assert.notEqual(
          sha256Hex(s.stream),
          s.bob.sha256,
          `${s.fixture.name}: stream_url is not the upload`,
        );
      }
    });

    await t.step(
      "the uploader's url is the stripped copy; original_url the exact upload",
      async () => {
        const leaks: string[] = [];
        for (const s of served) {
          const { name, needles } = s.fixture;
          const aliceDownload = await fetchBytes(ctx, s.alice.url, `${name}: alice's url`);
          leaks.push(...leaksIn(aliceDownload, needles).map((l) => `${name} alice's url: ${l}`));
          assert.match(
            String(s.alice.original_url),
            new RegExp(
              `^http://offchat\\.test/api/chat/videos/${s.id}/download/\\?original=1&token=`,
            ),
            `${name}: alice's original_url`,
          );
          const original = await fetchBytes(ctx, s.alice.original_url, `${name}: original_url`);
          assert.equal(sha256Hex(original), s.alice.sha256, `${name}: original_url's hash`);
          assert.equal(s.alice.sha256, sha256Hex(s.upload), `${name}: sha256 is the upload's`);
          assert.deepEqual(original, s.upload, `${name}: original_url is byte for byte the upload`);
          // The uploader's own Bearer token opens it too.
          const viaBearer = await ctx.request(
            "alice",
            `/api/chat/videos/${s.id}/download/?original=1`,
          );
          assert.equal(viaBearer.status, 200, `${name}: alice, Bearer, ?original=1`);
          assert.equal(
            sha256Hex(new Uint8Array(await viaBearer.arrayBuffer())),
            s.alice.sha256,
            `${name}: alice, Bearer, ?original=1 is the upload`,
          );
        }
        assert.deepEqual(leaks, []);
      },
    );

    await t.step("?original=1 is the uploader's only: bob and an admin get 403", async () => {
      const adminToken = await ctx.token("root", { admin: true });
      for (const s of served) {
        const { name } = s.fixture;
        assert.ok("original_url" in s.bob, `${name}: bob's JSON has original_url`);
        assert.equal(s.bob.original_url, null, `${name}: bob's original_url`);
        assert.ok("original_url" in s.admin, `${name}: the admin's JSON has original_url`);
        assert.equal(s.admin.original_url, null, `${name}: the admin's original_url`);
        const asking = (url: unknown) => localPath(String(url)).replace("?", "?original=1&");
        for (
          const [who, response] of [
            ["bob's url", await ctx.app.request(asking(s.bob.url))],
            ["the admin's url", await ctx.app.request(asking(s.admin.url))],
            [
              "bob, Bearer",
              await ctx.request("bob", `/api/chat/videos/${s.id}/download/?original=1`),
            ],
            [
              "the admin, Bearer",
              await ctx.app.request(`/api/chat/videos/${s.id}/download/?original=1`, {
                headers: { authorization: `Bearer ${adminToken}` },
              }),
            ],
          ] as const
        ) {
          const problem = await assertProblem(response, `${name}: ${who} + original=1`, [403]);
          assert.equal(problem.code, "forbidden", `${name}: ${who}`);
        }
      }
    });

    await t.step(
      "thumbnails, posters, candidates, frames and storyboard sprites carry none of the values, and no EXIF or XMP",
      async () => {
        const leaks: string[] = [];
        const imageMetadata = [
          { family: "EXIF (APP1)", value: "Exif\u0000\u0000", inProbe: false },
          { family: "XMP (APP1)", value: "http://ns.adobe.com/xap/1.0/", inProbe: false },
        ];
        for (const s of served) {
          const { name, needles } = s.fixture;
          const checks = [...needles, ...imageMetadata];
          const thumbnail = await fetchBytes(ctx, s.bob.thumbnail_url, `${name}: thumbnail`);
          leaks.push(...leaksIn(thumbnail, checks).map((l) => `${name} thumbnail: ${l}`));
          // The poster, its candidates and a frame at a time are frames of the same video.
          const frames = [
            ["poster", s.bob.poster_url],
            ["frame at 1 s", `${s.bob.thumbnail_url}&time=1`],
            ...(s.bob.poster_candidates as { url: string }[]).map((
              c,
              i,
            ) => [`candidate ${i}`, c.url]),
          ];
          for (const [what, url] of frames) {
            const bytes = await fetchBytes(ctx, url, `${name}: ${what}`);
            leaks.push(...leaksIn(bytes, checks).map((l) => `${name} ${what}: ${l}`));
          }
          for (const url of await spriteUrls(ctx, s.bob.storyboard_url)) {
            const sprite = await fetchBytes(ctx, url, `${name}: storyboard sprite`);
            leaks.push(...leaksIn(sprite, checks).map((l) => `${name} storyboard sprite: ${l}`));
          }
        }
        assert.deepEqual(leaks, []);
      },
    );

    await t.step(
      "every file of the HLS/DASH ladder carries none of the values; its rungs are upright",
      async () => {
        const leaks: string[] = [];
        for (const s of served) {
          const { name, needles } = s.fixture;
          const base = String(s.bob.hls_url).replace(/master\.m3u8$/, "");
          const files = new Set(["master.m3u8", "manifest.mpd"]);
          const master = dec.decode(await fetchBytes(ctx, s.bob.hls_url, `${name}: master`));
          for (const line of master.split("\n")) {
            const uri = /URI="([^"]+)"/.exec(line)?.[1] ??
              (/^media_\d+\.m3u8$/.test(line) ? line : null);
            if (uri) files.add(uri);
          }
          for (const playlist of [...files].filter((f) => f.startsWith("media_"))) {
            const text = dec.decode(await fetchBytes(ctx, base + playlist, `${name}: ${playlist}`));
            for (const line of text.split("\n")) {
              const uri = /^#EXT-X-MAP:URI="([^"]+)"/.exec(line)?.[1] ??
                (line && !line.startsWith("#") ? line : null);
              if (uri) files.add(uri);
            }
          }
          assert.ok(files.size > 5, `${name}: the ladder's files (${[...files]})`);
          for (const file of files) {
            const bytes = await fetchBytes(ctx, base + file, `${name}: ${file}`);
            leaks.push(...leaksIn(bytes, needles).map((l) => `${name} ladder ${file}: ${l}`));
          }
          if (s.fixture.rotation % 180 === 90) {
            const rungs = (s.bob.renditions as { kind: string; width: number; height: number }[])
              .filter((r) => r.kind === "hls");
            assert.ok(rungs.length > 0, `${name}: a ladder`);
            for (const r of rungs) {
              assert.ok(r.width < r.height, `${name}: rung ${r.width}x${r.height}`);
            }
          }
        }
        assert.deepEqual(leaks, []);
      },
    );

    await t.step(
      "ffprobe of the stripped download: no value in any tag, no chapters, language kept",
      async () => {
        const leaks: string[] = [];
        for (const s of tagged) {
          const probed = await probe(s.downloadPath);
          leaks.push(...probeLeaks(s, probed));
          if (s.fixture.language) {
            const audio = probed.streams.find((st) => st.codec_type === "audio");
            assert.equal(audio?.tags?.language, s.fixture.language, `${s.fixture.name}: language`);
          }
        }
        assert.deepEqual(leaks, []);
      },
    );

    await t.step(
      "rotation and colour tags are kept: a portrait video still displays upright",
      async () => {
        for (const s of served) {
          const { name } = s.fixture;
          const [before, after] = [await probe(s.fixture.path), await probe(s.downloadPath)];
          const video = (p: Probe) => p.streams.find((st) => st.codec_type === "video");
          assert.equal(Math.abs(rotationOf(video(before))), s.fixture.rotation, `${name}: fixture`);
          assert.equal(rotationOf(video(after)), rotationOf(video(before)), `${name}: rotation`);
          for (const key of ["color_primaries", "color_transfer", "color_space"] as const) {
            assert.equal(video(after)?.[key], video(before)?.[key], `${name}: ${key}`);
          }
          if (s.fixture.rotation % 180 === 90) {
            assert.ok(
              Number(s.bob.width) < Number(s.bob.height),
              `${name}: shown portrait, ${s.bob.width}x${s.bob.height}`,
            );
          }
        }
      },
    );

    await t.step(
      "framemd5: every audio and video packet is the upload's (stream copy)",
      async () => {
        for (const s of served) {
          const [before, after] = [await framemd5(s.fixture.path), await framemd5(s.downloadPath)];
          assert.ok(before.length > SECONDS * 25, `${s.fixture.name}: packets`);
          assert.deepEqual(after, before, `${s.fixture.name}: framemd5`);
        }
      },
    );

    await t.step(
      "nothing else breaks: the hash is the upload's; the download is a whole, seekable video of the same container and streams",
      async () => {
        for (const s of served) {
          const { name } = s.fixture;
          assert.equal(s.bob.sha256, sha256Hex(s.upload), `${name}: sha256`);
          const whole = await ctx.app.request(localPath(String(s.bob.url)));
          assert.equal(whole.headers.get("content-type"), s.bob.mime_type, `${name}: content-type`);
          assert.equal(
            Number(whole.headers.get("content-length")),
            s.download.length,
            `${name}: content-length`,
          );
          await whole.body?.cancel();
          const ranged = await ctx.app.request(localPath(String(s.bob.url)), {
            headers: { range: "bytes=0-9" },
          });
          assert.equal(ranged.status, 206, `${name}: a range`);
          assert.deepEqual(
            new Uint8Array(await ranged.arrayBuffer()),
            s.download.subarray(0, 10),
            `${name}: the range is of the same file`,
          );
          const [before, after] = [await probe(s.fixture.path), await probe(s.downloadPath)];
          const shape = (p: Probe) =>
            p.streams.filter((st) => st.codec_type === "video" || st.codec_type === "audio")
              .map((st) =>
                `${st.codec_type} ${st.codec_name} ${st.width ?? ""}x${st.height ?? ""}`
              );
          assert.deepEqual(shape(after), shape(before), `${name}: streams`);
          assert.equal(after.format.format_name, before.format.format_name, `${name}: container`);
          assert.ok(
            Math.abs(Number(after.format.duration) - Number(before.format.duration)) < 0.1,
            `${name}: duration ${after.format.duration} vs ${before.format.duration}`,
          );
        }
      },
    );
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
});

Deno.test("metadata privacy: STRIP_METADATA=0 serves every receiver the exact upload", async () => {
  const mdta = (await privacyFixtures()).main.find((f) => f.name === "mdta.mp4")!;
  await using ctx = await createTestContext({ env: { STRIP_METADATA: "0" } });
  const { messageId } = await conversationWithMessage(ctx, "alice", ["bob"]);
  const created = await uploadFile(ctx, "alice", messageId, mdta.path);
  assert.equal(created.status, 201);
  const id = String((await body(created)).id);
  assert.equal((await waitForProcessed(ctx, "alice", id, 120_000)).status, "ready");
  const bob = await getJson(ctx, await ctx.token("bob"), id);
  const upload = await Deno.readFile(mdta.path);
  const download = await fetchBytes(ctx, bob.url, "bob's url");
  assert.equal(sha256Hex(download), sha256Hex(upload), "the download is the upload");
  assert.equal(bob.sha256, sha256Hex(upload));
});

// ffmpeg (and HandBrake) write an MP4's chapters as a QuickTime text track
// too. The mov demuxer discards that track's packets, so ffprobe's
// -count_packets reports none for it: the upload checks must not take that
// for "a stream's data is not in this file" (422), or such a file never
// reaches the stripping.
Deno.test("metadata privacy: an MP4 with a QuickTime chapter track (as ffmpeg writes one) is accepted and stripped", async () => {
  const { qtChapters } = await privacyFixtures();
  const probed = await probe(qtChapters.path);
  assert.ok(probed.streams.some((st) => st.codec_type === "data"), "the chapter text track");
  assert.equal(probed.chapters.length, 2);
  const bytes = await Deno.readFile(qtChapters.path);
  assert.deepEqual(leaksIn(bytes, qtChapters.needles).length, qtChapters.needles.length);
  const scratch = await Deno.makeTempDir({ prefix: "offchat-privacy-served-" });
  try {
    await using ctx = await createTestContext();
    const [s] = await uploadAll(ctx, [qtChapters], scratch);
    assert.deepEqual(receiverLeaks(s!), []);
    assert.deepEqual(probeLeaks(s!, await probe(s!.downloadPath)), []);
    assert.deepEqual(await framemd5(s!.downloadPath), await framemd5(qtChapters.path));
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
});
