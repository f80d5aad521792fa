// deno-lint-ignore-file explicit-function-return-type -- plain JavaScript run by node
/**
 * RSS sampler for bench/upload.ts, run with `node`: Deno 2 refuses to read
 * `/proc/<pid>/status` without --allow-all, so the sampling happens here.
 *
 * Reads commands on stdin, one a line, and answers one JSON line each:
 *
 *   start PID   reset PID's VmHWM (clear_refs), answer {"rss", "hwmReset"}
 *               and sample VmRSS every 10 ms from then on
 *   stop        stop sampling; answer {"peak", "samples", "rss", "hwm"}
 *
 * Sizes are in bytes.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";

const INTERVAL_MS = Number(process.env.SAMPLE_INTERVAL_MS || 10);

function status(pid) {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const bytes = (field) => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
    return Number(match[1]) * 1024;
  };
  return { rss: bytes("VmRSS"), hwm: bytes("VmHWM") };
}

function answer(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

let pid = 0;
let peak = 0;
let samples = 0;
let timer = null;

function sample() {
  try {
    const { rss } = status(pid);
    if (rss > peak) peak = rss;
    samples++;
  } catch {
    // The process is gone; the bench notices on its own.
  }
}

createInterface({ input: process.stdin }).on("line", (line) => {
  const [command, argument] = line.trim().split(/\s+/);
  try {
    if (command === "start") {
      if (timer) clearInterval(timer);
      pid = Number(argument);
      let hwmReset = true;
      try {
        writeFileSync(`/proc/${pid}/clear_refs`, "5");
      } catch {
        hwmReset = false;
      }
      const { rss } = status(pid);
      peak = rss;
      samples = 1;
      timer = setInterval(sample, INTERVAL_MS);
      answer({ rss, hwmReset });
    } else if (command === "stop") {
      if (timer) clearInterval(timer);
      timer = null;
      sample();
      const { rss, hwm } = status(pid);
      answer({ peak, samples, rss, hwm });
    } else {
      answer({ error: `unknown command ${command}` });
    }
  } catch (error) {
    answer({ error: String(error?.message ?? error) });
  }
}).on("close", () => {
  if (timer) clearInterval(timer);
});
