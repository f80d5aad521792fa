import { createRoute, z } from "@hono/zod-openapi";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { OpenAPIHono } from "@hono/zod-openapi";
// Importing the packages' manifests puts tus-js-client and hls.js in the module
// graph, so Deno installs them into node_modules, where their browser bundles are read from.
import "tus-js-client/package.json" with { type: "json" };
import "hls.js/package.json" with { type: "json" };
// thumbhash: the dashboard decodes the poster placeholder with the package that encoded it.
import "thumbhash/package.json" with { type: "json" };
import { CONTAINERS } from "../lib/media/containers.ts";
import type { Config } from "../lib/config/config.ts";
import type { AppEnv } from "./_env.ts";
import { ApiError } from "../lib/core/errors.ts";
import { sha256Hex } from "../lib/core/hash.ts";
import { isNotModified } from "../lib/serving/not_modified.ts";
import { json, newRouter } from "./_router.ts";

/** Where the dashboard's files are, and the marker in index.html replaced by the asset base. */
const UI_DIR = fileURLToPath(new URL("../ui/", import.meta.url));
const ASSET_BASE_MARKER = "__ASSET_BASE__";

const CONTENT_TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  map: "application/json; charset=utf-8",
  webmanifest: "application/manifest+json; charset=utf-8",
};

/** Vendored browser bundles from npm packages: served path → file. */
function vendorFiles(): Record<string, string> {
  const require = createRequire(import.meta.url);
  const tusDir = dirname(require.resolve("tus-js-client/package.json"));
  const hlsDir = dirname(require.resolve("hls.js/package.json"));
  const thumbhashDir = dirname(require.resolve("thumbhash/package.json"));
  return {
    "vendor/tus.min.js": `${tusDir}/dist/tus.min.js`,
    "vendor/tus.min.js.map": `${tusDir}/dist/tus.min.js.map`,
    "vendor/hls.min.js": `${hlsDir}/dist/hls.min.js`,
    "vendor/hls.min.js.map": `${hlsDir}/dist/hls.min.js.map`,
    "vendor/thumbhash.js": `${thumbhashDir}/thumbhash.js`,
  };
}

interface Asset {
  body: Uint8Array<ArrayBuffer>;
  type: string;
  etag: string;
  /** The body gzipped once at start, for text assets that shrink (hls.js: 624 KB to 190 KB). */
  gzip?: Uint8Array<ArrayBuffer>;
}

/** Text assets worth compressing: scripts, styles, source maps, the page, SVG. */
const COMPRESSIBLE = /\.(?:js|css|map|html|svg|webmanifest)$/;

async function gzipped(body: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([body]).stream().pipeThrough(new CompressionStream("gzip"));
  return await new Response(stream).bytes();
}

interface Bundle {
  /** Content hash of every file: the versioned asset path, so assets can be cached forever. */
  version: string;
  index: Asset;
  assets: Map<string, Asset>;
}

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(`${dir}${prefix}`)) {
    if (entry.name.startsWith(".")) continue;
    const rel = `${prefix}${entry.name}`;
    if (entry.isDirectory) found.push(...await listFiles(dir, `${rel}/`));
    else if (entry.isFile) found.push(rel);
  }
  return found;
}

function asset(body: Uint8Array<ArrayBuffer>, name: string): Asset {
  const extension = name.slice(name.lastIndexOf(".") + 1);
  return {
    body,
    type: CONTENT_TYPES[extension] ?? "application/octet-stream",
    etag: `"${sha256Hex(body).slice(0, 32)}"`,
  };
}

/** Reads ui/ and the vendored bundles once; the version hashes all of them. */
async function loadBundle(): Promise<Bundle> {
  const sources: [string, string][] = (await listFiles(UI_DIR))
    .filter((name) => CONTENT_TYPES[name.slice(name.lastIndexOf(".") + 1)] !== undefined)
    .map((name) => [name, `${UI_DIR}${name}`]);
  sources.push(...Object.entries(vendorFiles()));
  sources.sort(([a], [b]) => a.localeCompare(b));
  const assets = new Map<string, Asset>();
  const hashes: string[] = [];
  for (const [name, path] of sources) {
    const item = asset(await Deno.readFile(path), name);
    if (COMPRESSIBLE.test(name) && name !== "index.html") item.gzip = await gzipped(item.body);
    assets.set(name, item);
    hashes.push(`${name} ${item.etag}`);
  }
  const version = sha256Hex(new TextEncoder().encode(hashes.join("\n"))).slice(0, 16);
  const template = assets.get("index.html");
  if (!template) throw new Error(`Dashboard page "${UI_DIR}index.html" is missing`);
  assets.delete("index.html");
  const page = new TextDecoder().decode(template.body).replaceAll(
    ASSET_BASE_MARKER,
    `/ui/${version}`,
  );
  return { version, index: asset(new TextEncoder().encode(page), "index.html"), assets };
}

