/**
 * The admin view: storage used, attachments that need attention, webhook
 * deliveries, the activity log.
 */
import { api, query } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { formatBytes, formatTime } from "./format.js";

const ACTIONS = [
  "video.upload",
  "video.download",
  "attachment.delete",
  "attachment.reprocess",
  "attachment.poster",
  "admin.backfill",
  "conversation.create",
  "participant.add",
  "participant.remove",
];

/** Processing for longer than this looks stuck. */
const STUCK_AFTER_MS = 15 * 60 * 1000;

function short(id) {
  return id ? h("code", { title: id }, id.slice(-8)) : "–";
}

function storagePanel() {
  // The API's `disk.by_kind`, in its order, as the table names them.
  const kinds = {
    originals: "Originals",
    stripped_copies: "Stripped copies (what is downloaded)",
    compact_renditions: "Compact renditions",
    hls: "HLS / DASH ladders",
    thumbnails: "Thumbnails",
    storyboards: "Storyboards",
    subtitles: "Subtitles (WebVTT)",
    temp: "Temporary (uploads in progress, job scratch)",
    database: "Database",
    other: "Other",
  };
  // A table inside a <details> is named by an aria-label, its summary being the visible name.
  const usageTable = ({ caption, label }, first, rows) =>
    h(
      "table",
      label ? { class: "compact", "aria-label": label } : { class: "compact" },
      caption ? h("caption", {}, caption) : null,
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, first),
          h("th", { scope: "col", class: "num" }, "Files"),
          h("th", { scope: "col", class: "num" }, "Size"),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map(([name, usage]) =>
          h(
            "tr",
            {},
            h("td", {}, name),
            h("td", { class: "num" }, usage.files),
            h("td", { class: "num" }, formatBytes(usage.bytes)),
          )
        ),
      ),
    );
  const body = h("div", { class: "stats" }, h("p", { class: "muted" }, "Loading…"));
  const load = async () => {
    try {
      const usage = await api("/api/admin/storage");
      const s = usage.attachments.by_status;
      replace(
        body,
        h(
          "dl",
          { class: "stat-grid" },
          h(
            "div",
            { class: "stat" },
            h("dt", {}, "On disk"),
            h("dd", {}, formatBytes(usage.disk.total_bytes)),
          ),
          ...(usage.bucket
            ? [
              h(
                "div",
                { class: "stat" },
                h("dt", {}, `In bucket ${usage.bucket.name}`),
                h("dd", {}, formatBytes(usage.bucket.total_bytes)),
              ),
            ]
            : []),
          h(
            "div",
            { class: "stat" },
            h("dt", {}, "Originals"),
            h("dd", {}, formatBytes(usage.attachments.original_bytes)),
          ),
          h("div", { class: "stat" }, h("dt", {}, "Videos"), h("dd", {}, usage.attachments.count)),
          h(
            "div",
            { class: "stat" },
            h("dt", {}, "Ready / processing / failed"),
            h("dd", {}, `${s.ready.count} / ${s.processing.count} / ${s.failed.count}`),
          ),
        ),
        ...(usage.bucket
          ? [
            usageTable(
              { caption: "Bytes in the bucket by kind" },
              "Kind",
              Object.entries(kinds).map(([kind, label]) => [label, usage.bucket.by_kind[kind]]),
            ),
          ]
          : []),
        usageTable(
          { caption: "Bytes on disk by kind" },
          "Kind",
          Object.entries(kinds).map(([kind, label]) => [label, usage.disk.by_kind[kind]]),
        ),
        h(
          "details",
          { class: "metadata" },
          h("summary", {}, "By directory"),
          usageTable(
            { label: "Bytes on disk by directory" },
            "Directory",
            usage.disk.directories.map((d) => [
              d.name === "." ? "(top level: database, secret)" : d.name,
              d,
            ]),
          ),
        ),
      );
    } catch (problem) {
      replace(body, h("p", { class: "error", role: "alert" }, problem.message));
    }
  };
  load();
  return h(
    "section",
    { class: "panel", "aria-labelledby": "storage-heading" },
    h(
      "div",
      { class: "panel-head" },
      h("h2", { id: "storage-heading" }, "Storage used"),
      h("button", { type: "button", class: "button-quiet", onclick: load }, "Refresh"),
    ),
    body,
  );
}

