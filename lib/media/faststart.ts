/**
 * True when an MP4/MOV file's `moov` box comes before its `mdat` box, so a
 * browser can start playing before it has the whole file. Reads only the box
 * headers at the top level.
 */
export async function hasMoovFirst(path: string): Promise<boolean> {
  using file = await Deno.open(path, { read: true });
  const { size } = await file.stat();
  const header = new Uint8Array(16);
  let offset = 0;
  for (let boxes = 0; boxes < 10_000 && offset + 8 <= size; boxes++) {
    await file.seek(offset, Deno.SeekMode.Start);
    let filled = 0;
    while (filled < 16) {
      const n = await file.read(header.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    if (filled < 8) return false;
    const view = new DataView(header.buffer);
    let boxSize = view.getUint32(0);
    const type = String.fromCharCode(...header.subarray(4, 8));
    if (boxSize === 1) {
      if (filled < 16) return false;
      boxSize = Number(view.getBigUint64(8));
    } else if (boxSize === 0) {
      boxSize = size - offset;
    }
    if (type === "moov") return true;
    if (type === "mdat") return false;
    if (boxSize < 8) return false;
    offset += boxSize;
  }
  return false;
}
