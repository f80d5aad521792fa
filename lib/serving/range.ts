/** A byte range, both ends inclusive. */
export interface ByteRange {
  start: number;
  end: number;
}

/** What a Range header asks for. */
export type RangeRequest =
  | { kind: "full" }
  | { kind: "partial"; range: ByteRange }
  | { kind: "unsatisfiable" };

/** More ranges than this in one header are treated as abuse. */
export const MAX_RANGES = 16;

/**
 * Interprets a `Range` header for a resource of `size` bytes (RFC 9110 §14).
 * One satisfiable range gives `partial`; no header, another unit or several
 * ranges give `full` (servers may ignore Range); a malformed, unsatisfiable or
 * abusive one gives `unsatisfiable`.
 *
 * @example
 * ```ts
 * parseRange("bytes=-500", 1000); // { kind: "partial", range: { start: 500, end: 999 } }
 * ```
 */
export function parseRange(header: string | null, size: number): RangeRequest {
  if (header === null) return { kind: "full" };
  const match = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  if (!match) {
    // Another unit may be ignored; an empty or broken byte range is refused.
    const otherUnit = /^\s*[a-z]+\s*=/i.test(header) && !/^\s*bytes\s*=/i.test(header);
    return otherUnit ? { kind: "full" } : { kind: "unsatisfiable" };
  }
  const specs = match[1]!.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
  if (specs.length === 0 || specs.length > MAX_RANGES) return { kind: "unsatisfiable" };
  const ranges: ByteRange[] = [];
  for (const spec of specs) {
    const parts = /^(\d*)\s*-\s*(\d*)$/.exec(spec);
    if (!parts || (parts[1] === "" && parts[2] === "")) return { kind: "unsatisfiable" };
    const [first, last] = [parts[1]!, parts[2]!];
    if (first.length > 15 || last.length > 15) return { kind: "unsatisfiable" };
    if (first === "") {
      const suffix = Number(last);
      if (suffix === 0 || size === 0) continue;
      ranges.push({ start: Math.max(0, size - suffix), end: size - 1 });
      continue;
    }
    const start = Number(first);
    const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
    if (last !== "" && Number(last) < start) return { kind: "unsatisfiable" };
    if (start >= size) continue;
    ranges.push({ start, end });
  }
  if (ranges.length === 0) return { kind: "unsatisfiable" };
  if (ranges.length > 1) return { kind: "full" };
  return { kind: "partial", range: ranges[0]! };
}
