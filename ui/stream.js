/**
 * What a <video> plays for an attachment: its adaptive ladder (`hls_url`)
 * through hls.js where the browser has Media Source Extensions, the ladder
 * natively where it plays HLS itself without them (Safari on an older
 * iPhone), and otherwise the progressive file (`stream_url`), which is all a
 * short clip has. hls.js is loaded on first use only.
 */

/** The HLS playlist type a browser that plays HLS itself recognises. */
const HLS_TYPE = "application/vnd.apple.mpegurl";
/** What every ladder holds: H.264 and AAC in fragmented MP4. */
const LADDER_CODECS = 'video/mp4; codecs="avc1.42E01E,mp4a.40.2"';
/** hls.js's browser bundle, served beside this module (a versioned asset path). */
const HLS_BUNDLE = new URL("./vendor/hls.min.js", import.meta.url).href;

let hlsLoading = null;

/**
 * hls.js, loaded once, when a ladder is first played: most pages never need
 * its 600 kB. Imported as a module rather than added as a <script>, whose
 * `src` Trusted Types (with no policy allowed) refuses to set; with no module
 * system to export to, the UMD bundle sets `globalThis.Hls`.
 */
function loadHls() {
  hlsLoading ??= import(HLS_BUNDLE).then(() => {
    if (typeof globalThis.Hls !== "function") throw new Error("hls.js did not load");
    return globalThis.Hls;
  }).catch((error) => {
    hlsLoading = null;
    throw error;
  });
  return hlsLoading;
}

function hasMediaSource() {
  const source = globalThis.ManagedMediaSource ?? globalThis.MediaSource;
  return typeof source?.isTypeSupported === "function" && source.isTypeSupported(LADDER_CODECS);
}

/**
 * The engine for an attachment in `video`: `hls.js`, `native-hls` or
 * `progressive`. hls.js comes first wherever it can run, Safari on a Mac
 * included, so that every such browser offers the same quality choice; a
 * browser without MSE that plays HLS itself plays the ladder natively.
 */
export function chooseEngine(attachment, video) {
  if (attachment.hls_url) {
    if (hasMediaSource()) return "hls.js";
    if (video.canPlayType(HLS_TYPE) !== "") return "native-hls";
  }
  return "progressive";
}

/** A rung of the ladder as the quality menu shows it. */
function levelOf(level, index) {
  return { index, width: level.width, height: level.height, bitrate: level.bitrate };
}

/** Plays a URL with the <video> element alone, from `startAt` seconds. */
function elementSource(video, url, startAt) {
  if (startAt > 0) {
    video.addEventListener("loadedmetadata", () => (video.currentTime = startAt), { once: true });
  }
  video.src = url;
  return {
    destroy() {
      video.removeAttribute("src");
      video.load();
    },
  };
}

/**
 * Plays the ladder with hls.js. Its worker is off: hls.js would start it from
 * a blob: URL, which the page's policy (script-src 'self', Trusted Types)
 * refuses, and CMAF segments need no transmuxing for it to do.
 */
function hlsSource(Hls, video, url, { startAt, onLevels, onLevelSwitched, onFatal }) {
  const hls = new Hls({
    enableWorker: false,
    // An inline player need not fetch 1080p; full screen lifts the cap.
    capLevelToPlayerSize: true,
    startPosition: startAt > 0 ? startAt : -1,
  });
  let recovered = false;
  hls.on(Hls.Events.MANIFEST_PARSED, () => onLevels(hls.levels.map(levelOf)));
  hls.on(Hls.Events.LEVEL_SWITCHED, (_event, { level }) => {
    const current = hls.levels[level];
    if (current) onLevelSwitched(levelOf(current, level), hls.autoLevelEnabled);
  });
  hls.on(Hls.Events.ERROR, (_event, data) => {
    if (!data.fatal) return;
    // A decode error is often cured by a new SourceBuffer; once is enough to try.
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !recovered) {
      recovered = true;
      hls.recoverMediaError();
      return;
    }
    onFatal(new Error(`HLS playback failed: ${data.details}`));
  });
  hls.loadSource(url);
  hls.attachMedia(video);
  return {
    setLevel(index) {
      // A chosen rung replaces what is buffered at once; Auto takes over from the next segment.
      if (index < 0) hls.nextLevel = -1;
      else hls.currentLevel = index;
    },
    destroy() {
      hls.destroy();
      video.removeAttribute("src");
      video.load();
    },
  };
}

/**
 * Starts `attachment` in `video`, from `startAt` seconds, with the engine of
 * {@linkcode chooseEngine}. Callbacks: `onEngine(engine)` once the engine
 * runs; `onLevels(levels)` with the ladder's rungs and `onLevelSwitched(level,
 * auto)` when hls.js changes rung (hls.js only); `onFatal(error)` when it
 * cannot go on. The returned source's `setLevel(index)` picks a rung (-1:
 * automatic) and `destroy()` stops everything, the hls.js instance included.
 */
export function playAttachment(video, attachment, callbacks = {}) {
  const {
    startAt = 0,
    onEngine = () => {},
    onLevels = () => {},
    onLevelSwitched = () => {},
    onFatal = () => {},
  } = callbacks;
  let current = null;
  let destroyed = false;
  const engine = chooseEngine(attachment, video);
  const start = (name, make) => {
    current = make();
    onEngine(name);
  };
  if (engine === "hls.js") {
    const progressive = () => elementSource(video, attachment.stream_url, startAt);
    loadHls().then((Hls) => {
      if (destroyed) return;
      if (!Hls.isSupported()) return start("progressive", progressive);
      start("hls.js", () =>
        hlsSource(Hls, video, attachment.hls_url, {
          startAt,
          onLevels,
          onLevelSwitched,
          onFatal,
        }));
    }, () => {
      // Without hls.js (a failed download, say) the progressive file still plays.
      if (!destroyed) start("progressive", progressive);
    });
  } else {
    const url = engine === "native-hls" ? attachment.hls_url : attachment.stream_url;
    start(engine, () => elementSource(video, url, startAt));
  }
  return {
    setLevel(index) {
      current?.setLevel?.(index);
    },
    destroy() {
      destroyed = true;
      current?.destroy();
      current = null;
    },
  };
}
