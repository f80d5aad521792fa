/**
 * The dashboard in a real Chromium against a real server: sign in, create a
 * conversation, send a video while the progress bar moves (and survive a
 * dropped connection), watch it be processed, play and seek it, pick its poster (a candidate,
 * then the paused frame), download it;
 * send and play another with the keyboard only while its transcoding percent
 * shows live; an admin sees the upload and the download in the activity log
 * and narrows it by user, action and date; another user cannot see any of it; a user in 56
 * conversations loads them all, a page at a time. A second test, which runs the processing
 * jobs itself: a receiver plays a short clip from its progressive file, plays a longer video
 * while it is still processing, sees its adaptive ladder take over the open player, picks a
 * quality that hls.js switches to, and still watches when the ladder fails. Screenshots of each screen are taken, and replace the
 * README's in docs/screenshots/ only with UPDATE_SCREENSHOTS=1.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { BrowserContext, Locator, Page, Response as PageResponse } from "playwright-core";
import {
  body,
  conversationWithMessage,
  countRows,
  listFiles,
  postJson,
  uploadFile,
} from "../_helpers.ts";
import { fixture } from "../_fixtures.ts";
import { recordActivity } from "../../lib/chat/activity.ts";
import { JobQueue } from "../../lib/processing/jobs.ts";
import { runJob } from "../../lib/processing/processing.ts";
import { launchChromium } from "./_browser.ts";
import { serveApp } from "./_server.ts";

/**
 * The README's pictures, rewritten only when asked (UPDATE_SCREENSHOTS=1): otherwise a
 * test run would leave six changed PNGs in the working tree every time.
 */
const SCREENSHOTS = Deno.env.get("UPDATE_SCREENSHOTS") === "1"
  ? new URL("../../docs/screenshots/", import.meta.url).pathname
  : null;
const VIDEO_SECONDS = 8;
const VIDEO_WIDTH = 640;
const VIDEO_HEIGHT = 360;
/** A small limit, so a file over it is cheap to make. */
const MAX_UPLOAD_BYTES = 8 * 1024 * 1024;

/** The parts of DOM elements the test reads inside the page (the test itself has no DOM types). */
interface VideoElement {
  currentTime: number;
  duration: number;
  videoWidth: number;
  videoHeight: number;
  poster: string;
  seeking: boolean;
  readyState: number;
  pause(): void;
  querySelector(selector: string): { getAttribute(name: string): string | null } | null;
}

/**
 * An H.264/AAC MP4 made by ffmpeg's lavfi sources, at DIR/NAME: at 1.5 Mbit/s, big enough for
 * a throttled upload to take a while.
 */
