/** Limits for one ffmpeg/ffprobe run. */
export interface RunToolOptions {
  timeoutMs: number;
  /** Bytes of stdout kept; the rest is drained and dropped. */
  maxStdoutBytes?: number;
  /** Bytes of stderr kept (the tail matters most; a corrupt file can print hundreds of KB). */
  maxStderrBytes?: number;
  /** Called with each stdout chunk as it arrives (for `-progress`). */
  onStdout?: (chunk: Uint8Array) => void;
  /** Grace period between SIGTERM and SIGKILL. */
  killAfterMs?: number;
}

/** How a run ended. */
export interface RunToolResult {
  code: number;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  stdoutTruncated: boolean;
}

async function collect(
  stream: ReadableStream<Uint8Array>,
  limit: number,
  keep: "head" | "tail",
  onChunk?: (chunk: Uint8Array) => void,
): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  for await (const chunk of stream) {
    onChunk?.(chunk);
    if (keep === "head") {
      if (size >= limit) {
        truncated = true;
        continue;
      }
      const part = chunk.subarray(0, limit - size);
      if (part.length < chunk.length) truncated = true;
      chunks.push(part);
      size += part.length;
    } else {
      chunks.push(chunk);
      size += chunk.length;
      while (size - (chunks[0]?.length ?? 0) >= limit && chunks.length > 1) {
        size -= chunks.shift()!.length;
        truncated = true;
      }
    }
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return { bytes: keep === "tail" ? bytes.subarray(Math.max(0, size - limit)) : bytes, truncated };
}

/**
 * Runs a media tool with an argument array (never a shell), no stdin, an empty
 * environment, a timeout that sends SIGTERM and then SIGKILL, and bounded output.
 */
export async function runTool(
  command: string,
  args: string[],
  options: RunToolOptions,
): Promise<RunToolResult> {
  const child = new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: { LC_ALL: "C" },
  }).spawn();
  let timedOut = false;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const termTimer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    killTimer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
    }, options.killAfterMs ?? 2000);
  }, options.timeoutMs);
  try {
    const [out, err, status] = await Promise.all([
      collect(child.stdout, options.maxStdoutBytes ?? 1024 * 1024, "head", options.onStdout),
      collect(child.stderr, options.maxStderrBytes ?? 16 * 1024, "tail"),
      child.status,
    ]);
    const decoder = new TextDecoder();
    return {
      code: status.code,
      signal: status.signal,
      stdout: decoder.decode(out.bytes),
      stderr: decoder.decode(err.bytes),
      timedOut,
      stdoutTruncated: out.truncated,
    };
  } finally {
    clearTimeout(termTimer);
    clearTimeout(killTimer);
  }
}