function attentionPanel() {
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const status = h(
    "select",
    { id: "attention-status", onchange: () => load() },
    h("option", { value: "failed" }, "Failed"),
    h("option", { value: "processing" }, "Processing (stuck ones flagged)"),
  );
  const reprocess = async (attachment, button) => {
    button.disabled = true;
    try {
      await api(`/api/admin/attachments/${attachment.id}/reprocess`, { method: "POST" });
      toast(`Reprocessing ${attachment.file_name}`);
      load();
    } catch (problem) {
      button.disabled = false;
      toast(problem.message, "error");
    }
  };
  const load = async () => {
    try {
      const page = await api(`/api/admin/attachments${query({ status: status.value, limit: 50 })}`);
      if (page.items.length === 0) {
        replace(list, h("p", { class: "muted" }, `No ${status.value} videos.`));
        return;
      }
      replace(
        list,
        h(
          "ul",
          { class: "attention-list" },
          page.items.map((a) => {
            const age = Date.now() - Date.parse(a.uploaded_at ?? "");
            const stuck = a.status === "processing" && age > STUCK_AFTER_MS;
            const button = h("button", { type: "button" }, "Reprocess");
            button.addEventListener("click", () => reprocess(a, button));
            return h(
              "li",
              { class: "attention-item", dataset: { attachmentId: a.id } },
              h(
                "div",
                {},
                h("strong", {}, a.file_name),
                " ",
                stuck ? h("span", { class: "badge warn" }, "stuck?") : null,
                h(
                  "p",
                  { class: "muted" },
                  `${a.status} · ${formatBytes(a.file_size)} · by ${a.uploader_id} · ${
                    formatTime(a.uploaded_at)
                  }`,
                ),
                a.error ? h("p", { class: "error" }, a.error) : null,
              ),
              button,
            );
          }),
        ),
      );
    } catch (problem) {
      replace(list, h("p", { class: "error", role: "alert" }, problem.message));
    }
  };
  load();
  return h(
    "section",
    { class: "panel", "aria-labelledby": "attention-heading" },
    h(
      "div",
      { class: "panel-head" },
      h("h2", { id: "attention-heading" }, "Videos that need attention"),
      h("label", { for: "attention-status", class: "inline" }, "Show ", status),
    ),
    list,
  );
}

/** Recent webhook deliveries with their status and attempts, and a Resend button each. */
function webhooksPanel() {
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const resend = async (delivery, button) => {
    button.disabled = true;
    try {
      await api(`/api/admin/webhooks/deliveries/${delivery.id}/resend`, { method: "POST" });
      toast(`Resending ${delivery.event}`);
      load();
    } catch (problem) {
      button.disabled = false;
      toast(problem.message, "error");
    }
  };
  const load = async () => {
    try {
      const page = await api(`/api/admin/webhooks/deliveries${query({ limit: 20 })}`);
      if (page.items.length === 0) {
        replace(list, h("p", { class: "muted" }, "No webhook deliveries."));
        return;
      }
      replace(
        list,
        h(
          "ul",
          { class: "attention-list" },
          page.items.map((d) => {
            const button = h("button", { type: "button" }, "Resend");
            button.addEventListener("click", () => resend(d, button));
            return h(
              "li",
              { class: "attention-item", dataset: { deliveryId: d.id } },
              h(
                "div",
                {},
                h("strong", {}, d.event),
                " ",
                h("span", { class: d.status === "failed" ? "badge warn" : "badge" }, d.status),
                h(
                  "p",
                  { class: "muted" },
                  `attachment `,
                  short(d.attachment_id),
                  ` · ${d.attempts}/${d.max_attempts} attempt(s) · ${formatTime(d.created_at)}`,
                ),
                d.last_error ? h("p", { class: "error" }, d.last_error) : null,
              ),
              d.status === "running" ? null : button,
            );
          }),
        ),
      );
    } catch (problem) {
      replace(list, h("p", { class: "error", role: "alert" }, problem.message));
    }
  };
  load();
  return h(
    "section",
    { class: "panel", "aria-labelledby": "webhooks-heading" },
    h("div", { class: "panel-head" }, h("h2", { id: "webhooks-heading" }, "Webhook deliveries")),
    list,
  );
}

