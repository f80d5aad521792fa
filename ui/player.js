/**
 * One video attachment in a message: thumbnail with its duration, live
 * processing state over SSE, the inline player with storyboard seek previews,
 * the metadata panel, download and delete.
 */
import { api, session } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { formatBytes, formatDuration, formatTime } from "./format.js";

const MEDIA_FIELDS = [
  "url",
  "original_url",
  "stream_url",
  "thumbnail_url",
  "storyboard_url",
  "events_url",
];

/**
 * The media URLs, on the page's own origin. They are signed on PUBLIC_URL,
 * which may name this server differently (localhost vs 127.0.0.1, say); the
 * event stream and the storyboard track only load from the page's origin.
 * The token does not depend on the host, so only the origin changes.
 */
function onThisOrigin(attachment) {
  const local = { ...attachment };
  for (const field of MEDIA_FIELDS) {
    if (!local[field]) continue;
    const url = new URL(local[field], location.href);
    if (url.origin !== location.origin && url.pathname.startsWith("/api/chat/")) {
      local[field] = `${location.origin}${url.pathname}${url.search}`;
    }
  }
  return local;
}

/** How often, at most, a processing attachment is re-read to pick up its thumbnail. */
const REFRESH_MS = 1000;

function metadataRows(a) {
  const rows = [
    ["File", a.file_name],
    ["Size", `${formatBytes(a.file_size)} (${a.file_size.toLocaleString()} bytes)`],
    ["Type", `${a.mime_type} (${a.container})`],
    ["Duration", a.duration === null ? "–" : `${formatDuration(a.duration)} (${a.duration} s)`],
    ["Dimensions", a.width && a.height ? `${a.width} × ${a.height}` : "–"],
    ["Video codec", a.codec ?? "–"],
    ["Frame rate", a.fps ? `${Math.round(a.fps * 100) / 100} fps` : "–"],
    ["Bitrate", a.bitrate ? `${a.bitrate.toLocaleString()} kbit/s` : "–"],
    ["Pixel format", a.pix_fmt ?? "–"],
    ["Colour", [a.color_space, a.hdr ? "HDR" : null].filter(Boolean).join(", ") || "–"],
    [
      "Audio",
      a.has_audio
        ? [
          a.audio_codec,
          a.audio_channels ? `${a.audio_channels} ch` : null,
          a.audio_sample_rate ? `${a.audio_sample_rate} Hz` : null,
        ].filter(Boolean).join(", ")
        : "none",
    ],
    ["Playback", a.playback ?? "not decided yet"],
    ["Uploaded", `${formatTime(a.uploaded_at)} by ${a.uploader_id}`],
    ["Processed", formatTime(a.processed_at)],
    ["SHA-256", a.sha256],
  ];
  return rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]);
}

/** The storyboard tile for a time, from the metadata track's cues (`URL#xywh=x,y,w,h`). */
function tileAt(track, time) {
  const cues = Array.from(track?.cues ?? []);
  const cue = cues.find((c) => time >= c.startTime && time < c.endTime) ?? cues.at(-1);
  if (!cue) return null;
  const [url, xywh] = cue.text.split("#xywh=");
  const [x, y, w, hgt] = (xywh ?? "").split(",").map(Number);
  if (![x, y, w, hgt].every(Number.isFinite)) return null;
  return { url, x, y, w, h: hgt };
}

/** Seek bar previews under the video; the native controls keep keyboard seeking. */
function previewBar(video, track) {
  const tile = h("div", { class: "seek-preview", hidden: true }, h("span", { class: "seek-time" }));
  const bar = h(
    "div",
    {
      class: "seek-bar",
      "aria-hidden": "true",
      title: "Hover to preview, click to seek",
    },
    h("div", { class: "seek-fill" }),
    tile,
  );
  const fill = bar.firstChild;
  const timeAt = (event) => {
    const box = bar.getBoundingClientRect();
    const fraction = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    return { time: fraction * video.duration, left: event.clientX - box.left, width: box.width };
  };
  bar.addEventListener("pointermove", (event) => {
    const { time, left, width } = timeAt(event);
    if (!Number.isFinite(time)) return;
    const found = tileAt(track, time);
    tile.hidden = false;
    tile.firstChild.textContent = formatDuration(time);
    const w = found?.w ?? 96;
    Object.assign(tile.style, {
      width: `${w}px`,
      height: `${found?.h ?? 20}px`,
      left: `${Math.min(Math.max(0, left - w / 2), Math.max(0, width - w))}px`,
      backgroundImage: found ? `url("${found.url}")` : "none",
      backgroundPosition: found ? `-${found.x}px -${found.y}px` : "0 0",
    });
  });
  bar.addEventListener("pointerleave", () => (tile.hidden = true));
  bar.addEventListener("click", (event) => {
    const { time } = timeAt(event);
    if (Number.isFinite(time)) video.currentTime = time;
  });
  video.addEventListener("timeupdate", () => {
    const fraction = video.duration ? video.currentTime / video.duration : 0;
    fill.style.width = `${fraction * 100}%`;
  });
  return bar;
}

/**
 * Renders an attachment; `scope` collects what to close when the view goes
 * (event streams), `onChange(attachment)` tells the owner about a new state.
 */
