/**
 * What a webhook may connect to: the class of an IP address, and the check of
 * a target's resolved addresses against them. Pure functions over literal
 * addresses (and an injected resolver), so the refusals are tested without
 * touching any address but loopback (tests/routes/webhooks_test.ts).
 */

/** The classes of address a webhook is refused, unless the operator allowed the host. */
export type AddressClass =
  | "public"
  | "loopback"
  | "private"
  | "link-local"
  | "metadata"
  | "cgnat"
  | "unspecified"
  | "multicast"
  | "reserved";

/** The 4 bytes of a dotted IPv4 address, or null. */
function ipv4Bytes(text: string): number[] | null {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!match) return null;
  const bytes = match.slice(1).map(Number);
  return bytes.every((b) => b <= 255) ? bytes : null;
}

/** The 16 bytes of an IPv6 address (with `::` and a trailing dotted IPv4 allowed), or null. */
function ipv6Bytes(text: string): number[] | null {
  let name = text.toLowerCase().replace(/^\[(.*)\]$/, "$1").replace(/%.*$/, "");
  let tailV4: number[] = [];
  const dotted = /^(.*:)(\d{1,3}(?:\.\d{1,3}){3})$/.exec(name);
  if (dotted) {
    const v4 = ipv4Bytes(dotted[2]!);
    if (!v4) return null;
    tailV4 = v4;
    name = dotted[1]!.endsWith("::") ? dotted[1]! : dotted[1]!.slice(0, -1);
  }
  const halves = name.split("::");
  if (halves.length > 2) return null;
  const groups = (part: string | undefined) => part ? part.split(":") : [];
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  const want = 8 - tailV4.length / 2;
  const missing = want - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const all = [...head, ...Array<string>(missing).fill("0"), ...tail];
  if (!all.every((group) => /^[0-9a-f]{1,4}$/.test(group))) return null;
  return [
    ...all.flatMap((group) => [parseInt(group, 16) >> 8, parseInt(group, 16) & 0xff]),
    ...tailV4,
  ];
}

/** Whether `text` is an IP address literal (IPv6 possibly in brackets). */
export function isIpLiteral(text: string): boolean {
  return ipv4Bytes(text) !== null || ipv6Bytes(text) !== null;
}

function classifyV4([a, b, c, d]: number[]): AddressClass {
  if (a === 169 && b === 254 && c === 169 && d === 254) return "metadata";
  if (a === 0) return "unspecified";
  if (a === 127) return "loopback";
  if (a === 10 || (a === 172 && b! >= 16 && b! <= 31) || (a === 192 && b === 168)) {
    return "private";
  }
  if (a === 169 && b === 254) return "link-local";
  if (a === 100 && b! >= 64 && b! <= 127) return "cgnat";
  if (a! >= 224 && a! <= 239) return "multicast";
  // 192.0.0.0/24 (protocol assignments), 198.18.0.0/15 (benchmarking), 240.0.0.0/4 and broadcast.
  if ((a === 192 && b === 0 && c === 0) || (a === 198 && (b === 18 || b === 19)) || a! >= 240) {
    return "reserved";
  }
  return "public";
}

/**
 * The class of an IP address; IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
 * and NAT64 (`64:ff9b::/96`) IPv6 forms are classed by their IPv4 address.
 * Throws on text that is not an address.
 */
