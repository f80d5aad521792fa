/**
 * Sending a video: checks before anything is sent, then a resumable tus upload
 * (tus-js-client, vendored) or, on a server without tus, a multipart POST.
 * Both report bytes sent, speed and time left, and can be cancelled.
 */
import { api, ApiProblem, problemFrom, session } from "./api.js";
import { formatBytes, formatList, RateMeter } from "./format.js";

/** Retry delays after a failed request (ms); then the upload waits for the connection. */
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000];
/** Bytes per PATCH request: a reverse proxy's body limit never sees a whole large file. */
const CHUNK_SIZE = 16 * 1024 * 1024;

/** `MP4, QuickTime MOV, WebM, …` from /api/ui/config. */
export function acceptedLabels(config) {
  return formatList(config.accepted_formats.map((f) => f.label));
}

/** The `accept` attribute of the file input. */
export function acceptAttribute(config) {
  return config.accepted_formats
    .flatMap((f) => [...f.mime_types, ...f.extensions.map((e) => `.${e}`)])
    .join(",");
}

/**
 * What is wrong with a file before it is sent, or null. The server decides by
 * content; this only spares the user an upload that cannot succeed.
 */
export function checkFile(file, config) {
  if (file.size > config.max_upload_bytes) {
    return `“${file.name}” is ${formatBytes(file.size)}, over the ${
      formatBytes(config.max_upload_bytes)
    } limit.`;
  }
  if (file.size === 0) return `“${file.name}” is empty.`;
  const extension = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
  const known = config.accepted_formats.some((f) =>
    f.mime_types.includes(file.type) || f.extensions.includes(extension)
  );
  if (!known && !file.type.startsWith("video/")) {
    return `“${file.name}” is not a video this server accepts. Accepted formats: ${
      acceptedLabels(config)
    }.`;
  }
  return null;
}

