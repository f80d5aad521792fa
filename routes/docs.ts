import { Hono } from "hono";
import swaggerUiDist from "swagger-ui-dist";
import type { AppEnv } from "./_env.ts";
import { ApiError } from "../lib/core/errors.ts";

const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OffChat Media API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body>
</html>
`;

const INIT =
  `window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });\n`;

const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** `/docs`: Swagger UI over `/openapi.json`, its assets served from the npm package (no CDN). */
export const docsRoutes = new Hono<AppEnv>({ strict: false })
  .get("/docs", (c) => c.html(PAGE, 200, { "content-security-policy": CSP }))
  .get("/docs/assets/init.js", (c) =>
    c.body(INIT, 200, {
      "content-type": "text/javascript; charset=utf-8",
      "cache-control": "public, max-age=3600",
    }))
  .get("/docs/assets/:name", async (c) => {
    const name = c.req.param("name");
    const type = ASSETS[name];
    if (!type) throw new ApiError("not_found", "No such asset");
    const path = `${swaggerUiDist.getAbsoluteFSPath()}/${name}`;
    const file = await Deno.open(path, { read: true });
    return c.body(file.readable, 200, {
      "content-type": type,
      "cache-control": "public, max-age=86400",
      "x-content-type-options": "nosniff",
    });
  });
