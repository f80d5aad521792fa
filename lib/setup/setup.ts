/** A media binary that was found, and its major version (null when unparsable, e.g. git builds). */
export interface FoundTool {
  path: string;
  version: string;
  major: number | null;
}

/** The oldest ffmpeg major version this service supports. */
export const MIN_FFMPEG_MAJOR = 4;

/** Parses the first line of `ffmpeg -version` / `ffprobe -version`. */
export function parseToolVersion(output: string): { version: string; major: number | null } {
  const match = /^ff(?:mpeg|probe) version (\S+)/m.exec(output);
  const version = match?.[1] ?? "unknown";
  const major = /^n?(\d+)\./.exec(version);
  return { version, major: major ? Number(major[1]) : null };
}

/** The standard output of `path ...args` (a version query); null when it cannot be run or fails. */
export async function versionOutput(path: string, args: string[]): Promise<string | null> {
  try {
    const output = await new Deno.Command(path, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return output.success ? new TextDecoder().decode(output.stdout) : null;
  } catch {
    return null;
  }
}

/** Runs `PATH -version`; null when it cannot be run. */
export async function findTool(path: string): Promise<FoundTool | null> {
  const output = await versionOutput(path, ["-version"]);
  return output === null ? null : { path, ...parseToolVersion(output) };
}

/** True when the tool is present and new enough (unknown versions, such as git builds, pass). */
export function isUsable(tool: FoundTool | null): tool is FoundTool {
  return tool !== null && (tool.major === null || tool.major >= MIN_FFMPEG_MAJOR);
}

/** What to tell a person on a machine where setup cannot install ffmpeg itself. */
export function installInstructions(os: string): string {
  return [
    `ffmpeg and ffprobe ${MIN_FFMPEG_MAJOR} or newer are required. Install them, then run the command again:`,
    os === "darwin" ? "  macOS:          brew install ffmpeg" : null,
    os === "windows"
      ? "  Windows:        winget install Gyan.FFmpeg   (or: choco install ffmpeg)"
      : null,
    os === "linux"
      ? [
        "  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y ffmpeg",
        "  Fedora:         sudo dnf install ffmpeg   (RPM Fusion)",
        "  Alpine:         sudo apk add ffmpeg",
        "  Arch:           sudo pacman -S ffmpeg",
      ].join("\n")
      : null,
    "Or point FFMPEG_PATH and FFPROBE_PATH at existing binaries.",
  ].filter((line) => line !== null).join("\n");
}
