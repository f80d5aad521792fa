/**
 * The module graph, as `deno info --json` reads it, keeps one boundary:
 * nothing under `lib/` imports `hono`, `@hono/*`, `routes/` or `main.ts`,
 * even through another local file; and no local module imports itself
 * through a chain of others. Type-only and dynamic imports count.
 */
import assert from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");

/** A module's imports, resolved: local files as `file:` URLs, packages as `npm:…` and the like. */
type ModuleGraph = Map<string, string[]>;

interface InfoDependency {
  specifier: string;
  code?: { specifier?: string; error?: string };
  type?: { specifier?: string; error?: string };
}

interface InfoModule {
  specifier: string;
  error?: string;
  dependencies?: InfoDependency[];
}

/** Runs `deno info --json` on `file` and adds its modules to `graph`. */
async function addModulesOf(graph: ModuleGraph, file: string): Promise<void> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", file],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.ok(output.success, `deno info ${file} failed: ${stderr}`);
  const info = JSON.parse(new TextDecoder().decode(output.stdout)) as { modules: InfoModule[] };
  for (const module of info.modules) {
    if (!module.specifier.startsWith("file:")) continue;
    assert.equal(module.error, undefined, `${module.specifier}: ${module.error}`);
    const imports: string[] = [];
    for (const dependency of module.dependencies ?? []) {
      for (const resolved of [dependency.code, dependency.type]) {
        if (!resolved) continue;
        assert.equal(resolved.error, undefined, `${module.specifier}: ${resolved.error}`);
        if (resolved.specifier) imports.push(resolved.specifier);
      }
    }
    graph.set(module.specifier, [...new Set(imports)]);
  }
}

async function* typeScriptFiles(directory: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(directory)) {
    const path = `${directory}/${entry.name}`;
    if (entry.isDirectory && entry.name !== "node_modules") yield* typeScriptFiles(path);
    else if (entry.isFile && /\.tsx?$/.test(entry.name)) yield path;
  }
}

/**
 * The graph from `main.ts`, plus every file of `lib/`, `routes/` and `db/`
 * that `main.ts` does not reach (one only the tests use is checked too).
 */
async function readModuleGraph(): Promise<ModuleGraph> {
  const graph: ModuleGraph = new Map();
  await addModulesOf(graph, `${ROOT}/main.ts`);
  for (const folder of ["lib", "routes", "db"]) {
    for await (const path of typeScriptFiles(`${ROOT}/${folder}`)) {
      if (!graph.has(pathToFileURL(path).href)) await addModulesOf(graph, path);
    }
  }
  return graph;
}

/** A path relative to the repository, for messages. */
function local(specifier: string, root: string): string {
  return specifier.startsWith("file:") ? relative(root, fileURLToPath(specifier)) : specifier;
}

/** `hono` and `@hono/*`, however they are spelled once resolved. */
function isHono(specifier: string): boolean {
  const name = /^(?:npm|jsr):\/?((?:@[^/@]+\/)?[^/@]+)/.exec(specifier)?.[1];
  if (name !== undefined) return name === "hono" || name.startsWith("@hono/");
  // A URL (esm.sh, deno.land/x) or a file inside node_modules.
  return /\/(?:\.deno\/)?(?:hono|@hono\/[^/@]+|@hono\+[^/@]+)(?:@[^/]*)?(?:\/|$)/.test(specifier);
}

/**
 * Every import that crosses the boundary: a module under `lib/`, or any
 * local module it reaches, importing hono, `@hono/*`, `routes/` or
 * `main.ts`. Each is reported with the chain of imports that leads to it.
 */