async function makeVideo(
  dir: string,
  name: string,
  size: { width: number; height: number; seconds: number },
): Promise<string> {
  const path = `${dir}/${name}`;
  const out = await new Deno.Command("ffmpeg", {
    args: [
      "-nostdin",
      "-hide_banner",
      "-v",
      "error",
      "-f",
      "lavfi",
      "-i",
      `testsrc2=size=${size.width}x${size.height}:rate=25:duration=${size.seconds}`,
      "-f",
      "lavfi",
      "-i",
      `sine=frequency=440:sample_rate=48000:duration=${size.seconds}`,
      "-c:v",
      "libx264",
      "-preset",
      "ultrafast",
      "-b:v",
      "1500k",
      "-pix_fmt",
      "yuv420p",
      "-c:a",
      "aac",
      "-shortest",
      "-movflags",
      "+faststart",
      "-y",
      path,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`ffmpeg failed: ${new TextDecoder().decode(out.stderr)}`);
  return path;
}

/**
 * Saves a screenshot of the page to DIR/NAME.png, reduced to a 96-colour
 * palette by ffmpeg so the committed images stay small.
 */
async function screenshot(page: Page | Locator, name: string, dir: string): Promise<void> {
  const path = `${dir}/${name}.png`;
  const raw = await Deno.makeTempFile({ suffix: ".png" });
  try {
    await page.screenshot({ path: raw });
    const out = await new Deno.Command("ffmpeg", {
      args: [
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-i",
        raw,
        "-vf",
        "split[a][b];[a]palettegen=max_colors=96:stats_mode=full[p];[b][p]paletteuse=dither=none",
        "-pred",
        "mixed",
        path,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`ffmpeg: ${new TextDecoder().decode(out.stderr)}`);
    assert.ok((await Deno.stat(path)).size > 0, `the screenshot ${name} is empty`);
  } finally {
    await Deno.remove(raw);
  }
}

/** What has the keyboard focus, and whether it shows. */
interface Focused {
  tag: string;
  id: string;
  name: string;
  outlineStyle: string;
  outlineWidth: number;
  card: string | null;
}

/** The focused element of the page (inside the page: no DOM types here). */
function focused(page: Page): Promise<Focused> {
  return page.evaluate<Focused>(`(() => {
    const el = document.activeElement ?? document.body;
    const style = getComputedStyle(el);
    return {
      tag: el.tagName.toLowerCase(),
      id: el.id,
      name: (el.getAttribute("aria-label") ?? el.textContent ?? "").trim().slice(0, 60),
      outlineStyle: style.outlineStyle,
      outlineWidth: parseFloat(style.outlineWidth) || 0,
      card: el.closest("article.attachment")?.getAttribute("aria-label") ?? null,
    };
  })()`);
}

const describeFocus = (f: Focused) => `${f.tag}${f.id ? `#${f.id}` : ""} "${f.name}"`;

/**
 * Presses Tab (or Shift+Tab) until `wanted` has the focus, checking that every
 * element on the way shows it (an outline, not `none`); fails after `max` presses.
 */
async function tabTo(
  page: Page,
  wanted: (f: Focused) => boolean,
  what: string,
  options: { back?: boolean; max?: number } = {},
): Promise<Focused[]> {
  const start = await focused(page);
  const path: Focused[] = [];
  for (let i = 0; i < (options.max ?? 60); i++) {
    await page.keyboard.press(options.back ? "Shift+Tab" : "Tab");
    const now = await focused(page);
    path.push(now);
    assert.ok(
      now.tag !== "body" || i === 0,
      `focus fell out of the page on the way to ${what}: ${path.map(describeFocus).join(" → ")}`,
    );
    // Tab from a <video> that stays on it is inside its native controls, whose focus
    // ring Chromium draws itself (the page cannot style or read it).
    const previous = path.at(-2) ?? start;
    const nativeControl = now.tag === "video" && previous?.tag === "video" &&
      previous.name === now.name;
    if (now.tag !== "body" && !nativeControl) {
      assert.ok(
        now.outlineStyle !== "none" && now.outlineWidth > 0,
        `no visible focus on ${
          describeFocus(now)
        } (outline ${now.outlineStyle} ${now.outlineWidth}px)`,
      );
    }
    if (wanted(now)) return path;
  }
  assert.fail(`Tab never reached ${what}: ${path.map(describeFocus).join(" → ")}`);
}

/**
 * Collects what goes wrong in a page into `errors`: script errors, console errors and error
 * answers, except those `allowed` says the test provoked on purpose.
 */
function watchPage(
  page: Page,
  errors: string[],
  allowed: (response: PageResponse) => boolean = () => false,
): void {
  page.on("pageerror", (error) => errors.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    const text = message.text();
    // Chromium logs every error answer; those are judged from the responses below.
    if (message.type() === "error" && !/^Failed to load resource/.test(text)) {
      errors.push(`console: ${text}`);
    }
  });
  page.on("response", (response) => {
    if (response.status() >= 400 && !allowed(response)) {
      errors.push(`${response.status()} ${response.url()}`);
    }
  });
}

async function devSignIn(context: BrowserContext, url: string, user: string, admin = false) {
  const page = await context.newPage();
  await page.goto(`${url}/`);
  await page.getByLabel("User name").fill(user);
  if (admin) await page.getByLabel("Administrator").check();
  await page.getByRole("button", { name: "Sign in as this user" }).click();
  await page.getByRole("heading", { name: "Conversations", level: 1 }).waitFor();
  return page;
}

/**
 * Emulates a slow uplink for `page` (bytes a second, 20 ms of latency) through
 * the DevTools protocol; `uploads` on the returned session changes the speed
 * (`-1` lifts the limit).
 */
async function slowUplink(
  context: BrowserContext,
  page: Page,
  bytesPerSecond: number,
): Promise<{ uploads(bytesPerSecond: number): Promise<void>; detach(): Promise<void> }> {
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  const uploads = async (speed: number) => {
    await cdp.send("Network.emulateNetworkConditions", {
      offline: false,
      latency: speed < 0 ? 0 : 20,
      downloadThroughput: -1,
      uploadThroughput: speed,
    });
  };
  await uploads(bytesPerSecond);
  return { uploads, detach: () => cdp.detach() };
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What the captions step reads of a TextTrack in the page. */
interface CaptionTrack {
  mode: string;
  label: string;
  cues: { length: number; [index: number]: { text: string } } | null;
}

Deno.test({
  name: "dashboard: send, watch, download and administer a video in Chromium",
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "offchat-e2e-" });
    await using _dir = { [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
    await using served = await serveApp({ MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES) });
    await using browser = await launchChromium();
    const { url } = served;
    const videoPath = await makeVideo(dir, "Harbour walk.mp4", {
      width: VIDEO_WIDTH,
      height: VIDEO_HEIGHT,
      seconds: VIDEO_SECONDS,
    });
    const videoBytes = await Deno.readFile(videoPath);
    const screenshots = SCREENSHOTS ?? dir;
    await Deno.mkdir(screenshots, { recursive: true });
    const errors: string[] = [];
    const tusConflicts: number[] = [];
    /** Error statuses a step provokes on purpose (refused uploads). */
    const expected = new Set<number>();
    const watch = (page: Page) =>
      watchPage(page, errors, (response) => {
        // A PATCH retried right after a dropped connection may meet the server still
        // finishing the broken one: 409 (offset moved on) or 423 (locked), and tus-js-client
        // asks for the offset again. Any other error answer is a failure.
        const retried = /\/uploads\/[0-9a-f-]{36}$/.test(response.url()) &&
          [409, 423].includes(response.status());
        if (retried) tusConflicts.push(response.status());
        return retried || expected.has(response.status());
      });

    // A video whose stored original is lost right after the upload (a failed disk, say):
    // its processing fails after the retries, and the admin view offers to reprocess it.
    const carol = await conversationWithMessage(served.ctx, "carol");
    const lost = await body<{ id: string; file_name: string }>(
      await uploadFile(served.ctx, "carol", carol.messageId, await fixture("h264.mp4"), "lost.mp4"),
    );
    for (const file of await listFiles(`${served.ctx.dataDir}/media`)) {
      if (file.includes(lost.id)) await Deno.remove(`${served.ctx.dataDir}/media/${file}`);
    }

    const alice = await browser.newContext({ viewport: { width: 1100, height: 760 } });
    let page!: Page;
    let conversationUrl = "";
    let attachmentId = "";
    // Later steps build on earlier ones: after a failure they are skipped, not timed out.
    let failed = false;
    const step = async (name: string, fn: () => Promise<void>) => {
      failed = !(await t.step({ name, ignore: failed, fn })) || failed;
    };

    await step("sign in (dev sign-in)", async () => {
      const signIn = await alice.newPage();
      watch(signIn);
      await signIn.goto(`${url}/`);
      await signIn.getByRole("heading", { name: "Sign in", level: 1 }).waitFor();
      await screenshot(signIn, "sign-in", screenshots);
      await signIn.close();
      page = await devSignIn(alice, url, "alice");
      watch(page);
      await page.getByText("alice", { exact: true }).waitFor();
    });

    await step("create a conversation with bob, then add dave", async () => {
      await page.getByLabel("Title (optional)").fill("Harbour trip");
      await page.getByLabel("Participants").fill("bob");
      await page.getByRole("button", { name: "Create conversation" }).click();
      await page.getByRole("heading", { name: "Harbour trip", level: 1 }).waitFor();
      conversationUrl = page.url();
      await page.locator("details.participants summary", { hasText: "2 participants" }).click();
      await page.getByLabel("Add a participant").fill("dave");
      await page.getByRole("button", { name: "Add", exact: true }).click();
      await page.locator(".chip", { hasText: "dave" }).waitFor();
      await page.locator(".conversation-list", { hasText: "3 participants" }).waitFor();
      await page.locator("details.participants summary", { hasText: "3 participants" }).click();
      assert.match(conversationUrl, /#\/c\/[0-9a-f-]{36}$/);
      // The limit and the formats are shown before anything is sent.
      const hint = await page.locator("#video-hint").textContent();
      assert.match(hint!, /Up to 8 MB/);
      assert.match(hint!, /MP4.*WebM.*AVI/);
    });

    await t.step(
      "send a video: the progress bar advances, a dropped connection resumes",
      async () => {
        // A slow uplink, so the progress bar has time to move.
        const cdp = await slowUplink(alice, page, 400 * 1024);
        const resumable = await page.evaluate<boolean>(
          "fetch('/api/ui/config').then((r) => r.json()).then((c) => c.resumable_upload_url !== null)",
        );
        assert.ok(resumable, "the server offers resumable uploads");
        await page.getByLabel("Message", { exact: true }).fill("The harbour at dusk");
        await page.locator("#video-file").setInputFiles(videoPath);
        await page.getByText(/Ready to send: Harbour walk\.mp4/).waitFor();
        // Every message the upload panel shows, however briefly.
        await page.evaluate(`(() => {
          globalThis.uploadStates = [];
          new MutationObserver(() => {
            const text = document.querySelector(".upload-state")?.textContent;
            if (text && globalThis.uploadStates.at(-1) !== text) globalThis.uploadStates.push(text);
          }).observe(document.body, { subtree: true, childList: true, characterData: true });
        })()`);
        await page.getByRole("button", { name: "Send" }).click();

        const bar = page.locator("#upload-progress");
        await bar.waitFor();
        const seen = new Set<number>();
        let figures = "";
        const max = Number(await bar.getAttribute("max"));
        assert.equal(max, videoBytes.length);
        let dropped = false;
        let shot = false;
        while (true) {
          // One look at the page per sample: the panel goes away when the upload is done.
          const sample = await page.evaluate<{ value: number; text: string } | null>(`(() => {
          const bar = document.querySelector("#upload-progress");
          if (!bar) return null;
          return {
            value: bar.value,
            text: document.querySelector(".upload-figures").textContent,
          };
        })()`);
          if (sample === null) break;
          const value = sample.value;
          seen.add(value);
          if (/\/s/.test(sample.text)) figures = sample.text;
          if (!shot && value > max * 0.3) {
            shot = true;
            await screenshot(page, "upload", screenshots);
          }
          if (!dropped && value > max * 0.3) {
            // The network drops every connection in the middle of the upload.
            dropped = served.dropConnections() > 0;
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        await cdp.detach();
        const intermediate = [...seen].filter((v) => v > 0 && v < max);
        assert.ok(intermediate.length >= 3, `progress values seen: ${[...seen].join(", ")}`);
        assert.ok(dropped, "the upload was interrupted once");
        const states = await page.evaluate<string[]>("globalThis.uploadStates");
        assert.ok(
          [...states].some((text) => /Connection lost/.test(text)),
          `the drop is shown: ${[...states].join(" | ")} (retried: ${tusConflicts.join(", ")})`,
        );
        assert.ok([...states].some((text) => /Resumed/.test(text)), "and the resumption");
        assert.match(figures, /of .* · .*\/s · /, "speed and time left are shown");
        assert.equal(await page.locator("#composer-error").textContent(), "");
      },
    );

    await step("the thumbnail appears with the duration badge", async () => {
      const card = page.locator("article.attachment").last();
      await card.waitFor();
      attachmentId = (await card.getAttribute("data-attachment-id"))!;
      assert.ok(attachmentId);
      await card.locator(".thumb img").waitFor({ timeout: 60_000 });
      // Only the events stream moves a card on (nothing else polls it): ready means SSE worked.
      await page.locator(`article[data-attachment-id="${attachmentId}"][data-status="ready"]`)
        .waitFor({ timeout: 90_000 });
      assert.equal(await card.locator(".badge.duration").textContent(), "0:08");
      const thumb = await card.locator(".thumb img").evaluate((img) => ({
        complete: (img as { complete: boolean }).complete,
        width: (img as { naturalWidth: number }).naturalWidth,
      }));
      assert.ok(thumb.complete && thumb.width > 0, "the thumbnail image loaded");
      await card.locator("details.metadata summary").click();
      const metadata = await card.locator("details.metadata dl").textContent();
      assert.match(metadata!, /640 × 360/);
      assert.match(metadata!, /h264/);
      assert.match(metadata!, /25 fps/);
      await screenshot(page, "conversation", screenshots);
    });

    await step("play inline: time advances, the size is right, seek to the middle", async () => {
      const card = page.locator(`article[data-attachment-id="${attachmentId}"]`);
      await card.getByRole("button", { name: /^Play Harbour walk\.mp4/ }).click();
      const video = card.locator("video");
      await video.waitFor();
      await page.waitForFunction(
        (el) => (el as VideoElement).currentTime > 0.5,
        await video.elementHandle(),
        { timeout: 30_000 },
      );
      const state = await video.evaluate((el) => {
        const v = el as VideoElement;
        return {
          width: v.videoWidth,
          height: v.videoHeight,
          duration: v.duration,
          poster: v.poster,
          track: v.querySelector("track")?.getAttribute("src") ?? "",
        };
      });
      assert.equal(state.width, VIDEO_WIDTH);
      assert.equal(state.height, VIDEO_HEIGHT);
      assert.ok(Math.abs(state.duration - VIDEO_SECONDS) < 0.5, `duration ${state.duration}`);
      assert.match(state.poster, /\/thumbnail\?token=/);
      assert.match(state.track, /\/storyboard\.vtt\?token=/);

      await video.evaluate((el) => {
        const v = el as VideoElement;
        v.pause();
        v.currentTime = v.duration / 2;
      });
      await page.waitForFunction(
        (el) => {
          const v = el as VideoElement;
          return !v.seeking && v.readyState >= 2 && Math.abs(v.currentTime - v.duration / 2) < 0.6;
        },
        await video.elementHandle(),
        { timeout: 15_000 },
      );

      // The seek bar's preview shows the storyboard tile under the pointer.
      const bar = card.locator(".seek-bar");
      const box = (await bar.boundingBox())!;
      await bar.hover({ position: { x: box.width * 0.75, y: box.height / 2 } });
      const preview = card.locator(".seek-preview");
      await preview.waitFor();
      const background = await preview.evaluate((el) =>
        (el as { style: { backgroundImage: string } }).style.backgroundImage
      );
      assert.match(background, /storyboard\.jpg\?token=/);
      await screenshot(page, "player", screenshots);
    });

    await step("pick a poster: a candidate, then the player's current frame", async () => {
      const card = page.locator(`article[data-attachment-id="${attachmentId}"]`);
      await card.locator("details.poster-picker summary").click();
      const candidates = card.locator(".poster-candidate");
      await candidates.nth(4).waitFor();
      assert.equal(await candidates.count(), 5);
      const chosen = (choose: () => Promise<void>) =>
        Promise.all([
          page.waitForResponse((r) =>
            r.url().endsWith("/poster") && r.request().method() === "PUT"
          ),
          choose(),
        ]).then(async ([response]) => {
          assert.equal(response.status(), 200);
          return await response.json() as {
            poster_time: number;
            poster_candidates: { time: number }[];
          };
        });
      const byCandidate = await chosen(() => candidates.nth(3).click());
      assert.equal(byCandidate.poster_time, byCandidate.poster_candidates[3]!.time);
      // The card shows the new state once it has read the attachment again (after the answer):
      // the fourth frame, and only it, pressed.
      await card.getByRole("button", { name: /^Use frame 4 /, pressed: true }).waitFor();
      assert.equal(await card.locator('.poster-candidate[aria-pressed="true"]').count(), 1);
      // The player is paused in the middle (the step before): that frame becomes the poster.
      const at = await card.locator("video").evaluate((el) => (el as VideoElement).currentTime);
      const byTime = await chosen(() =>
        card.getByRole("button", { name: "Use current frame" }).click()
      );
      assert.ok(Math.abs(byTime.poster_time - at) < 0.01, `${byTime.poster_time} vs ${at}`);
      const poster = await card.locator("video").evaluate((el) => (el as VideoElement).poster);
      assert.match(poster, /\/thumbnail\?token=.*size=poster/);
    });

    await step("captions: add an SRT from the dashboard and turn it on", async () => {
      const card = page.locator(`article[data-attachment-id="${attachmentId}"]`);
      await card.getByText("Add captions").click();
      await card.locator('input[name="file"]').setInputFiles({
        name: "harbour.srt",
        mimeType: "application/x-subrip",
        buffer: Buffer.from("1\n00:00:00,000 --> 00:00:30,000\nGulls over the <b>harbour</b>\n"),
      });
      await card.locator('input[name="label"]').fill("English");
      await card.getByRole("button", { name: "Add", exact: true }).click();
      const captions = card.getByLabel("Captions");
      await captions.waitFor();
      await captions.selectOption({ label: "English (en)" });
      const video = card.locator("video");
      await page.waitForFunction(
        (el) => {
          const tracks = [...(el as unknown as { textTracks: Iterable<CaptionTrack> }).textTracks];
          const shown = tracks.find((track) => track.mode === "showing");
          return shown?.label === "English" && (shown.cues?.length ?? 0) > 0 &&
            shown.cues![0]!.text === "Gulls over the <b>harbour</b>";
        },
        await video.elementHandle(),
        { timeout: 15_000 },
      );
      assert.equal(await card.locator(".player").getAttribute("data-captions") !== "off", true);
    });

    await step("download the original", async () => {
      const card = page.locator(`article[data-attachment-id="${attachmentId}"]`);
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        card.getByRole("link", { name: /^Download Harbour walk\.mp4/ }).click(),
      ]);
      assert.equal(download.suggestedFilename(), "Harbour walk.mp4");
      const saved = `${dir}/downloaded.mp4`;
      await download.saveAs(saved);
      assert.equal(await sha256(await Deno.readFile(saved)), await sha256(videoBytes));
    });

    await step("refusals say why, before and after sending", async () => {
      const error = page.locator("#composer-error");
      const file = page.locator("#video-file");
      await file.setInputFiles({
        name: "notes.txt",
        mimeType: "text/plain",
        buffer: Buffer.from("not a video"),
      });
      assert.match((await error.textContent())!, /not a video this server accepts.*MP4.*AVI/);
      await file.setInputFiles({
        name: "big.mp4",
        mimeType: "video/mp4",
        buffer: Buffer.alloc(MAX_UPLOAD_BYTES + 1024 * 1024),
      });
      assert.match((await error.textContent())!, /“big\.mp4” is 9 MB, over the 8 MB limit/);

      expected.add(415).add(422);
      const refusedBy = async (name: string, bytes: Uint8Array, pattern: RegExp) => {
        await file.setInputFiles({ name, mimeType: "video/mp4", buffer: Buffer.from(bytes) });
        await page.getByRole("button", { name: "Send" }).click();
        await page.waitForFunction(
          (el) => ((el as { textContent: string }).textContent ?? "").length > 0,
          await error.elementHandle(),
        );
        assert.match((await error.textContent())!, pattern);
      };
      // Named .mp4, but text: the server goes by the content.
      await refusedBy(
        "holiday.mp4",
        new TextEncoder().encode("This is not a video.\n".repeat(100)),
        /“holiday\.mp4” is not in an accepted format.*accepted formats: MP4.*AVI/,
      );
      // An MP4 header with nothing readable after it.
      const broken = new Uint8Array(4096).fill(7);
      broken.set(new TextEncoder().encode("\x00\x00\x00\x18ftypmp42"));
      await refusedBy("broken.mp4", broken, /“broken\.mp4” could not be used as a video\. \S/);
      expected.clear();
      await screenshot(page.locator("form.composer"), "refused", screenshots);
      // The refused uploads left no empty message behind in the list.
      assert.equal(await page.locator("li.message").count(), 1);
      assert.equal(await countRows(served.ctx, "uploads WHERE attachment_id IS NULL"), 0);
    });

    await step("cancel an upload: nothing is left on the server", async () => {
      const cdp = await slowUplink(alice, page, 64 * 1024);
      await page.locator("#video-file").setInputFiles(videoPath);
      await page.getByRole("button", { name: "Send" }).click();
      const bar = page.locator("#upload-progress");
      await page.waitForFunction(
        (el) => (el as { value: number }).value > 0,
        await bar.elementHandle(),
      );
      await page.getByRole("button", { name: "Cancel upload" }).click();
      await page.getByText("Upload cancelled").waitFor();
      assert.equal(await bar.count(), 0);
      await cdp.uploads(-1);
      await cdp.detach();
      // The upload was terminated on the server: no row, no bytes.
      for (
        let i = 0;
        i < 50 && await countRows(served.ctx, "uploads WHERE attachment_id IS NULL") > 0;
        i++
      ) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(await countRows(served.ctx, "uploads WHERE attachment_id IS NULL"), 0);
      const leftovers = await listFiles(`${served.ctx.dataDir}/tus`).catch(() => []);
      assert.deepEqual(leftovers, []);
      assert.equal(await page.locator("article.attachment").count(), 1);
    });

    await step("phone width: the conversation alone, readable", async () => {
      // The same tab (the session lives in sessionStorage), made phone-sized.
      const phone = page;
      await phone.setViewportSize({ width: 390, height: 844 });
      await phone.reload();
      await phone.getByRole("heading", { name: "Harbour trip", level: 1 }).waitFor();
      await phone.locator(`article[data-attachment-id="${attachmentId}"] .thumb img`).waitFor();
      assert.equal(await phone.locator(".sidebar").isVisible(), false);
      assert.equal(await phone.getByRole("link", { name: "← Conversations" }).isVisible(), true);
      const overflow = await phone.evaluate<number>(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth",
      );
      assert.ok(overflow <= 0, `no horizontal scrolling (${overflow}px too wide)`);
      await screenshot(phone, "phone", screenshots);
      await phone.setViewportSize({ width: 1100, height: 760 });
    });

    let longCard = "";
    await step(
      "keyboard: Tab to the file picker and Send, choose and send with the keys",
      async () => {
        // Every message an attachment card shows while processing, in order, with its status.
        await page.evaluate(`(() => {
        globalThis.cardStates = [];
        const look = () => {
          for (const card of document.querySelectorAll("article.attachment")) {
            const label = card.querySelector(".processing-label")?.textContent ?? "";
            const entry = card.getAttribute("aria-label") + "|" + card.dataset.status + "|" + label;
            if (globalThis.cardStates.at(-1) !== entry) globalThis.cardStates.push(entry);
          }
        };
        new MutationObserver(look).observe(document.body, {
          subtree: true,
          childList: true,
          characterData: true,
          attributes: true,
          attributeFilter: ["data-status"],
        });
      })()`);
        // Playwright turns file-chooser interception on when the first listener comes, without
        // waiting for it: a key press sent at once may open the native chooser (invisible,
        // headless) before, and no event ever comes (seen under load). Listening before the
        // Tabs puts that command ahead of tabTo's evaluations, which the page answers in order.
        const intercept = () => {};
        page.on("filechooser", intercept);
        // From the top of the page, with the keyboard only.
        await page.evaluate("document.activeElement?.blur(); window.scrollTo(0, 0)");
        const toPicker = await tabTo(page, (f) => f.id === "video-file", "the file picker");
        assert.ok(toPicker.length > 1, "the picker is not the first stop");
        const [chooser] = await Promise.all([
          page.waitForEvent("filechooser"),
          page.keyboard.press("Space"),
        ]);
        page.off("filechooser", intercept);
        await chooser.setFiles(await fixture("long.avi"));
        await page.getByText(/Ready to send: long\.avi/).waitFor();
        await tabTo(page, (f) => f.tag === "button" && f.name === "Send", "the Send button");
        await page.keyboard.press("Enter");
        const card = page.locator('article.attachment[aria-label="Video long.avi"]');
        await card.waitFor({ timeout: 30_000 });
        longCard = "Video long.avi";
      },
    );

    await step(
      "an MPEG-4 AVI shows its transcoding percent live, and gets a rendition",
      async () => {
        const card = page.locator(`article.attachment[aria-label="${longCard}"]`);
        await card.and(page.locator("[data-status='ready']")).waitFor({ timeout: 90_000 });
        const states = (await page.evaluate<string[]>("globalThis.cardStates"))
          .filter((entry) => entry.startsWith(`${longCard}|`));
        const ready = states.findIndex((entry) => entry.includes("|ready|"));
        assert.ok(ready > 0, `ready after processing: ${states.join(" / ")}`);
        const percents = states.slice(0, ready).map((entry) => /Processing… (\d+)%$/.exec(entry))
          .filter((m) => m !== null).map((m) => Number(m[1]));
        // Three jobs (thumbnail, rendition, storyboard) count a third each; only the
        // rendition reports progress while it runs, so a value off those steps is ffmpeg's.
        assert.ok(
          percents.some((n) => n > 0 && n < 100 && ![33, 66].includes(n)),
          `a transcoding percent before ready: ${states.join(" / ")}`,
        );
        for (let i = 1; i < percents.length; i++) {
          assert.ok(percents[i]! >= percents[i - 1]!, `percent only rises: ${percents}`);
        }
        const id = (await card.getAttribute("data-attachment-id"))!;
        const attachment = await body(
          await served.ctx.request("alice", `/api/chat/attachments/${id}`),
        );
        assert.equal(attachment.playback, "transcode", "MPEG-4 Part 2 needs a rendition");
      },
    );

    await step("keyboard: the player and the buttons work with Enter and Space", async () => {
      const card = page.locator(`article.attachment[aria-label="${longCard}"]`);
      // Back from Send to this card's play button.
      await tabTo(
        page,
        (f) => f.card === longCard && /^Play long\.avi/.test(f.name),
        "the play button",
        { back: true },
      );
      await page.keyboard.press("Enter");
      const video = card.locator("video");
      await video.waitFor();
      const playing = await focused(page);
      assert.equal(playing.tag, "video", "the player has the focus once it opens");
      assert.ok(playing.outlineStyle !== "none" && playing.outlineWidth > 0, "and shows it");
      await page.waitForFunction(
        (el) => (el as VideoElement).currentTime > 0.3,
        await video.elementHandle(),
        { timeout: 30_000 },
      ).catch(async (error) => {
        const state = await video.evaluate((el) => {
          const v = el as VideoElement & {
            paused: boolean;
            networkState: number;
            error: { code: number; message: string } | null;
            currentSrc: string;
          };
          return JSON.stringify({
            t: v.currentTime,
            paused: v.paused,
            ready: v.readyState,
            net: v.networkState,
            error: v.error && { code: v.error.code, message: v.error.message },
            src: v.currentSrc.replace(/token=.*/, "token=…"),
          });
        });
        throw new Error(`the rendition did not play: ${state}`, { cause: error });
      });
      // Space pauses the focused player, and plays it again.
      await page.keyboard.press("Space");
      await page.waitForFunction(
        (el) => (el as { paused: boolean }).paused,
        await video.elementHandle(),
      );
      await page.keyboard.press("Space");
      await page.waitForFunction(
        (el) => !(el as { paused: boolean }).paused,
        await video.elementHandle(),
      );
      await video.evaluate((el) => (el as VideoElement).pause());
      // The details toggle with Space; Download is reachable too.
      const fromPlayer = await tabTo(
        page,
        (f) => f.card === longCard && f.tag === "summary",
        "the details toggle",
      );
      // On the way: the player's own controls (play, timeline, volume…) take the focus.
      const controls = fromPlayer.filter((f) => f.tag === "video").length;
      assert.ok(controls >= 2, `Tab goes through the player's controls (${controls} stops)`);
      await page.keyboard.press("Space");
      await card.locator("details.metadata[open]").waitFor();
      assert.match((await card.locator("details.metadata dl").textContent())!, /mpeg4/);
      await tabTo(
        page,
        (f) => f.card === longCard && /^Download long\.avi/.test(f.name),
        "Download",
      );
    });

    await step("another user not in the conversation cannot see it", async () => {
      const mallory = await browser.newContext({ viewport: { width: 1100, height: 760 } });
      // This one pastes a token, as with an identity provider.
      const other = await mallory.newPage();
      await other.goto(`${url}/`);
      await other.getByLabel("Access token").fill("not-a-token");
      await other.getByRole("button", { name: "Sign in", exact: true }).click();
      await other.getByText("That does not look like a token").waitFor();
      await other.getByLabel("Access token").fill(await served.ctx.token("mallory"));
      await other.getByRole("button", { name: "Sign in", exact: true }).click();
      await other.getByRole("heading", { name: "Conversations", level: 1 }).waitFor();
      // (its 404s are the point here, so its page is not watched for errors)
      await other.getByText("No conversations yet").waitFor();
      await other.goto(conversationUrl);
      await other.getByRole("heading", { name: "Conversation not found" }).waitFor();
      const status = await other.evaluate(async (id) => {
        const token = sessionStorage.getItem("offchat.token");
        const response = await fetch(`/api/chat/attachments/${id}`, {
          headers: { authorization: `Bearer ${token}` },
        });
        return response.status;
      }, attachmentId);
      assert.equal(status, 404);
      // Signing out forgets the URLs of unfinished resumable uploads: the next person to
      // sign in on this browser must not learn them (security finding 1).
      await other.evaluate(() =>
        localStorage.setItem("tus::offchat/mallory/c/clip.mp4::1", '{"uploadUrl":"/u/1"}')
      );
      await other.goto(`${url}/`);
      await other.getByRole("button", { name: "Sign out" }).click();
      await other.getByLabel("Access token").waitFor();
      const remembered = await other.evaluate(() =>
        Object.keys(localStorage).filter((key) => key.startsWith("tus::"))
      );
      assert.deepEqual(remembered, []);
      await mallory.close();
    });

    await step("admin: the upload and the download in the activity log", async () => {
      const root = await browser.newContext({ viewport: { width: 1100, height: 900 } });
      const admin = await devSignIn(root, url, "root", true);
      watch(admin);
      await admin.getByRole("link", { name: "Admin" }).click();
      await admin.getByRole("heading", { name: "Activity log" }).waitFor();
      const log = admin.locator("table.activity tbody");
      await log.locator("tr[data-action='video.upload']").first().waitFor();
      await log.locator("tr[data-action='video.download']").first().waitFor();
      assert.match(
        (await log.locator("tr[data-action='video.download']").first().textContent())!,
        /alice/,
      );
      await admin.getByRole("heading", { name: "Storage used" }).waitFor();
      await admin.locator(".stat-grid").waitFor();
      await screenshot(admin, "admin", screenshots);

      // Filters: only alice's downloads.
      await admin.getByLabel("User").fill("alice");
      await admin.getByLabel("Action").selectOption("video.download");
      await admin.getByRole("button", { name: "Apply filters" }).click();
      const onlyDownloads = async () => {
        const actions = await log.locator("tr").evaluateAll((rows) =>
          rows.map((row) => (row as unknown as { dataset: { action: string } }).dataset.action)
        );
        return actions.length > 0 && actions.every((action) => action === "video.download");
      };
      for (let i = 0; i < 50 && !(await onlyDownloads()); i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.ok(await onlyDownloads(), "the filter leaves only downloads");
      assert.ok(await log.locator("tr").count() >= 1);

      // The date filter: two entries from an earlier day, by another user.
      for (const hour of [9, 15]) {
        await recordActivity(served.ctx.deps.db, { action: "video.download" }, {
          context: { actorId: "erin", ip: null, userAgent: null },
          at: new Date(Date.UTC(2025, 0, 15, hour)),
        });
      }
      const shown = async () =>
        await log.locator("tr").evaluateAll((rows) =>
          rows.map((row) =>
            Array.from((row as unknown as { cells: { textContent: string }[] }).cells)
              .slice(0, 2).map((cell) => cell.textContent).join(" ")
          )
        );
      const summary = admin.locator("section[aria-labelledby='activity-heading'] p[role='status']");
      const apply = async (from: string, to: string, settled: (rows: string[]) => boolean) => {
        await admin.getByLabel("User").fill("");
        await admin.getByLabel("Action").selectOption("");
        await admin.getByLabel("From", { exact: true }).fill(from);
        await admin.getByLabel("To", { exact: true }).fill(to);
        await admin.getByRole("button", { name: "Apply filters" }).click();
        let rows = await shown();
        for (let i = 0; i < 50 && !settled(rows); i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          rows = await shown();
        }
        return rows;
      };
      const everything = await apply("", "", (rows) => rows.some((r) => r.includes("erin")));
      assert.ok(everything.length > 2, `without dates, every entry: ${everything.length}`);
      const thatDay = await apply("2025-01-15", "2025-01-15", (rows) => rows.length === 2);
      assert.equal(thatDay.length, 2, `only that day: ${thatDay.join(" / ")}`);
      assert.ok(thatDay.every((r) => r.includes("erin")), thatDay.join(" / "));
      const today = await admin.evaluate<string>(
        "new Date().toLocaleDateString('sv-SE')", // YYYY-MM-DD, local
      );
      const sinceToday = await apply(today, "", (rows) => !rows.some((r) => r.includes("erin")));
      assert.ok(!sinceToday.some((r) => r.includes("erin")), "from today: not the old ones");
      assert.equal(sinceToday.length, everything.length - 2, "but every entry of today");
      await apply("", "2025-01-14", (rows) => rows.length === 0);
      assert.equal(await log.locator("tr").count(), 0);
      assert.equal(await summary.textContent(), "No activity matches these filters.");
      await apply("", "", (rows) => rows.length === everything.length);

      // The video whose file was lost: failed, and reprocessed from here.
      const attention = admin.locator(`li.attention-item[data-attachment-id="${lost.id}"]`);
      const status = admin.getByLabel("Show");
      for (let i = 0; i < 60 && await attention.count() === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        await status.selectOption("processing");
        await status.selectOption("failed");
      }
      await attention.waitFor({ timeout: 1000 });
      assert.match((await attention.textContent())!, /lost\.mp4.*failed/s);
      await attention.getByRole("button", { name: "Reprocess" }).click();
      await admin.getByText("Reprocessing lost.mp4").waitFor();
      await attention.waitFor({ state: "detached" });
      await root.close();
    });

    await step("a poll during an upload shows the message, and the video joins it", async () => {
      // The conversation is polled for new messages: one that lands while a video uploads
      // shows its message, text only; the video must still join that message when the
      // upload ends (it used to be dropped, as the message was already shown). The page's
      // clock lets the test fire the poll inside the upload instead of hoping for it.
      const created = await postJson(served.ctx, "bob", "/api/chat/conversations", {
        title: "Poll race",
        participant_ids: ["alice"],
      });
      assert.equal(created.status, 201);
      const { id } = await body<{ id: string }>(created);
      const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
      await context.clock.install();
      const bob = await devSignIn(context, url, "bob");
      watch(bob);
      await bob.goto(`${url}/#/c/${id}`);
      await bob.getByRole("heading", { name: "Poll race", level: 1 }).waitFor();
      // Slow enough (the 190 kB file takes 24 s) that the upload outlasts the poll many
      // times over; the throttle is lifted once the poll has shown the message.
      const cdp = await slowUplink(context, bob, 8 * 1024);
      await bob.getByLabel("Message", { exact: true }).fill("Seen before its video");
      await bob.locator("#video-file").setInputFiles(await fixture("h264.mp4"));
      await bob.getByRole("button", { name: "Send" }).click();
      const bar = bob.locator("#upload-progress");
      // Bytes are moving, so the message exists on the server.
      await bob.waitForFunction(
        (el) => (el as { value: number }).value > 0,
        await bar.elementHandle(),
      );
      // Every due timer fires once: the poll among them.
      await bob.clock.fastForward("01:00");
      const message = bob.locator("li.message", { hasText: "Seen before its video" });
      await message.waitFor();
      assert.equal(await bar.count(), 1, "the poll showed the message while the video uploaded");
      assert.equal(await message.locator("article.attachment").count(), 0);
      await cdp.uploads(-1);
      await cdp.detach();
      await message.locator('article.attachment[aria-label="Video h264.mp4"]').waitFor();
      await bar.waitFor({ state: "detached" });
      assert.equal(await message.locator("article.attachment").count(), 1);
      assert.equal(await bob.locator("li.message").count(), 1);
      await context.close();
    });

    await step("a user in many conversations sees them all, a page at a time", async () => {
      // (Last: its 56 activity rows would push the uploads off the admin view's first page.)
      // 56 conversations, by two creators (each within MAX_CONVERSATIONS_PER_HOUR).
      for (let i = 0; i < 56; i++) {
        const created = await postJson(
          served.ctx,
          i % 2 ? "frank" : "grace",
          "/api/chat/conversations",
          {
            title: `Crowd ${String(i).padStart(2, "0")}`,
            participant_ids: ["hana"],
          },
        );
        assert.equal(created.status, 201);
        await created.body?.cancel();
      }
      const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
      const hana = await devSignIn(context, url, "hana");
      watch(hana);
      const items = hana.locator(".conversation-list li a");
      await items.nth(49).waitFor();
      assert.equal(await items.count(), 50);
      assert.equal(await items.first().locator(".conversation-name").textContent(), "Crowd 55");
      await hana.getByRole("button", { name: "Load more conversations" }).click();
      await items.nth(55).waitFor();
      assert.equal(await items.count(), 56);
      assert.equal(await items.last().locator(".conversation-name").textContent(), "Crowd 00");
      await hana.getByRole("button", { name: "Load more conversations" }).waitFor({
        state: "hidden",
      });
      await context.close();
    });

    await alice.close();
    assert.deepEqual(errors, [], "no script errors in the pages");
  },
});

/** The player's state as the test reads it inside the page. */
interface PlayerState {
  engine: string | null;
  levelHeight: string | null;
  src: string;
  time: number;
  paused: boolean;
  seeking: boolean;
  ready: number;
  videoHeight: number;
}

/** What `.player` and its <video> say (inside the page: no DOM types here). */
function readPlayer(el: unknown): PlayerState {
  const player = el as {
    dataset: Record<string, string | undefined>;
    querySelector(s: string): unknown;
  };
  const video = player.querySelector("video") as VideoElement & {
    currentSrc: string;
    paused: boolean;
  };
  return {
    engine: player.dataset.engine ?? null,
    levelHeight: player.dataset.levelHeight ?? null,
    src: video.currentSrc,
    time: video.currentTime,
    paused: video.paused,
    seeking: video.seeking,
    ready: video.readyState,
    videoHeight: video.videoHeight,
  };
}

/** What the test waits for in a player; each condition given must hold. */
interface PlayerWanted {
  engine?: string;
  /** currentTime above this. */
  after?: number;
  /** currentTime within half a second of this, not seeking, with a frame to show. */
  near?: number;
  levelHeight?: number;
  videoHeight?: number;
  playing?: boolean;
}

/**
 * Waits until the player is in the `wanted` state (checked in the page on every animation
 * frame); fails saying `what`, with the last state seen.
 */
async function playerReaches(
  page: Page,
  player: Locator,
  what: string,
  wanted: PlayerWanted,
): Promise<PlayerState> {
  await page.waitForFunction(
    ([el, want]) => {
      const player = el as unknown as {
        dataset: Record<string, string | undefined>;
        querySelector(s: string): VideoElement & { paused: boolean };
      };
      const video = player.querySelector("video");
      const time = video.currentTime;
      return (want.engine === undefined || player.dataset.engine === want.engine) &&
        (want.after === undefined || time > want.after) &&
        (want.near === undefined ||
          (Math.abs(time - want.near) < 0.5 && !video.seeking && video.readyState >= 2)) &&
        (want.levelHeight === undefined ||
          player.dataset.levelHeight === String(want.levelHeight)) &&
        (want.videoHeight === undefined || video.videoHeight === want.videoHeight) &&
        (want.playing === undefined || video.paused !== want.playing);
    },
    [await player.elementHandle(), wanted] as const,
    { timeout: 30_000 },
  ).catch(async (error) => {
    const state = await player.evaluate(readPlayer);
    throw new Error(`${what}: ${JSON.stringify(state)}`, { cause: error });
  });
  return await player.evaluate(readPlayer);
}

Deno.test({
  name: "dashboard: a receiver plays a video before it is processed, then adaptively with a " +
    "quality choice; a short clip plays its progressive file",
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "offchat-e2e-hls-" });
    await using _dir = { [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }) };
    // No worker: the test runs each job itself, so it can look at the page between two.
    // A ladder from 4 s, so a short fixture gets one; the fixtures are 1.5 Mb/s, so the bitrate
    // rule is off and the 3 s clip, like a light phone clip, stays progressive only.
    await using served = await serveApp({ HLS_MIN_DURATION: "4", HLS_MIN_BITRATE: "0" }, {
      worker: false,
    });
    await using browser = await launchChromium();
    const { url } = served;
    // 720p makes a ladder of two rungs (360p and 720p); 8 s of it outlasts a switch.
    const [ladderClip, shortClip] = await Promise.all([
      makeVideo(dir, "Lighthouse.mp4", { width: 1280, height: 720, seconds: 8 }),
      makeVideo(dir, "Wave.mp4", { width: 640, height: 360, seconds: 3 }),
    ]);
    const queue = new JobQueue({
      db: served.ctx.deps.db,
      workerId: "e2e",
      leaseMs: 120_000,
      clock: () => new Date(),
    });
    const runNext = async (kind: string) => {
      const job = await queue.claim();
      assert.equal(job?.kind, kind, `the next job is the ${kind}`);
      await runJob(served.ctx.deps, job!, { progress: () => {} });
      await queue.complete(job!);
    };
    const runAll = async () => {
      for (let job = await queue.claim(); job; job = await queue.claim()) {
        await runJob(served.ctx.deps, job, { progress: () => {} });
        await queue.complete(job);
      }
    };
    const errors: string[] = [];
    const created = await postJson(served.ctx, "alice", "/api/chat/conversations", {
      title: "Lighthouse",
      participant_ids: ["bob"],
    });
    assert.equal(created.status, 201);
    const conversationUrl = `${url}/#/c/${(await body<{ id: string }>(created)).id}`;

    const sender = await browser.newContext({ viewport: { width: 1100, height: 760 } });
    const alice = await devSignIn(sender, url, "alice");
    watchPage(alice, errors);
    await alice.goto(conversationUrl);
    await alice.getByRole("heading", { name: "Lighthouse", level: 1 }).waitFor();
    const receiver = await browser.newContext({ viewport: { width: 1100, height: 760 } });
    const bob = await devSignIn(receiver, url, "bob");
    /** Set when the test removes the ladder's master playlist: its 404s are on purpose. */
    let ladderLost = false;
    watchPage(
      bob,
      errors,
      (response) =>
        ladderLost && response.status() === 404 && response.url().endsWith("/master.m3u8"),
    );
    const hlsBundleRequests: string[] = [];
    bob.on("request", (request) => {
      if (request.url().endsWith("/vendor/hls.min.js")) hlsBundleRequests.push(request.url());
    });
    /** Alice sends a video from the dashboard; the upload is done when its card shows. */
    const send = async (path: string, text: string) => {
      await alice.getByLabel("Message", { exact: true }).fill(text);
      await alice.locator("#video-file").setInputFiles(path);
      await alice.getByRole("button", { name: "Send" }).click();
      const name = path.slice(path.lastIndexOf("/") + 1);
      const card = alice.locator(`article.attachment[aria-label="Video ${name}"]`);
      await card.waitFor({ timeout: 30_000 });
      await alice.locator("#upload-progress").waitFor({ state: "detached" });
      return (await card.getAttribute("data-attachment-id"))!;
    };
    let failed = false;
    const step = async (name: string, fn: () => Promise<void>) => {
      failed = !(await t.step({ name, ignore: failed, fn })) || failed;
    };

    await step("a 3 s clip plays from its progressive file at once", async () => {
      const id = await send(shortClip, "A short one");
      await runAll();
      await bob.goto(conversationUrl);
      const card = bob.locator(`article[data-attachment-id="${id}"][data-status="ready"]`);
      await card.waitFor();
      const attachment = await body(await served.ctx.request("bob", `/api/chat/attachments/${id}`));
      assert.equal(attachment.hls_url, null, "shorter than HLS_MIN_DURATION: no ladder");
      await card.getByRole("button", { name: /^Play Wave\.mp4/ }).click();
      const player = card.locator(".player");
      const state = await playerReaches(
        bob,
        player,
        "the progressive file did not play",
        { engine: "progressive", after: 0.5 },
      );
      assert.match(state.src, /\/api\/chat\/videos\/[0-9a-f-]{36}\/stream\?token=/);
      assert.equal(await card.getByLabel("Quality").isVisible(), false, "no quality choice");
      assert.deepEqual(hlsBundleRequests, [], "hls.js is not loaded for a clip without a ladder");
    });

    let ladderId = "";
    await step("the receiver can play a video while it is still processing", async () => {
      ladderId = await send(ladderClip, "The lighthouse");
      await bob.reload();
      const card = bob.locator(`article[data-attachment-id="${ladderId}"]`);
      await card.and(bob.locator('[data-status="processing"][data-playable="false"]')).waitFor();
      const button = card.locator("button.thumb");
      assert.equal(await button.isDisabled(), true, "nothing to play yet");
      await runNext("thumbnail");
      await card.locator(".thumb img").waitFor();
      await runNext("strip");
      await runNext("subtitles");
      await runNext("rendition");
      // The first playable file exists; the ladder and the storyboard are still to come.
      await card.and(bob.locator('[data-status="processing"][data-playable="true"]')).waitFor();
      assert.equal(
        await card.locator(".playable-note").textContent(),
        "Ready to watch. Still processing: more qualities may follow.",
      );
      assert.match((await card.locator(".processing-label").textContent())!, /^Processing…/);
      await screenshot(bob, "playable-early", SCREENSHOTS ?? dir);
      await card.getByRole("button", { name: /^Play Lighthouse\.mp4/ }).click();
      const player = card.locator(".player");
      const state = await playerReaches(
        bob,
        player,
        "the video did not play while processing",
        { engine: "progressive", after: 0.5 },
      );
      assert.match(state.src, /\/stream\?token=/);
      assert.deepEqual(hlsBundleRequests, [], "hls.js waits for a ladder");
    });

    await step("the ladder takes over the open player, at the same point", async () => {
      const card = bob.locator(`article[data-attachment-id="${ladderId}"]`);
      const player = card.locator(".player");
      // Paused by the viewer, so that the point to go on from stays put.
      const at = await player.locator("video").evaluate((el) => {
        const video = el as VideoElement;
        video.pause();
        return video.currentTime;
      });
      await runNext("hls");
      const state = await playerReaches(
        bob,
        player,
        "hls.js did not take over",
        { engine: "hls.js", near: at },
      );
      assert.match(state.src, /^blob:/, "a MediaSource, fed by hls.js");
      assert.equal(state.paused, true, "still paused, as the viewer left it");
      assert.equal(hlsBundleRequests.length, 1, "hls.js is loaded once it is needed");
      assert.equal(
        await card.locator(".playable-note").textContent(),
        "Ready to watch. Still processing: seek previews coming.",
      );
      await player.locator("video").evaluate((el) => (el as { play(): Promise<void> }).play());
      await playerReaches(
        bob,
        player,
        "the ladder did not play on",
        { engine: "hls.js", after: at + 0.5 },
      );
      // The storyboard, made last, joins the open player; then the video is ready.
      assert.equal(await player.locator(".seek-bar").count(), 0);
      await runNext("storyboard");
      await card.and(bob.locator('[data-status="ready"]')).waitFor();
      await player.locator(".seek-bar").waitFor();
      assert.equal(await card.locator(".playable-note").count(), 0);
    });

    await step("a ladder plays with hls.js; choosing a quality switches the rung", async () => {
      await bob.reload();
      const card = bob.locator(`article[data-attachment-id="${ladderId}"][data-status="ready"]`);
      await card.getByRole("button", { name: /^Play Lighthouse\.mp4/ }).click();
      const player = card.locator(".player");
      const state = await playerReaches(
        bob,
        player,
        "hls.js did not play",
        { engine: "hls.js", after: 0.3 },
      );
      assert.match(state.src, /^blob:/);
      const quality = card.getByLabel("Quality");
      await quality.waitFor();
      const labels = await quality.locator("option").allTextContents();
      assert.match(labels[0]!, /^Auto/);
      assert.deepEqual(labels.slice(1), ["720p", "360p"], "one entry per rung, best first");
      assert.equal(await quality.inputValue(), "-1", "Auto at first");
      for (const height of [720, 360]) {
        // From the start again, so that the clip outlasts the switch, however slow the machine.
        await player.locator("video").evaluate((el) => (el as VideoElement).currentTime = 0);
        await quality.selectOption({ label: `${height}p` });
        const switched = await playerReaches(
          bob,
          player,
          `no switch to ${height}p`,
          { engine: "hls.js", levelHeight: height, videoHeight: height, playing: true },
        );
        assert.equal(switched.engine, "hls.js");
      }
      // Back to Auto, which names the rung it plays once hls.js picks one.
      await quality.selectOption("-1");
      await quality.locator("option", { hasText: /^Auto \((360|720)p\)$/ }).waitFor({
        state: "attached",
      });
      await screenshot(card, "quality", SCREENSHOTS ?? dir);
    });

    await step("a ladder that fails goes on with the progressive file", async () => {
      // The ladder's master playlist is lost on the server (a failed disk, say).
      ladderLost = true;
      const lost = (await listFiles(`${served.ctx.dataDir}/hls`))
        .filter((file) => file.endsWith("/master.m3u8"));
      assert.equal(lost.length, 1);
      await Deno.remove(`${served.ctx.dataDir}/hls/${lost[0]}`);
      await bob.reload();
      const card = bob.locator(`article[data-attachment-id="${ladderId}"][data-status="ready"]`);
      await card.getByRole("button", { name: /^Play Lighthouse\.mp4/ }).click();
      const player = card.locator(".player");
      const state = await playerReaches(
        bob,
        player,
        "the progressive file did not take over",
        { engine: "progressive", after: 0.5 },
      );
      assert.match(state.src, /\/stream\?token=/);
      assert.equal(await card.getByLabel("Quality").isVisible(), false);
    });

    await sender.close();
    await receiver.close();
    assert.deepEqual(errors, [], "no script errors in the pages");
  },
});
