/**
 * One video attachment in a message: thumbnail with its duration, live
 * processing state over SSE, the inline player (adaptive when the video has a
 * ladder, with a quality menu) with storyboard seek previews, the metadata
 * panel, download and delete. A video plays as soon as it is `playable`,
 * while the rest is still being made.
 */
import { api, session, upload } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { formatBytes, formatDuration, formatQuality, formatTime } from "./format.js";
import { playAttachment } from "./stream.js";
import { thumbHashToRGBA } from "./vendor/thumbhash.js";

const MEDIA_FIELDS = [
  "url",
  "original_url",
  "stream_url",
  "hls_url",
  "dash_url",
  "thumbnail_url",
  "poster_url",
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
  const here = (value) => {
    const url = new URL(value, location.href);
    return url.origin !== location.origin && url.pathname.startsWith("/api/chat/")
      ? `${location.origin}${url.pathname}${url.search}`
      : value;
  };
  for (const field of MEDIA_FIELDS) {
    if (local[field]) local[field] = here(local[field]);
  }
  local.poster_candidates = (local.poster_candidates ?? []).map((c) => ({
    ...c,
    url: here(c.url),
  }));
  // Subtitle tracks load like the storyboard: from the page's origin only.
  local.subtitles = (local.subtitles ?? []).map((track) => ({ ...track, url: here(track.url) }));
  return local;
}

/**
 * The poster's ThumbHash painted on a canvas, shown until the image loads:
 * a canvas needs no `data:` URL, which the page's CSP does not allow.
 */
function thumbhashCanvas(base64) {
  try {
    const { w, h: height, rgba } = thumbHashToRGBA(
      Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)),
    );
    const canvas = h("canvas", { class: "thumbhash", width: w, height, "aria-hidden": "true" });
    canvas.getContext("2d").putImageData(
      new ImageData(new Uint8ClampedArray(rgba), w, height),
      0,
      0,
    );
    return canvas;
  } catch {
    return null;
  }
}

/**
 * How often, at most, a processing attachment is re-read to pick up what its
 * last finished job made (thumbnail, first playable file, ladder, storyboard).
 */
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

/** The storyboard as a hidden metadata track of `video`, and the seek bar that previews it. */
function storyboardOf(video, url) {
  const element = h("track", { kind: "metadata", label: "Storyboard", src: url });
  video.append(element);
  const track = element.track;
  track.mode = "hidden";
  return previewBar(video, track);
}

/**
 * The inline player of an attachment: a <video> with the thumbnail as poster,
 * the storyboard seek bar, and a quality menu when hls.js plays a ladder of
 * more than one rung. `.player`'s `data-engine` says what plays (`hls.js`,
 * `native-hls`, `progressive`) and `data-level-height` the rung on screen.
 * `update(attachment)` takes a newer state: a ladder made while the
 * progressive file played takes over at the same time, and a storyboard made
 * since is added. `refetch()` gets freshly signed URLs when the ladder fails.
 */