export function classifyAddress(address: string): AddressClass {
  const v4 = ipv4Bytes(address);
  if (v4) return classifyV4(v4);
  const v6 = ipv6Bytes(address);
  if (!v6) throw new Error(`Not an IP address: ${address}`);
  const zeros = (from: number, to: number) => v6.slice(from, to).every((b) => b === 0);
  const embedded = v6.slice(12);
  if (zeros(0, 10) && v6[10] === 0xff && v6[11] === 0xff) return classifyV4(embedded);
  if (v6[0] === 0 && v6[1] === 0x64 && v6[2] === 0xff && v6[3] === 0x9b && zeros(4, 12)) {
    return classifyV4(embedded);
  }
  if (zeros(0, 15)) return v6[15] === 1 ? "loopback" : v6[15] === 0 ? "unspecified" : "reserved";
  if (zeros(0, 12)) return classifyV4(embedded); // the deprecated IPv4-compatible form
  // fd00:ec2::254 is EC2's IPv6 instance metadata service.
  if (
    v6[0] === 0xfd && v6[1] === 0 && v6[2] === 0x0e && v6[3] === 0xc2 && zeros(4, 14) &&
    v6[14] === 0x02 && v6[15] === 0x54
  ) return "metadata";
  if ((v6[0]! & 0xfe) === 0xfc) return "private";
  if (v6[0] === 0xfe && (v6[1]! & 0xc0) === 0x80) return "link-local";
  if (v6[0] === 0xfe && (v6[1]! & 0xc0) === 0xc0) return "private"; // deprecated site-local
  if (v6[0] === 0xff) return "multicast";
  return "public";
}

/** Whether a host name means this machine: a loopback literal or `localhost`. */
export function isLoopbackName(host: string): boolean {
  const name = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  return isIpLiteral(name) && classifyAddress(name) === "loopback";
}

/** Looks a host name up: its A and AAAA addresses. */
export type Resolver = (host: string) => Promise<string[]>;

/**
 * Resolves with `Deno.resolveDns` (A and AAAA, through `nameServer` when
 * given); a name with no address of either kind resolves to none.
 */
export function dnsResolver(nameServer?: { ipAddr: string; port?: number }): Resolver {
  return async (host) => {
    const options = nameServer ? { nameServer } : undefined;
    const lookup = (type: "A" | "AAAA") =>
      Deno.resolveDns(host, type, options).catch((error) => {
        if (error instanceof Deno.errors.NotFound) return [] as string[];
        throw error;
      });
    const [a, aaaa] = await Promise.all([lookup("A"), lookup("AAAA")]);
    return [...a, ...aaaa];
  };
}

/** Raised when a webhook target resolves to an address it may not reach. */
export class RefusedTarget extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RefusedTarget";
  }
}

/** Who a target may be: the hosts `WEBHOOK_ALLOW_HOSTS` names. */
export interface TargetPolicy {
  allowHosts: readonly string[];
}

/**
 * The addresses `url`'s host stands for, checked: every one must be public,
 * except loopback ones for a loopback URL (`localhost`, `127.0.0.1`, `[::1]`)
 * and private, loopback and CGNAT ones for a host `WEBHOOK_ALLOW_HOSTS`
 * names. Link-local, metadata, unspecified, multicast and reserved addresses
 * are refused whatever the configuration. All addresses are checked, not
 * the first: the connection may use any of them. Throws {@linkcode RefusedTarget}.
 */
export async function checkTarget(
  url: URL,
  policy: TargetPolicy,
  resolve: Resolver,
): Promise<string[]> {
  const host = url.hostname.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  const allowed = policy.allowHosts.includes(host);
  const loopbackUrl = isLoopbackName(host);
  const addresses = isIpLiteral(host)
    ? [host]
    : host === "localhost" || host.endsWith(".localhost")
    ? ["127.0.0.1", "::1"]
    : await resolve(host);
  if (addresses.length === 0) throw new RefusedTarget(`${host} has no address`);
  for (const address of addresses) {
    const kind = classifyAddress(address);
    if (kind === "public") continue;
    if (kind === "loopback" && (loopbackUrl || allowed)) continue;
    if ((kind === "private" || kind === "cgnat") && allowed) continue;
    throw new RefusedTarget(
      `${host} resolves to ${address}, a ${kind} address` +
        (kind === "private" || kind === "cgnat" || kind === "loopback"
          ? " (name the host in WEBHOOK_ALLOW_HOSTS to allow it)"
          : ""),
    );
  }
  return addresses;
}
