/**
 * Hostile inputs, generated at test time (nothing binary is committed): text
 * that ffmpeg would auto-detect as a playlist, a script, a subtitle or a
 * terminal "video", the same hidden behind an accepted container's magic
 * bytes, accepted containers that reference or carry other files, and
 * resource bombs made by patching the headers of small real videos.
 */
import { ffmpeg } from "../_fixtures.ts";

/** What a payload tries to reach. */
export interface Targets {
  /** Absolute path of another user's stored upload. */
  victim: string;
  /** The same file relative to the directory uploads are received in. */
  victimRelative: string;
  /** A named pipe that reports whether anything opened it (see `_world.ts`). */
  tripwire: string;
  /** A URL on the test's loopback listener. */
  url: string;
}

const enc = new TextEncoder();

/** Text payloads by name: each would open the targets if ffmpeg picked its demuxer. */
export function textPayloads(t: Targets): Record<string, string> {
  const port = new URL(t.url).port;
  // ffmpeg 5.1 refuses a whole playlist or script when one entry is unsafe by
  // its own rules (extension, absolute path), so each target gets its own.
  const reached: Record<string, string> = {
    "another user's upload": t.victim,
    "another user's upload, relative": t.victimRelative,
    "/etc/passwd": "/etc/passwd",
    "the tripwire": t.tripwire,
    "the loopback listener": t.url,
  };
  const payloads: Record<string, string> = {};
  for (const [what, uri] of Object.entries(reached)) {
    payloads[`HLS playlist reading ${what}`] = "#EXTM3U\n#EXT-X-VERSION:3\n" +
      `#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10,\n${uri}\n#EXT-X-ENDLIST\n`;
    payloads[`ffconcat script reading ${what}`] = `ffconcat version 1.0\nfile '${uri}'\n`;
  }
  return {
    ...payloads,
    "HLS playlist with an init map": "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:10\n" +
      `#EXT-X-MAP:URI="${t.victim}"\n#EXTINF:10,\n${t.url}/seg.m4s\n#EXT-X-ENDLIST\n`,
    "HLS master playlist": "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n" +
      `${t.url}/variant.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2000\n${t.tripwire}\n`,
    "ffconcat script with subfile":
      "ffconcat version 1.0\nfile 'subfile,,start,0,end,0,,:/etc/passwd'\n",
    "SDP session (RTP over loopback)": "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\n" +
      `c=IN IP4 127.0.0.1\nt=0 0\nm=video ${port} RTP/AVP 96\na=rtpmap:96 H264/90000\n`,
    "DASH manifest": '<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" ' +
      'type="static" mediaPresentationDuration="PT10S" minBufferTime="PT1S" ' +
      'profiles="urn:mpeg:dash:profile:isoff-on-demand:2011"><Period><AdaptationSet>' +
      `<Representation id="1" bandwidth="1000" mimeType="video/mp4"><BaseURL>${t.url}/v.mp4` +
      "</BaseURL><SegmentBase/></Representation></AdaptationSet></Period></MPD>\n",
    "SubRip subtitles":
      "1\n00:00:00,000 --> 00:00:05,000\n<font color=red>subtitles as video</font>\n\n",
    "WebVTT subtitles": "WEBVTT\n\n00:00.000 --> 00:05.000\n<script>alert(1)</script>\n\n",
    "ASS subtitles": "[Script Info]\nScriptType: v4.00+\nPlayResX: 640\n\n[Events]\n" +
      "Format: Layer, Start, End, Style, Text\nDialogue: 0,0:00:00.00,0:00:05.00,Default,hi\n",
    "ANSI art (tty demuxer)": "\x1b[2J\x1b[31m" + "#".repeat(2000) + "\x1b[0m\n" +
      "\x1aSAUCE00" + "title".padEnd(35) + "author".padEnd(20) + "group".padEnd(20) +
      "20260101" + "\0".repeat(4) + "\x01\x01" + "\0".repeat(26),
    "image2 pattern as text": "frame-%03d.png\n",
    "ffmetadata": ";FFMETADATA1\ntitle=<script>alert(1)</script>\n",
  };
}

/** The same scripts behind the magic bytes of each accepted container (polyglots). */
export function disguisedPayloads(t: Targets): Record<string, Uint8Array> {
  const hls = textPayloads(t)["HLS playlist reading another user's upload"]!;
  const concat = textPayloads(t)["ffconcat script reading another user's upload"]!;
  const u32 = (n: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n);
    return b;
  };
  return {
    "ftyp box, then an HLS playlist": concatBytes(
      u32(20),
      enc.encode("ftypisom\0\0\0\0isom"),
      enc.encode(`\n${hls}`),
    ),
    "moov atom, then an ffconcat script": concatBytes(
      u32(8),
      enc.encode("moov"),
      enc.encode(`\n${concat}`),
    ),
    "EBML header, then an HLS playlist": concatBytes(
      new Uint8Array([0x1a, 0x45, 0xdf, 0xa3, 0x84, 0x42, 0x82, 0x81, 0x00]),
      enc.encode(`\n${hls}`),
    ),
    "OggS page, then an HLS playlist": concatBytes(
      enc.encode("OggS\0\x02"),
      new Uint8Array(20),
      enc.encode(`\n${hls}`),
    ),
    "RIFF AVI, then an ffconcat script": concatBytes(
      enc.encode("RIFF\0\0\0\0AVI LIST"),
      enc.encode(`\n${concat}`),
    ),
  };
}