export function attachmentCard(initial, scope) {
  let attachment = onThisOrigin(initial);
  let events = null;
  let lastRefresh = 0;
  let percent = null;
  const card = h("article", {
    class: "attachment",
    dataset: { attachmentId: initial.id },
    "aria-label": `Video ${initial.file_name}`,
  });

  const refresh = async () => {
    lastRefresh = Date.now();
    try {
      attachment = onThisOrigin(await api(`/api/chat/attachments/${attachment.id}`));
      render();
    } catch (problem) {
      if (problem.status === 404) {
        card.replaceWith(h("p", { class: "muted" }, "This video was deleted."));
        stopEvents();
      }
    }
  };

  function stopEvents() {
    events?.close();
    events = null;
  }

  function follow() {
    if (events || attachment.status !== "processing") return;
    events = new EventSource(attachment.events_url);
    scope.onClose(stopEvents);
    events.addEventListener("progress", (event) => {
      percent = JSON.parse(event.data).percent;
      const bar = card.querySelector(".processing progress");
      if (bar) {
        bar.value = percent;
        bar.textContent = `${percent}%`;
        card.querySelector(".processing-label").textContent = `Processing… ${percent}%`;
      }
      if (!attachment.thumbnail_url && Date.now() - lastRefresh > REFRESH_MS) refresh();
    });
    events.addEventListener("status", (event) => {
      const { status } = JSON.parse(event.data);
      if (status === "processing") return;
      stopEvents();
      refresh();
    });
    events.addEventListener("error", () => {
      // Closed for good (an expired signed URL, say): read the state and follow again.
      if (events?.readyState === EventSource.CLOSED) {
        stopEvents();
        setTimeout(() => refresh().then(follow), 2000);
      }
    });
  }

  function play(thumbButton) {
    api(`/api/chat/attachments/${attachment.id}`).then(onThisOrigin).then((fresh) => {
      // Signed URLs last an hour: play from a fresh copy.
      attachment = fresh;
      if (!fresh.stream_url) return render();
      const video = h("video", {
        class: "player-video",
        controls: true,
        autoplay: true,
        playsInline: true,
        preload: "metadata",
        poster: fresh.thumbnail_url ?? undefined,
        src: fresh.stream_url,
        "aria-label": `Playing ${fresh.file_name}`,
      });
      let track = null;
      if (fresh.storyboard_url) {
        const element = h("track", {
          kind: "metadata",
          label: "Storyboard",
          src: fresh.storyboard_url,
        });
        video.append(element);
        track = element.track;
        track.mode = "hidden";
      }
      const player = h(
        "div",
        { class: "player" },
        video,
        track ? previewBar(video, track) : null,
      );
      thumbButton.replaceWith(player);
      video.focus();
    }).catch((problem) => toast(problem.message, "error"));
  }

  function thumbnail() {
    const a = attachment;
    const label = a.status === "ready"
      ? `Play ${a.file_name}${a.duration_formatted ? `, ${a.duration_formatted}` : ""}`
      : `${a.file_name} (${a.status})`;
    const button = h(
      "button",
      {
        type: "button",
        class: "thumb",
        "aria-label": label,
        disabled: a.status !== "ready",
        onclick: () => play(button),
      },
      a.thumbnail_url
        ? h("img", {
          src: a.thumbnail_url,
          alt: "",
          width: 320,
          height: a.width && a.height ? Math.round(320 * a.height / a.width) : 180,
          loading: "lazy",
          decoding: "async",
        })
        : h("span", { class: "thumb-placeholder" }, a.status === "failed" ? "⚠" : "…"),
      a.duration_formatted
        ? h("span", { class: "badge duration", "aria-hidden": "true" }, a.duration_formatted)
        : null,
      a.status === "ready" ? h("span", { class: "play-icon", "aria-hidden": "true" }) : null,
    );
    return button;
  }

  function statusLine() {
    const a = attachment;
    if (a.status === "processing") {
      return h(
        "div",
        { class: "processing" },
        h(
          "span",
          { class: "processing-label", role: "status" },
          percent === null ? "Processing…" : `Processing… ${percent}%`,
        ),
        h("progress", {
          max: 100,
          value: percent ?? 0,
          "aria-label": `Processing ${a.file_name}`,
        }),
      );
    }
    if (a.status === "failed") {
      return h(
        "p",
        { class: "error", role: "alert" },
        `Processing failed: ${a.error ?? "unknown reason"}`,
      );
    }
    return null;
  }

  function actions() {
    const a = attachment;
    const mayDelete = session.user?.admin || session.user?.id === a.uploader_id;
    return h(
      "div",
      { class: "attachment-actions" },
      h("a", {
        class: "button",
        // The uploader downloads their own file as it was sent; everyone else gets the copy
        // without its metadata (location, device, dates).
        href: a.original_url ?? a.url,
        download: a.file_name,
        "aria-label": `Download ${a.file_name} (${formatBytes(a.file_size)})`,
      }, "Download"),
      mayDelete
        ? h("button", {
          type: "button",
          class: "button-quiet",
          onclick: async () => {
            if (!confirm(`Delete “${a.file_name}” for everyone in this conversation?`)) return;
            try {
              await api(`/api/chat/attachments/${a.id}`, { method: "DELETE" });
              stopEvents();
              card.replaceWith(h("p", { class: "muted" }, "Video deleted."));
            } catch (problem) {
              toast(problem.message, "error");
            }
          },
        }, "Delete")
        : null,
    );
  }

  function render() {
    const a = attachment;
    replace(
      card,
      thumbnail(),
      h(
        "div",
        { class: "attachment-body" },
        h(
          "p",
          { class: "attachment-title" },
          h("span", { class: "file-name" }, a.file_name),
          " ",
          h(
            "span",
            { class: "muted" },
            [formatBytes(a.file_size), a.width ? `${a.width}×${a.height}` : null]
              .filter(Boolean).join(" · "),
          ),
        ),
        statusLine(),
        h(
          "details",
          { class: "metadata" },
          h("summary", {}, "Details"),
          h("dl", {}, metadataRows(a)),
        ),
        actions(),
      ),
    );
    card.dataset.status = a.status;
    follow();
  }

  render();
  return card;
}