function videoPlayer(initial, { refetch }) {
  const video = h("video", {
    class: "player-video",
    controls: true,
    autoplay: true,
    playsInline: true,
    preload: "metadata",
    poster: initial.poster_url ?? undefined,
    "aria-label": `Playing ${initial.file_name}`,
  });
  const auto = h("option", { value: "-1" }, "Auto");
  /** The rung on screen, as hls.js last reported it. */
  let shown = null;
  /** Auto names the rung it plays, so the menu also says what quality is on screen. */
  const nameAuto = (isAuto) =>
    auto.textContent = isAuto && shown
      ? `Auto (${formatQuality(shown.width, shown.height)})`
      : "Auto";
  const quality = h("select", {
    onchange: () => {
      const index = Number(quality.value);
      source?.setLevel(index);
      nameAuto(index < 0);
    },
  }, auto);
  const qualityField = h(
    "label",
    { class: "inline player-quality", hidden: true },
    "Quality",
    quality,
  );
  /** Captions: a <track> per subtitle track, and a menu that shows one of them (or none). */
  const captions = h("select", {
    "aria-label": "Captions",
    onchange: () => showCaptions(captions.value),
  }, h("option", { value: "" }, "Off"));
  const captionsField = h(
    "label",
    { class: "inline player-captions", hidden: true },
    "Captions",
    captions,
  );
  const trackIds = new Set();
  const showCaptions = (id) => {
    for (const node of video.querySelectorAll("track[data-subtitle-id]")) {
      node.track.mode = node.dataset.subtitleId === id ? "showing" : "disabled";
    }
    element.dataset.captions = id || "off";
  };
  const addCaptions = (attachment) => {
    for (const track of attachment.subtitles ?? []) {
      if (trackIds.has(track.id)) continue;
      trackIds.add(track.id);
      video.append(h("track", {
        kind: "subtitles",
        src: track.url,
        srclang: track.language,
        label: track.label,
        dataset: { subtitleId: track.id },
      }));
      captions.append(h("option", { value: track.id }, `${track.label} (${track.language})`));
    }
    captionsField.hidden = trackIds.size === 0;
    showCaptions(captions.value);
  };
  const element = h("div", { class: "player" }, video, qualityField, captionsField);
  let source = null;
  let destroyed = false;
  let hasStoryboard = false;
  /** Whether the ladder was asked for: it is then never asked for again. */
  let adaptive = false;

  const addStoryboard = (attachment) => {
    if (hasStoryboard || !attachment.storyboard_url) return;
    hasStoryboard = true;
    element.insertBefore(storyboardOf(video, attachment.storyboard_url), qualityField);
  };

  const start = (attachment, startAt) => {
    source?.destroy();
    adaptive ||= Boolean(attachment.hls_url);
    delete element.dataset.levelHeight;
    shown = null;
    nameAuto(false);
    qualityField.hidden = true;
    source = playAttachment(video, attachment, {
      startAt,
      onEngine: (engine) => (element.dataset.engine = engine),
      onLevels(levels) {
        const byHeight = [...levels].sort((a, b) => b.height - a.height || b.bitrate - a.bitrate);
        replace(
          quality,
          auto,
          byHeight.map((level) =>
            h("option", { value: String(level.index) }, formatQuality(level.width, level.height))
          ),
        );
        quality.value = "-1";
        qualityField.hidden = levels.length < 2;
      },
      onLevelSwitched(level, isAuto) {
        shown = level;
        element.dataset.levelHeight = String(level.height);
        nameAuto(isAuto);
      },
      onFatal() {
        // Go on from the same point with the progressive file, freshly signed if possible
        // (signed URLs last an hour).
        const at = video.currentTime;
        refetch().catch(() => attachment).then((fresh) => {
          if (!destroyed) start({ ...fresh, hls_url: null }, at);
        });
      },
    });
  };

  start(initial, 0);
  addStoryboard(initial);
  addCaptions(initial);
  return {
    element,
    video,
    update(attachment) {
      if (!video.poster && attachment.poster_url) video.poster = attachment.poster_url;
      addStoryboard(attachment);
      addCaptions(attachment);
      if (!adaptive && attachment.hls_url) {
        // The ladder is ready: it takes over where the progressive file is, playing or not.
        video.autoplay = !video.paused && !video.ended;
        start(attachment, video.currentTime);
      }
    },
    destroy() {
      destroyed = true;
      source?.destroy();
      source = null;
    },
  };
}

/**
 * What a render shows of an attachment: everything but the signed URLs'
 * tokens, which change at every read; a URL counts by being there or not.
 */
function shownState(attachment) {
  return JSON.stringify(
    attachment,
    (key, value) => MEDIA_FIELDS.includes(key) ? value !== null : value,
  );
}

/** Names a focused control so that its replacement after a render can take the focus back. */
function focusKey(element) {
  return `${element.tagName} ${element.getAttribute("aria-label") ?? element.textContent}`;
}

/**
 * Renders an attachment; `scope` collects what to close when the view goes
 * (event streams, the player).
 */