/** The bytes of `parts`, one after the other. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** An ISO BMFF box: 32-bit size, four-character type, payload. */
export function isoBox(type: string, body: Uint8Array): Uint8Array {
  const head = new Uint8Array(8);
  new DataView(head.buffer).setUint32(0, 8 + body.length);
  head.set(enc.encode(type), 4);
  return concatBytes(head, body);
}

/** Replaces the first box at `path` (plain container boxes) and resizes its ancestors. */
function replaceBox(bytes: Uint8Array, path: string[], replacement: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let offset = 0;
  let done = false;
  while (offset + 8 <= bytes.length) {
    const size = new DataView(bytes.buffer, bytes.byteOffset + offset).getUint32(0);
    const type = new TextDecoder().decode(bytes.subarray(offset + 4, offset + 8));
    const whole = bytes.subarray(offset, offset + size);
    if (!done && type === path[0]) {
      done = true;
      parts.push(
        path.length === 1
          ? replacement
          : isoBox(type, replaceBox(whole.subarray(8), path.slice(1), replacement)),
      );
    } else {
      parts.push(whole);
    }
    offset += size;
  }
  if (!done) throw new Error(`No box "${path.join("/")}"`);
  return concatBytes(...parts);
}

/**
 * A QuickTime `alis` data reference to `target`, not self-contained (flags 0):
 * the track's samples would be read from that file. With `levels` 0 it names
 * an absolute path (ffmpeg's `use_absolute_path`), otherwise a path relative
 * to the movie (`enable_drefs`).
 */
function aliasRecord(target: string, levels: number): Uint8Array {
  const fixed = new Uint8Array(150);
  const view = new DataView(fixed.buffer);
  const name = enc.encode(target.slice(target.lastIndexOf("/") + 1)).subarray(0, 63);
  fixed[50] = name.length;
  fixed.set(name, 51);
  view.setUint16(130, levels); // nlvl_from
  view.setUint16(132, levels); // nlvl_to
  const path = enc.encode(target);
  const record = new Uint8Array(4 + path.length + (path.length & 1));
  new DataView(record.buffer).setUint16(0, 2); // absolute path
  new DataView(record.buffer).setUint16(2, path.length);
  record.set(path, 4);
  return isoBox(
    "alis",
    concatBytes(new Uint8Array(4), fixed, record, new Uint8Array([0xff, 0xff, 0, 0])),
  );
}

/** An MP4 (moov at the end) whose video track's data reference points at `target`. */
export async function mp4WithDataReference(
  dir: string,
  target: string,
  levels = 0,
): Promise<Uint8Array> {
  const source = await small(dir, "mp4", "mp4");
  const dref = isoBox(
    "dref",
    concatBytes(new Uint8Array(4), new Uint8Array([0, 0, 0, 1]), aliasRecord(target, levels)),
  );
  return replaceBox(
    await Deno.readFile(source),
    ["moov", "trak", "mdia", "minf", "dinf", "dref"],
    dref,
  );
}

/** A real MKV video carrying an HLS playlist as an attached file. */
export async function mkvWithPlaylistAttachment(
  dir: string,
  playlist: string,
): Promise<Uint8Array> {
  const source = await small(dir, "mkv", "matroska");
  const attachment = `${dir}/playlist.m3u8`;
  await Deno.writeTextFile(attachment, playlist);
  const out = `${dir}/attached.mkv`;
  await ffmpeg([
    "-i",
    source,
    "-attach",
    attachment,
    "-metadata:s:t",
    "mimetype=application/vnd.apple.mpegurl",
    "-c",
    "copy",
    "-f",
    "matroska",
    "-y",
    out,
  ]);
  return await Deno.readFile(out);
}

