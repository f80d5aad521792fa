import { AsyncLocalStorage } from "node:async_hooks";
import { configure, getJsonLinesFormatter, type LogLevel } from "@logtape/logtape";

/** The root category of this service's loggers: `offchat.http`, `offchat.job`, `offchat.service`. */
export const LOG_CATEGORY = "offchat";

/** Options for {@linkcode configureLogging}. */
export interface LoggingOptions {
  /** Where each line goes (with its newline); stdout when absent. */
  write?: (line: string) => void;
  /** The lowest level written; `info` when absent. */
  level?: LogLevel;
}

/**
 * `text` as a LogTape message with no placeholders: LogTape reads `{name}` in
 * a message as a property, and would quote the values it puts there.
 */
export function literalMessage(text: string): string {
  return text.replaceAll("{", "{{").replaceAll("}", "}}");
}

const encoder = new TextEncoder();

/** Writes all of `line` to stdout synchronously, so that no line is lost when the process exits. */
function writeStdout(line: string): void {
  const bytes = encoder.encode(line);
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

/**
 * Sends this process's log records to stdout as JSON Lines, one object per
 * record: `@timestamp`, `level`, `message`, `logger` (the category) and the
 * record's properties at the top level, plus the `requestId` of the request
 * during which it was written. Called once by `main.ts` (a process has one
 * stdout, so LogTape's configuration is process-wide); library code only calls
 * `getLogger`, whose records go nowhere until this has run (as in the tests,
 * which pass `write` to read them). Calling it again replaces the configuration.
 */
export async function configureLogging(options: LoggingOptions = {}): Promise<void> {
  const format = getJsonLinesFormatter({ properties: "flatten" });
  const write = options.write ?? writeStdout;
  await configure({
    reset: true,
    sinks: { lines: (record) => write(format(record)) },
    loggers: [
      { category: [LOG_CATEGORY], sinks: ["lines"], lowestLevel: options.level ?? "info" },
      // LogTape's own warnings (a sink that throws, for one).
      { category: ["logtape", "meta"], sinks: ["lines"], lowestLevel: "warning" },
    ],
    // Carries the request id into every record written while a request runs.
    contextLocalStorage: new AsyncLocalStorage(),
  });
}