/** A local date (YYYY-MM-DD) as the ISO instant of that day's start, or its end. */
function dayBound(value, end) {
  if (!value) return undefined;
  const [y, m, d] = value.split("-").map(Number);
  const date = end ? new Date(y, m - 1, d, 23, 59, 59, 999) : new Date(y, m - 1, d);
  return date.toISOString();
}

function activityPanel() {
  const rows = h("tbody", {});
  const more = h("button", { type: "button", hidden: true }, "Older entries");
  const summary = h("p", { class: "muted", role: "status" });
  let cursor = null;
  const field = (id, label, input) =>
    h("div", { class: "field" }, h("label", { for: id }, label), input);
  const actor = h("input", {
    id: "filter-actor",
    name: "actor_id",
    autocomplete: "off",
    placeholder: "any",
  });
  const action = h(
    "select",
    { id: "filter-action", name: "action" },
    h("option", { value: "" }, "any"),
    ACTIONS.map((a) => h("option", { value: a }, a)),
  );
  const since = h("input", { id: "filter-since", name: "since", type: "date" });
  const until = h("input", { id: "filter-until", name: "until", type: "date" });

  const row = (item) =>
    h(
      "tr",
      { dataset: { action: item.action } },
      h("td", {}, h("time", { datetime: item.at }, formatTime(item.at))),
      h("td", {}, item.actor_id),
      h("td", {}, item.action),
      h("td", {}, short(item.conversation_id)),
      h("td", {}, short(item.attachment_id)),
      h("td", {}, item.ip ?? "–"),
      h("td", { class: "detail" }, item.detail ? JSON.stringify(item.detail) : ""),
    );

  const load = async (append) => {
    const params = {
      actor_id: actor.value.trim(),
      action: action.value,
      since: dayBound(since.value, false),
      until: dayBound(until.value, true),
      before: append ? cursor : undefined,
      limit: 50,
    };
    try {
      const page = await api(`/api/admin/activity${query(params)}`);
      if (!append) rows.replaceChildren();
      rows.append(...page.items.map(row));
      cursor = page.next_cursor;
      more.hidden = cursor === null;
      summary.textContent = rows.children.length === 0
        ? "No activity matches these filters."
        : `${rows.children.length} entr${rows.children.length === 1 ? "y" : "ies"} shown`;
    } catch (problem) {
      summary.textContent = problem.message;
    }
  };
  more.addEventListener("click", () => load(true));
  const form = h(
    "form",
    {
      class: "filters",
      "aria-label": "Filter the activity log",
      onsubmit: (event) => {
        event.preventDefault();
        load(false);
      },
    },
    field("filter-actor", "User", actor),
    field("filter-action", "Action", action),
    field("filter-since", "From", since),
    field("filter-until", "To", until),
    h("div", { class: "field" }, h("button", { type: "submit" }, "Apply filters")),
  );
  load(false);
  return h(
    "section",
    { class: "panel", "aria-labelledby": "activity-heading" },
    h(
      "div",
      { class: "panel-head" },
      h("h2", { id: "activity-heading" }, "Activity log"),
    ),
    form,
    summary,
    h(
      "div",
      { class: "table-scroll", tabindex: 0, role: "region", "aria-label": "Activity entries" },
      h(
        "table",
        { class: "activity" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Time", "User", "Action", "Conversation", "Video", "IP", "Detail"].map((t) =>
              h("th", { scope: "col" }, t)
            ),
          ),
        ),
        rows,
      ),
    ),
    more,
  );
}

/** The whole admin page. */
export function adminView() {
  return h(
    "div",
    { class: "admin" },
    h("h1", {}, "Administration"),
    storagePanel(),
    attentionPanel(),
    webhooksPanel(),
    activityPanel(),
  );
}