/** Real videos in containers outside the allowlist, and a still image. */
export async function otherFormats(dir: string): Promise<Record<string, Uint8Array>> {
  const formats: [string, string, string[]][] = [
    ["MPEG-TS video", "mpegts", ["-c:v", "mpeg2video"]],
    ["FLV video", "flv", ["-c:v", "flv1"]],
    ["JPEG still (image2 demuxer)", "image2", ["-frames:v", "1", "-c:v", "mjpeg"]],
    ["GIF animation", "gif", ["-c:v", "gif"]],
  ];
  const out: Record<string, Uint8Array> = {};
  for (const [name, format, codec] of formats) {
    const path = `${dir}/other.${format}`;
    await ffmpeg([
      "-f",
      "lavfi",
      "-i",
      "testsrc2=size=64x48:rate=10:duration=0.5",
      ...codec,
      "-pix_fmt",
      format === "gif" ? "rgb8" : format === "image2" ? "yuvj420p" : "yuv420p",
      "-f",
      format,
      "-y",
      path,
    ]);
    out[name] = await Deno.readFile(path);
  }
  return out;
}

/** A small real video of `format`, 64×48, 1 s, moov at the end for MP4. */
async function small(dir: string, extension: string, format: string): Promise<string> {
  const path = `${dir}/small.${extension}`;
  await ffmpeg([
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=64x48:rate=25:duration=1",
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-pix_fmt",
    "yuv420p",
    "-f",
    format,
    "-y",
    path,
  ]);
  return path;
}

function findFourCc(bytes: Uint8Array, fourCc: string): number {
  const needle = enc.encode(fourCc);
  outer: for (let i = 0; i + 4 <= bytes.length; i++) {
    for (let j = 0; j < 4; j++) if (bytes[i + j] !== needle[j]) continue outer;
    return i;
  }
  throw new Error(`No "${fourCc}" chunk`);
}

/** A tiny uncompressed AVI whose headers then get patched into a bomb. */
async function rawAvi(dir: string): Promise<Uint8Array> {
  const path = `${dir}/raw.avi`;
  await ffmpeg([
    "-f",
    "lavfi",
    "-i",
    "color=c=gray:size=16x16:rate=25:duration=0.2",
    "-c:v",
    "rawvideo",
    "-pix_fmt",
    "yuv420p",
    "-f",
    "avi",
    "-y",
    path,
  ]);
  return await Deno.readFile(path);
}

/** Resource bombs by name: each is small on disk and lies about what decoding it costs. */
export async function bombs(dir: string): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  {
    // BITMAPINFOHEADER and avih claim 16000 × 16000: 256 Mpixel (384 MB) per frame.
    const avi = await rawAvi(dir);
    const view = new DataView(avi.buffer);
    const strf = findFourCc(avi, "strf") + 8;
    view.setInt32(strf + 4, 16000, true);
    view.setInt32(strf + 8, 16000, true);
    const avih = findFourCc(avi, "avih") + 8;
    view.setUint32(avih + 32, 16000, true);
    view.setUint32(avih + 36, 16000, true);
    out["16000×16000 frames"] = avi;
  }
  {
    // strh: 50 million frames at a million per second (50 s): a frame-count bomb.
    const avi = await rawAvi(dir);
    const view = new DataView(avi.buffer);
    const strh = findFourCc(avi, "strh") + 8;
    view.setUint32(strh + 20, 1, true); // dwScale
    view.setUint32(strh + 24, 1_000_000, true); // dwRate
    view.setUint32(strh + 32, 50_000_000, true); // dwLength
    view.setUint32(findFourCc(avi, "avih") + 8 + 16, 50_000_000, true); // dwTotalFrames
    out["50 million frames"] = avi;
  }
  {
    // strh: 5 frames of 100,000 s each: a header claiming almost six days.
    const avi = await rawAvi(dir);
    const view = new DataView(avi.buffer);
    const strh = findFourCc(avi, "strh") + 8;
    view.setUint32(strh + 20, 100_000, true); // dwScale
    view.setUint32(strh + 24, 1, true); // dwRate
    out["a header claiming six days"] = avi;
  }
  {
    // 300 streams (copies of one tiny video stream) in an MKV.
    const source = await small(dir, "mkv", "matroska");
    const path = `${dir}/streams.mkv`;
    const maps = Array.from({ length: 300 }, () => ["-map", "0:v:0"]).flat();
    await ffmpeg(["-i", source, ...maps, "-c", "copy", "-f", "matroska", "-y", path]);
    out["300 streams"] = await Deno.readFile(path);
  }
  {
    // A faststart MP4 cut at 60 %: the index is whole, the samples are not.
    const source = await small(dir, "mp4", "mp4");
    const faststart = `${dir}/faststart.mp4`;
    await ffmpeg(["-i", source, "-c", "copy", "-movflags", "+faststart", "-y", faststart]);
    const bytes = await Deno.readFile(faststart);
    out["truncated MP4 (index whole, samples cut)"] = bytes.slice(
      0,
      Math.floor(bytes.length * 0.6),
    );
    // moov at the end, cut before it: no index at all.
    const plain = await Deno.readFile(source);
    out["truncated MP4 (no index)"] = plain.slice(0, Math.floor(plain.length * 0.6));
  }
  return out;
}