function sentence(text) {
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

/** A clear sentence for an upload the server refused. */
export function explainUploadError(problem, file, config) {
  switch (problem.status) {
    case 413:
      return `“${file.name}” is too large: the limit is ${formatBytes(config.max_upload_bytes)}.`;
    case 415:
      return `“${file.name}” is not in an accepted format. The server looks at the content, ` +
        `not the name; accepted formats: ${acceptedLabels(config)}.`;
    case 422:
      return `“${file.name}” could not be used as a video. ${sentence(problem.message)}`;
    case 429:
      return `Too many uploads at once: ${problem.message}`;
    case 401:
      return "Your session has expired. Sign in again to send videos.";
    case 0:
      return problem.message;
    default:
      return `The upload failed: ${problem.message}`;
  }
}

function progressReporter(total, onProgress) {
  const meter = new RateMeter();
  return {
    report(sent) {
      const rate = meter.add(sent);
      const secondsLeft = rate > 0 ? (total - sent) / rate : NaN;
      onProgress({ sent, total, rate, secondsLeft });
    },
    reset: () => meter.reset(),
  };
}

function tusProblem(error) {
  const response = error?.originalResponse;
  if (!response) {
    return new ApiProblem(0, "network", "The connection to the server was lost.");
  }
  let code = "error";
  let detail = `The server answered ${response.getStatus()}`;
  try {
    const body = JSON.parse(response.getBody());
    if (typeof body.code === "string") code = body.code;
    if (typeof body.detail === "string") detail = body.detail;
  } catch {
    // not problem+json
  }
  return new ApiProblem(response.getStatus(), code, detail);
}

/**
 * A resumable upload of `file` to the conversation. `createMessage()` is
 * called only when no earlier upload of the same file to this conversation
 * can be resumed (after a reload, say); it returns the message's id.
 *
 * Returns `{ done, cancel }`: `done` resolves to the Attachment JSON.
 */
export function uploadResumable(file, options) {
  const { config, conversationId, createMessage, onProgress, onState } = options;
  const progress = progressReporter(file.size, onProgress);
  let cancelled = false;
  let waitingForNetwork = null;
  let interrupted = false;
  let upload = null;
  let rejectDone = () => {};

  const done = new Promise((resolve, reject) => {
    rejectDone = reject;
    upload = new globalThis.tus.Upload(file, {
      endpoint: new URL(config.resumable_upload_url, location.href).href,
      chunkSize: CHUNK_SIZE,
      retryDelays: RETRY_DELAYS,
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      // One resumable record per file and conversation.
      fingerprint: (f) =>
        Promise.resolve(
          ["offchat", session.user?.id, conversationId, f.name, f.type, f.size, f.lastModified]
            .join("/"),
        ),
      headers: { Authorization: `Bearer ${session.token}` },
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
      onProgress: (sent) => {
        if (interrupted) {
          interrupted = false;
          onState("Resumed where the connection dropped.");
        }
        progress.report(sent);
      },
      onShouldRetry: (error) => {
        const status = error?.originalResponse?.getStatus() ?? 0;
        const retry = status === 0 || status >= 500 || status === 409 || status === 423;
        if (retry) {
          interrupted = true;
          progress.reset();
          // 409/423: the server was still closing the broken request; the offset is asked again.
          onState(
            status >= 500 ? "The server had a problem; retrying…" : "Connection lost; resuming…",
          );
        }
        return retry && navigator.onLine;
      },
      onSuccess: (payload) => {
        const last = payload.lastResponse;
        try {
          resolve(JSON.parse(last.getBody()));
        } catch {
          // The answer to the last request was lost and the resume found the upload
          // complete: the server names the attachment it made.
          const id = last.getHeader("OffChat-Attachment-Id");
          if (id) api(`/api/chat/attachments/${encodeURIComponent(id)}`).then(resolve, reject);
          else reject(new ApiProblem(0, "bad_answer", "The server's answer could not be read."));
        }
      },
      onError: (error) => {
        if (cancelled) return;
        const problem = tusProblem(error);
        if (problem.status === 0 && upload.url) {
          // The bytes so far are kept on the server: carry on from there when back online.
          interrupted = true;
          onState("Connection lost. The upload will resume when the connection is back.");
          waitingForNetwork = () => {
            waitingForNetwork = null;
            if (cancelled) return;
            onState("Resuming…");
            progress.reset();
            upload.start();
          };
          if (navigator.onLine) setTimeout(() => waitingForNetwork?.(), 3000);
          else addEventListener("online", () => waitingForNetwork?.(), { once: true });
          return;
        }
        reject(problem);
      },
    });
    upload.findPreviousUploads().then(async (previous) => {
      if (cancelled) return;
      const latest = previous
        .filter((p) => p.metadata?.message_id)
        .sort((a, b) => Date.parse(b.creationTime) - Date.parse(a.creationTime))[0];
      if (latest) {
        onState("Resuming an earlier upload of this file…");
        upload.options.metadata = { ...latest.metadata };
        upload.resumeFromPreviousUpload(latest);
      } else {
        const messageId = await createMessage();
        upload.options.metadata = { ...upload.options.metadata, message_id: messageId };
      }
      if (!cancelled) upload.start();
    }).catch(reject);
  });

  return {
    done,
    resumable: true,
    async cancel() {
      cancelled = true;
      waitingForNetwork = null;
      rejectDone(new DOMException("Cancelled", "AbortError"));
      // Terminates the upload on the server too, so no partial file is left behind.
      await upload?.abort(true).catch(() => {});
    },
  };
}

/**
 * A multipart upload with XHR progress, for a server without the tus
 * endpoint. `message_id` travels in the query so a refusal comes before the
 * bytes are sent.
 */
export function uploadMultipart(file, options) {
  const { createMessage, onProgress } = options;
  const progress = progressReporter(file.size, onProgress);
  const xhr = new XMLHttpRequest();
  let cancelled = false;
  const done = (async () => {
    const messageId = await createMessage();
    if (cancelled) throw new DOMException("Cancelled", "AbortError");
    return await new Promise((resolve, reject) => {
      xhr.open("POST", `/api/chat/videos/upload/?message_id=${encodeURIComponent(messageId)}`);
      xhr.setRequestHeader("authorization", `Bearer ${session.token}`);
      xhr.responseType = "text";
      xhr.upload.addEventListener("progress", (event) => progress.report(event.loaded));
      xhr.addEventListener("load", async () => {
        const response = new Response(xhr.responseText, { status: xhr.status });
        if (xhr.status === 201) resolve(await response.json());
        else reject(await problemFrom(response));
      });
      xhr.addEventListener("error", () => {
        reject(new ApiProblem(0, "network", "The connection to the server was lost."));
      });
      xhr.addEventListener("abort", () => reject(new DOMException("Cancelled", "AbortError")));
      const form = new FormData();
      form.append("message_id", messageId);
      form.append("file", file, file.name);
      xhr.send(form);
    });
  })();
  return {
    done,
    resumable: false,
    cancel() {
      cancelled = true;
      xhr.abort();
      return Promise.resolve();
    },
  };
}

/** Starts the best upload this server offers. */
export function startUpload(file, options) {
  const tusReady = options.config.resumable_upload_url && globalThis.tus?.isSupported;
  return tusReady ? uploadResumable(file, options) : uploadMultipart(file, options);
}