function boundaryViolations(graph: ModuleGraph, root: string): string[] {
  const inside = (specifier: string, folder: string): boolean =>
    specifier.startsWith(`${pathToFileURL(`${root}/${folder}`).href}/`);
  const isLocal = (specifier: string): boolean =>
    specifier.startsWith("file:") && !specifier.includes("/node_modules/");
  const forbidden = (specifier: string): boolean =>
    isHono(specifier) || inside(specifier, "routes") ||
    specifier === pathToFileURL(`${root}/main.ts`).href;
  const violations: string[] = [];
  for (const start of [...graph.keys()].filter((s) => inside(s, "lib")).sort()) {
    // Breadth first, so each violation is reported with the shortest chain.
    const via = new Map<string, string | null>([[start, null]]);
    const queue = [start];
    while (queue.length > 0) {
      const module = queue.shift()!;
      for (const target of graph.get(module) ?? []) {
        if (forbidden(target)) {
          const chain = [target, module];
          for (let at = via.get(module); at; at = via.get(at)) chain.push(at);
          violations.push(chain.reverse().map((s) => local(s, root)).join(" → "));
        } else if (isLocal(target) && !via.has(target) && !inside(target, "lib")) {
          // Other lib/ modules are checked from their own start; files elsewhere
          // (db/) are followed, so hono cannot come in through them.
          via.set(target, module);
          queue.push(target);
        }
      }
    }
  }
  return violations;
}

/** Every import cycle among local modules, each as the chain that closes it. */
function importCycles(graph: ModuleGraph, root: string): string[] {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const cycles = new Set<string>();
  const visit = (module: string): void => {
    state.set(module, "open");
    stack.push(module);
    for (const target of graph.get(module) ?? []) {
      if (!graph.has(target)) continue;
      if (state.get(target) === "open") {
        const cycle = stack.slice(stack.indexOf(target)).map((s) => local(s, root));
        // The same cycle found from another module is reported once.
        const first = cycle.indexOf([...cycle].sort()[0]!);
        const rotated = [...cycle.slice(first), ...cycle.slice(0, first)];
        cycles.add([...rotated, rotated[0]].join(" → "));
      } else if (!state.has(target)) visit(target);
    }
    stack.pop();
    state.set(module, "done");
  };
  for (const module of [...graph.keys()].sort()) if (!state.has(module)) visit(module);
  return [...cycles];
}

Deno.test("architecture: lib/ imports no hono, @hono/*, routes/ or main.ts", async () => {
  const graph = await readModuleGraph();
  const libModules = [...graph.keys()].filter((s) => local(s, ROOT).startsWith("lib/"));
  assert.ok(libModules.length > 20, `only ${libModules.length} lib/ modules in the graph`);
  const violations = boundaryViolations(graph, ROOT);
  assert.deepEqual(
    violations,
    [],
    `lib/ must not depend on HTTP; move the HTTP part to routes/:\n  ${violations.join("\n  ")}`,
  );
});

Deno.test("architecture: no import cycles", async () => {
  const cycles = importCycles(await readModuleGraph(), ROOT);
  assert.deepEqual(cycles, [], `import cycles:\n  ${cycles.join("\n  ")}`);
});

Deno.test("architecture: the checks catch a hono import, a route, a chain and a cycle", () => {
  const root = "/repo";
  const file = (path: string) => `file://${root}/${path}`;
  const graph: ModuleGraph = new Map([
    [file("main.ts"), [file("lib/a.ts"), file("routes/app.ts")]],
    [file("routes/app.ts"), ["npm:hono@^4", file("lib/a.ts")]],
    [file("lib/a.ts"), [file("lib/b.ts"), "npm:zod@^4", "npm:/hono-like@1/x"]],
    [file("lib/b.ts"), ["npm:/hono@^4/http-exception", file("db/schema.ts"), file("lib/a.ts")]],
    [file("lib/c.ts"), [file("routes/app.ts"), "npm:@hono/zod-openapi@^1", file("db/x.ts")]],
    [file("lib/d.ts"), [file("main.ts"), "jsr:@hono/hono@^4", file("lib/a.ts")]],
    [file("db/schema.ts"), []],
    [file("db/x.ts"), ["npm:hono@^4", file("db/y.ts")]],
    [file("db/y.ts"), [file("db/x.ts")]],
  ]);
  assert.deepEqual(boundaryViolations(graph, root), [
    "lib/b.ts → npm:/hono@^4/http-exception",
    "lib/c.ts → routes/app.ts",
    "lib/c.ts → npm:@hono/zod-openapi@^1",
    "lib/c.ts → db/x.ts → npm:hono@^4",
    "lib/d.ts → main.ts",
    "lib/d.ts → jsr:@hono/hono@^4",
  ]);
  assert.deepEqual(importCycles(graph, root), [
    "db/x.ts → db/y.ts → db/x.ts",
    "lib/a.ts → lib/b.ts → lib/a.ts",
  ]);
});