/**
 * The page's Content-Security-Policy: scripts and styles only from this
 * origin, no inline script, no eval, DOM sinks closed by Trusted Types. Media,
 * images and event streams may also come from `PUBLIC_URL`'s origin, which
 * signs the media URLs, in case the page is reached under another name. Media
 * may also be a `blob:` URL: hls.js plays a ladder through a MediaSource,
 * which a <video> can only be given as one (the page makes them itself;
 * scripts still cannot come from one).
 */
export function dashboardCsp(publicUrl: string): string {
  const media = `'self' ${new URL(publicUrl).origin}`;
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    `img-src ${media}`,
    `media-src ${media} blob:`,
    `connect-src ${media}`,
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
  ].join("; ");
}

/** Whether a request's `Accept-Encoding` takes gzip (and does not refuse it with `q=0`). */
function acceptsGzip(request: Request): boolean {
  const match = /(?:^|,)\s*gzip\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*(?:,|$)/i.exec(
    request.headers.get("accept-encoding") ?? "",
  );
  return match !== null && (match[1] === undefined || Number(match[1]) > 0);
}

function send(
  request: Request,
  item: Asset,
  headers: Record<string, string>,
): Response {
  const gzip = item.gzip && acceptsGzip(request) ? item.gzip : null;
  // The gzipped body is another representation: its own ETag, and caches key on the header.
  const etag = gzip ? `${item.etag.slice(0, -1)}-gz"` : item.etag;
  const all: Record<string, string> = {
    "content-type": item.type,
    etag,
    "x-content-type-options": "nosniff",
    ...(item.gzip ? { vary: "accept-encoding" } : {}),
    ...(gzip ? { "content-encoding": "gzip" } : {}),
    ...headers,
  };
  if (isNotModified(request.headers, etag)) {
    return new Response(null, { status: 304, headers: all });
  }
  const body = gzip ?? item.body;
  return new Response(request.method === "HEAD" ? null : body, { status: 200, headers: all });
}

const UiConfigSchema = z.object({
  max_upload_bytes: z.number().int(),
  accepted_formats: z.array(z.object({
    container: z.string(),
    label: z.string(),
    mime_types: z.array(z.string()),
    extensions: z.array(z.string()),
  })),
  resumable_upload_url: z.string().nullable().openapi({
    description: "The tus 1.0 endpoint, or null when this server has none",
  }),
  dev_login: z.boolean().openapi({ description: "Whether POST /api/dev/login is available" }),
}).openapi("UiConfig");

/** Options for {@linkcode createUiRoutes}. */
export interface UiRoutesOptions {
  /** The tus endpoint's path, when the server has one. */
  resumableUploadPath: string | null;
}

/**
 * `/` (the dashboard), `/ui/<version>/…` (its files and the vendored
 * tus-js-client bundle) and `/api/ui/config` (what a client shows before an
 * upload). The files are read once, on the first request.
 */
export function createUiRoutes(config: Config, options: UiRoutesOptions): OpenAPIHono<AppEnv> {
  let bundle: Promise<Bundle> | null = null;
  const load = (): Promise<Bundle> => {
    bundle ??= loadBundle().catch((error) => {
      bundle = null;
      throw error;
    });
    return bundle;
  };
  const csp = dashboardCsp(config.publicUrl);
  const pageHeaders = {
    "cache-control": "no-cache",
    "content-security-policy": csp,
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
  };

  const routes = newRouter();
  routes.get("/", async (c) => send(c.req.raw, (await load()).index, pageHeaders));
  routes.get("/ui/:version/*", async (c) => {
    const loaded = await load();
    const version = c.req.param("version");
    const name = c.req.path.slice(`/ui/${version}/`.length);
    const item = loaded.assets.get(name);
    if (!item) throw new ApiError("not_found", "No such file");
    // A page from before a restart may still ask for an old version: it gets
    // today's file, but no cache may keep it under the old name.
    const cacheControl = version === loaded.version
      ? "public, max-age=31536000, immutable"
      : "no-cache";
    return send(c.req.raw, item, { "cache-control": cacheControl });
  });
  routes.openapi(
    createRoute({
      method: "get",
      path: "/api/ui/config",
      tags: ["dashboard"],
      summary: "Upload limits, accepted formats and sign-in options (no token needed)",
      responses: { 200: json(UiConfigSchema, "What a client shows before an upload") },
    }),
    (c) =>
      c.json(
        {
          max_upload_bytes: config.maxUploadBytes,
          accepted_formats: CONTAINERS.map((c) => ({
            container: c.name,
            label: c.label,
            mime_types: [...c.mimeTypes],
            extensions: [...c.extensions],
          })),
          resumable_upload_url: options.resumableUploadPath,
          dev_login: config.devLogin,
        },
        200,
        { "cache-control": "no-cache" },
      ),
  );
  return routes;
}