export function attachmentCard(initial, scope) {
  let attachment = onThisOrigin(initial);
  let events = null;
  let lastRefresh = 0;
  let refreshTimer = null;
  let percent = null;
  let player = null;
  const media = h("div", { class: "attachment-media" });
  const details = h("div", { class: "attachment-body" });
  const card = h(
    "article",
    {
      class: "attachment",
      dataset: { attachmentId: initial.id },
      "aria-label": `Video ${initial.file_name}`,
    },
    media,
    details,
  );

  const fetchFresh = async () => onThisOrigin(await api(`/api/chat/attachments/${attachment.id}`));

  const refresh = async () => {
    lastRefresh = Date.now();
    try {
      const fresh = await fetchFresh();
      const changed = shownState(fresh) !== shownState(attachment);
      attachment = fresh;
      if (changed) render();
    } catch (problem) {
      if (problem.status === 404) gone("This video was deleted.");
    }
  };

  /**
   * Re-reads the attachment at most every REFRESH_MS, and always once after
   * the last call, so the state after the last event is never missed.
   */
  function refreshSoon() {
    if (refreshTimer !== null) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      refresh();
    }, Math.max(0, lastRefresh + REFRESH_MS - Date.now()));
  }

  function stopEvents() {
    events?.close();
    events = null;
    clearTimeout(refreshTimer);
    refreshTimer = null;
  }

  function closePlayer() {
    player?.destroy();
    player = null;
  }

  function gone(text) {
    stopEvents();
    closePlayer();
    card.replaceWith(h("p", { class: "muted" }, text));
  }

  scope.onClose(() => {
    stopEvents();
    closePlayer();
  });

  function follow() {
    if (events || attachment.status !== "processing") return;
    events = new EventSource(attachment.events_url);
    events.addEventListener("progress", (event) => {
      percent = JSON.parse(event.data).percent;
      const bar = card.querySelector(".processing progress");
      if (bar) {
        bar.value = percent;
        bar.textContent = `${percent}%`;
        card.querySelector(".processing-label").textContent = `Processing… ${percent}%`;
      }
      // A job finished or moved on: it may have made the thumbnail, the first playable
      // file, the ladder or the storyboard.
      refreshSoon();
    });
    // The server says when an output lands and when the video becomes playable: read the
    // attachment again at once for its new URLs (the first snapshot repeats what is known).
    let snapshot = true;
    const landed = () => {
      if (!snapshot) refresh();
    };
    events.addEventListener("output", landed);
    events.addEventListener("playable", (event) => {
      if (JSON.parse(event.data).playable && !attachment.playable) refresh();
    });
    events.addEventListener("status", (event) => {
      snapshot = false; // the snapshot ends with its status event
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

  function play() {
    fetchFresh().then((fresh) => {
      // Signed URLs last an hour: play from a fresh copy.
      attachment = fresh;
      if (!fresh.playable || player) return render();
      player = videoPlayer(fresh, { refetch: fetchFresh });
      replace(media, player.element);
      player.video.focus();
      render();
    }).catch((problem) => toast(problem.message, "error"));
  }

  function thumbnail() {
    const a = attachment;
    const label = a.playable
      ? `Play ${a.file_name}${a.duration_formatted ? `, ${a.duration_formatted}` : ""}`
      : `${a.file_name} (${a.status})`;
    return h(
      "button",
      {
        type: "button",
        class: "thumb",
        "aria-label": label,
        disabled: !a.playable,
        onclick: play,
      },
      a.thumbhash ? thumbhashCanvas(a.thumbhash) : null,
      a.thumbnail_url
        ? h("img", {
          src: a.thumbnail_url,
          alt: "",
          width: 320,
          height: a.width && a.height ? Math.round(320 * a.height / a.width) : 180,
          loading: "lazy",
          decoding: "async",
          // Loaded: the placeholder under it can go.
          onload: (event) => event.target.parentElement?.querySelector(".thumbhash")?.remove(),
        })
        : h("span", { class: "thumb-placeholder" }, a.status === "failed" ? "⚠" : "…"),
      a.duration_formatted
        ? h("span", { class: "badge duration", "aria-hidden": "true" }, a.duration_formatted)
        : null,
      a.playable ? h("span", { class: "play-icon", "aria-hidden": "true" }) : null,
    );
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
        // What is still to come: the ladder (whether this video gets one is the server's
        // call, by its length), else the seek previews.
        a.playable
          ? h(
            "p",
            { class: "playable-note hint", role: "status" },
            a.hls_url
              ? "Ready to watch. Still processing: seek previews coming."
              : "Ready to watch. Still processing: more qualities may follow.",
          )
          : null,
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
              gone("Video deleted.");
            } catch (problem) {
              toast(problem.message, "error");
            }
          },
        }, "Delete")
        : null,
      mayDelete ? captionsForm(a) : null,
    );
  }

  /** The uploader's (or an admin's) form for adding a .srt or .vtt file as captions. */
  function captionsForm(a) {
    const file = h("input", { type: "file", name: "file", accept: ".srt,.vtt", required: true });
    const language = h("input", { name: "language", value: "en", required: true, size: 8 });
    const label = h("input", { name: "label", placeholder: "English", size: 12 });
    return h(
      "details",
      { class: "add-captions" },
      h("summary", {}, "Add captions"),
      h(
        "form",
        {
          onsubmit: async (event) => {
            event.preventDefault();
            const form = new FormData();
            form.append("language", language.value);
            form.append("label", label.value);
            form.append("file", file.files[0]);
            try {
              await upload(`/api/chat/attachments/${a.id}/subtitles`, form);
              toast("Captions added.");
              attachment = await fetchFresh();
              render();
            } catch (problem) {
              toast(problem.message, "error");
            }
          },
        },
        h("label", {}, "File ", file),
        h("label", {}, "Language ", language),
        h(
          "label",
          {},
          "Label ",
          label,
        ),
        h("button", { type: "submit", class: "button-quiet" }, "Add"),
      ),
    );
  }

  /** Makes the chosen frame the poster (uploader or admin), then shows the new state. */
  async function choosePoster(choice) {
    try {
      await api(`/api/chat/attachments/${attachment.id}/poster`, {
        method: "PUT",
        json: choice,
      });
      attachment = await fetchFresh();
      if (player) player.video.poster = attachment.poster_url ?? "";
      render();
      toast("Poster changed.");
    } catch (problem) {
      toast(problem.message, "error");
    }
  }

  /** The uploader's poster picker: the candidates, and the player's current frame. */
  function posterPicker(open) {
    const a = attachment;
    const mayChoose = session.user?.admin || session.user?.id === a.uploader_id;
    if (!mayChoose || !a.thumbnail_url) return null;
    return h(
      "details",
      { class: "poster-picker", open },
      h("summary", {}, "Poster"),
      h(
        "div",
        { class: "poster-candidates" },
        a.poster_candidates.map((c) =>
          h(
            "button",
            {
              type: "button",
              class: "poster-candidate",
              "aria-label": `Use frame ${c.index + 1} (${c.time.toFixed(1)} s) as poster`,
              "aria-pressed": String(
                a.poster_time !== null && Math.abs(c.time - a.poster_time) < 0.01,
              ),
              onclick: () => choosePoster({ candidate: c.index }),
            },
            h("img", { src: c.url, alt: "", width: 160, loading: "lazy", decoding: "async" }),
          )
        ),
      ),
      player
        ? h("button", {
          type: "button",
          class: "button-quiet",
          onclick: () => choosePoster({ time: Math.round(player.video.currentTime * 1000) / 1000 }),
        }, "Use current frame")
        : h("p", { class: "hint" }, "Play the video to use any frame."),
    );
  }

  function render() {
    const a = attachment;
    // A render during processing must not take the focus or an open panel from the reader.
    const focused = card.contains(document.activeElement) ? focusKey(document.activeElement) : null;
    const open = details.querySelector("details.metadata")?.open ?? false;
    const pickerOpen = details.querySelector("details.poster-picker")?.open ?? false;
    if (player) player.update(a);
    else replace(media, thumbnail());
    replace(
      details,
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
        { class: "metadata", open },
        h("summary", {}, "Details"),
        h("dl", {}, metadataRows(a)),
      ),
      posterPicker(pickerOpen),
      actions(),
    );
    if (focused !== null && !card.contains(document.activeElement)) {
      const again = [...card.querySelectorAll("button, a, summary")]
        .find((element) => focusKey(element) === focused);
      again?.focus({ preventScroll: true });
    }
    card.dataset.status = a.status;
    card.dataset.playable = String(a.playable);
    follow();
  }

  render();
  return card;
}
