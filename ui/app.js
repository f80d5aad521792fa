/** The dashboard: sign-in, conversations with their videos, sending, and the admin view. */
import { adminView } from "./admin.js";
import { api, ApiProblem, session, whenUnauthorized } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { formatBytes, formatRate, formatTime, formatTimeLeft } from "./format.js";
import { attachmentCard } from "./player.js";
import {
  acceptAttribute,
  acceptedLabels,
  checkFile,
  explainUploadError,
  startUpload,
} from "./upload.js";

/** New messages from others are looked for this often while a conversation is open. */
const POLL_MS = 10_000;
/** Fired on window when a conversation's participants change. */
const CONVERSATIONS_CHANGED = "offchat:conversations-changed";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let config = null;
let signInNotice = null;

/** What the current view opened (event streams, timers), closed when the view changes. */
class Scope {
  #closers = [];
  onClose(closer) {
    this.#closers.push(closer);
  }
  close() {
    for (const closer of this.#closers.splice(0)) {
      try {
        closer();
      } catch {
        // closing is best effort
      }
    }
  }
}
let scope = new Scope();

function field(id, label, input, hint) {
  const hintId = hint ? `${id}-hint` : undefined;
  if (hintId) input.setAttribute("aria-describedby", hintId);
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    input,
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
  );
}

function setTitle(text) {
  document.title = text ? `${text} · OffChat Media` : "OffChat Media";
}

function renderNav() {
  if (!session.user) return replace(nav);
  const current = location.hash.startsWith("#/admin") ? "admin" : "conversations";
  replace(
    nav,
    h(
      "ul",
      {},
      h(
        "li",
        {},
        h("a", {
          href: "#/",
          "aria-current": current === "conversations" ? "page" : undefined,
        }, "Conversations"),
      ),
      session.user.admin
        ? h(
          "li",
          {},
          h("a", {
            href: "#/admin",
            "aria-current": current === "admin" ? "page" : undefined,
          }, "Admin"),
        )
        : null,
      h(
        "li",
        { class: "whoami" },
        h("span", { "aria-label": "Signed in as" }, session.user.id),
        session.user.admin ? h("span", { class: "badge" }, "admin") : null,
      ),
      h(
        "li",
        {},
        h("button", {
          type: "button",
          class: "button-quiet",
          onclick: () => {
            session.clear();
            location.hash = "#/signin";
          },
        }, "Sign out"),
      ),
    ),
  );
}

// ---------------------------------------------------------------- sign-in

function signInView() {
  setTitle("Sign in");
  const error = h("p", { class: "error", role: "alert", id: "signin-error" });
  const tokenInput = h("textarea", {
    id: "token",
    name: "token",
    rows: 3,
    required: true,
    autocomplete: "off",
    spellcheck: false,
  });
  const remember = h("input", { type: "checkbox", id: "remember", name: "remember" });
  const finish = async (token, rememberIt) => {
    try {
      session.save(token, rememberIt);
      // Ask the server: a token that only looks right is not enough.
      await api("/api/chat/conversations");
      location.hash = "#/";
    } catch (problem) {
      session.clear();
      error.textContent = problem.status === 401
        ? "The server did not accept that token: it is expired, or not signed by this server’s key."
        : problem.message;
    }
  };
  const tokenForm = h(
    "form",
    {
      class: "card",
      "aria-labelledby": "token-heading",
      onsubmit: (event) => {
        event.preventDefault();
        error.textContent = "";
        finish(tokenInput.value.trim(), remember.checked);
      },
    },
    h("h2", { id: "token-heading" }, "Sign in with a token"),
    field(
      "token",
      "Access token",
      tokenInput,
      "Paste a token from your identity provider, or one made on the server with “deno task token NAME”.",
    ),
    h(
      "div",
      { class: "check" },
      remember,
      h("label", { for: "remember" }, "Keep me signed in on this device"),
    ),
    h("button", { type: "submit" }, "Sign in"),
  );

  let devForm = null;
  if (config?.dev_login) {
    const name = h("input", {
      id: "dev-user",
      name: "user",
      required: true,
      autocomplete: "username",
      pattern: "[\\w.@:+\\-]{1,128}",
    });
    const admin = h("input", { type: "checkbox", id: "dev-admin", name: "admin" });
    devForm = h(
      "form",
      {
        class: "card dev",
        "aria-labelledby": "dev-heading",
        onsubmit: async (event) => {
          event.preventDefault();
          error.textContent = "";
          try {
            const minted = await api("/api/dev/login", {
              method: "POST",
              json: { user_id: name.value.trim(), admin: admin.checked },
              token: null,
            });
            await finish(minted.token, false);
          } catch (problem) {
            error.textContent = problem.message;
          }
        },
      },
      h("h2", { id: "dev-heading" }, "Dev sign-in"),
      h(
        "p",
        { class: "hint" },
        "This server runs with DEV_LOGIN=1: anyone who can reach it can sign in as anyone. " +
          "Never use it in production.",
      ),
      field("dev-user", "User name", name, "Letters, digits and . _ @ : + -"),
      h(
        "div",
        { class: "check" },
        admin,
        h("label", { for: "dev-admin" }, "Administrator"),
      ),
      h("button", { type: "submit" }, "Sign in as this user"),
    );
  }
  return h(
    "div",
    { class: "signin" },
    h("h1", {}, "Sign in"),
    signInNotice ? h("p", { class: "notice", role: "status" }, signInNotice) : null,
    error,
    h("div", { class: "signin-forms" }, devForm, tokenForm),
  );
}

// ---------------------------------------------------------- conversations

/** "3 participants": the count, not the embedded list, which holds at most the first 20. */
function participantCount(c) {
  return `${c.participant_count} participant${c.participant_count === 1 ? "" : "s"}`;
}

function conversationTitle(c) {
  if (c.title) return c.title;
  const others = c.participants.map((p) => p.user_id).filter((id) => id !== session.user.id);
  if (others.length === 0) return "Just you";
  const named = others.slice(0, 3);
  // The caller is one of the participants, in the embedded list or not.
  const more = c.participant_count - 1 - named.length;
  return `With ${named.join(", ")}${more > 0 ? ` and ${more} more` : ""}`;
}

function parseUserIds(text) {
  return text.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean);
}

function conversationList(activeId) {
  const list = h("ul", { class: "conversation-list" }, h("li", { class: "muted" }, "Loading…"));
  const more = h("button", { type: "button", class: "button-quiet" }, "Load more conversations");
  more.hidden = true;
  let cursor = null;
  const item = (c) =>
    h(
      "li",
      {},
      h(
        "a",
        {
          href: `#/c/${c.id}`,
          "aria-current": c.id === activeId ? "page" : undefined,
        },
        h("span", { class: "conversation-name" }, conversationTitle(c)),
        h("span", { class: "muted small" }, participantCount(c)),
      ),
    );
  // The list comes a page at a time, newest first; "Load more" follows next_cursor.
  const page = async (before) =>
    await api(`/api/chat/conversations${before ? `?limit=50&before=${before}` : "?limit=50"}`);
  const load = async () => {
    try {
      const first = await page(null);
      cursor = first.next_cursor;
      more.hidden = cursor === null;
      if (first.conversations.length === 0) {
        replace(list, h("li", { class: "muted" }, "No conversations yet. Start one below."));
        return;
      }
      replace(list, first.conversations.map(item));
    } catch (problem) {
      replace(list, h("li", { class: "error" }, problem.message));
    }
  };
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const next = await page(cursor);
      list.append(...next.conversations.map(item));
      cursor = next.next_cursor;
      more.hidden = cursor === null;
    } catch (problem) {
      toast(problem.message, "error");
    } finally {
      more.disabled = false;
    }
  });
  load();
  // A participant added in the open conversation changes its line here too.
  addEventListener(CONVERSATIONS_CHANGED, load);
  scope.onClose(() => removeEventListener(CONVERSATIONS_CHANGED, load));

  const title = h("input", { id: "new-title", name: "title", maxlength: 200 });
  const people = h("input", {
    id: "new-participants",
    name: "participants",
    autocomplete: "off",
  });
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    {
      class: "new-conversation",
      "aria-labelledby": "new-heading",
      onsubmit: async (event) => {
        event.preventDefault();
        error.textContent = "";
        try {
          const created = await api("/api/chat/conversations", {
            method: "POST",
            json: {
              title: title.value.trim() || undefined,
              participant_ids: parseUserIds(people.value),
            },
          });
          location.hash = `#/c/${created.id}`;
        } catch (problem) {
          error.textContent = problem.message;
        }
      },
    },
    h("h2", { id: "new-heading" }, "New conversation"),
    field("new-title", "Title (optional)", title),
    field("new-participants", "Participants", people, "User names, separated by commas"),
    error,
    h("button", { type: "submit" }, "Create conversation"),
  );
  return h(
    "aside",
    { class: "sidebar", "aria-label": "Conversations" },
    h("h1", { class: "sidebar-title" }, "Conversations"),
    h("nav", { "aria-label": "Your conversations" }, list, more),
    form,
  );
}

function messageItem(message) {
  const mine = message.sender_id === session.user.id;
  return h(
    "li",
    { class: `message${mine ? " mine" : ""}`, dataset: { messageId: message.id } },
    h(
      "p",
      { class: "message-meta" },
      h("strong", {}, mine ? "You" : message.sender_id),
      " ",
      h("time", { datetime: message.created_at, class: "muted" }, formatTime(message.created_at)),
    ),
    message.body ? h("p", { class: "message-body" }, message.body) : null,
    h(
      "div",
      { class: "message-attachments" },
      message.attachments.map((a) => attachmentCard(a, scope)),
    ),
  );
}

function participantChip(p) {
  return h("li", { class: "chip" }, p.user_id, p.role === "owner" ? " (owner)" : "");
}

function participantsPanel(conversation, onChange) {
  const input = h("input", { id: "add-participant", name: "user_id", autocomplete: "off" });
  const error = h("p", { class: "error", role: "alert" });
  const chips = h("ul", { class: "chips" }, conversation.participants.map(participantChip));
  // The conversation embeds its first participants only; the rest is paged.
  const all = h("button", { type: "button", class: "button-quiet" }, "Show everyone");
  all.hidden = conversation.participant_count <= conversation.participants.length;
  all.addEventListener("click", async () => {
    all.disabled = true;
    try {
      const everyone = [];
      let after = null;
      do {
        const page = await api(
          `/api/chat/conversations/${conversation.id}/participants?limit=200${
            after === null ? "" : `&after=${encodeURIComponent(after)}`
          }`,
        );
        everyone.push(...page.participants);
        after = page.next_cursor;
      } while (after !== null);
      replace(chips, everyone.map(participantChip));
      all.hidden = true;
    } catch (problem) {
      error.textContent = problem.message;
    } finally {
      all.disabled = false;
    }
  });
  const leave = h("button", { type: "button", class: "button-quiet" }, "Leave conversation");
  leave.addEventListener("click", async () => {
    if (!confirm("Leave this conversation? You will no longer see it or its videos.")) return;
    error.textContent = "";
    try {
      await api(
        `/api/chat/conversations/${conversation.id}/participants/${
          encodeURIComponent(session.user.id)
        }`,
        { method: "DELETE" },
      );
      toast("You left the conversation");
      location.hash = "#/";
    } catch (problem) {
      error.textContent = problem.message;
    }
  });
  return h(
    "details",
    { class: "participants" },
    h("summary", {}, participantCount(conversation)),
    chips,
    all,
    h(
      "form",
      {
        class: "inline-form",
        onsubmit: async (event) => {
          event.preventDefault();
          error.textContent = "";
          try {
            const updated = await api(`/api/chat/conversations/${conversation.id}/participants`, {
              method: "POST",
              json: { user_id: input.value.trim() },
            });
            onChange(updated);
          } catch (problem) {
            error.textContent = problem.message;
          }
        },
      },
      field("add-participant", "Add a participant", input),
      h("button", { type: "submit" }, "Add"),
      error,
    ),
    leave,
  );
}

function uploadPanel(file, upload) {
  const bar = h("progress", {
    max: file.size,
    value: 0,
    id: "upload-progress",
    "aria-label": `Uploading ${file.name}`,
  });
  const figures = h("p", { class: "upload-figures", "aria-live": "off" }, "Starting…");
  const state = h("p", { class: "upload-state", role: "status" });
  const announce = h("p", { class: "visually-hidden", role: "status" });
  const cancel = h("button", { type: "button", class: "button-quiet" }, "Cancel upload");
  cancel.addEventListener("click", () => {
    cancel.disabled = true;
    upload.cancel();
  });
  let lastAnnounced = -1;
  const panel = h(
    "div",
    { class: "upload", "aria-label": `Upload of ${file.name}` },
    h("p", { class: "upload-name" }, h("strong", {}, file.name), " ", formatBytes(file.size)),
    bar,
    figures,
    state,
    announce,
    cancel,
  );
  return {
    panel,
    progress({ sent, total, rate, secondsLeft }) {
      bar.value = sent;
      const percent = Math.floor(sent / total * 100);
      bar.setAttribute("aria-valuetext", `${percent}%`);
      figures.textContent = `${formatBytes(sent)} of ${formatBytes(total)} (${percent}%) · ${
        formatRate(rate)
      } · ${sent >= total ? "checking the video…" : formatTimeLeft(secondsLeft)}`;
      // Screen readers hear every 25 %, not every event.
      if (Math.floor(percent / 25) !== lastAnnounced) {
        lastAnnounced = Math.floor(percent / 25);
        announce.textContent = `Uploaded ${percent}%`;
      }
    },
    state(text) {
      state.textContent = text;
    },
  };
}

function composer(conversation, onSent) {
  const body = h("textarea", { id: "message-body", name: "body", rows: 2, maxlength: 10000 });
  const fileInput = h("input", {
    type: "file",
    id: "video-file",
    name: "file",
    accept: acceptAttribute(config),
  });
  const chosen = h("p", { class: "chosen muted", "aria-live": "polite" });
  const error = h("p", { class: "error", role: "alert", id: "composer-error" });
  const uploads = h("div", { class: "uploads" });
  const send = h("button", { type: "submit" }, "Send");
  let file = null;

  const choose = (picked) => {
    error.textContent = "";
    file = picked ?? null;
    if (!file) return (chosen.textContent = "");
    const problem = checkFile(file, config);
    if (problem) {
      error.textContent = problem;
      file = null;
      fileInput.value = "";
      chosen.textContent = "";
      return;
    }
    chosen.textContent = `Ready to send: ${file.name} (${formatBytes(file.size)})`;
  };
  fileInput.addEventListener("change", () => choose(fileInput.files?.[0]));

  const drop = h(
    "div",
    { class: "dropzone" },
    h("label", { for: "video-file", class: "dropzone-label" }, "Choose a video or drop it here"),
    fileInput,
    h(
      "p",
      { class: "hint", id: "video-hint" },
      `Up to ${formatBytes(config.max_upload_bytes)} · ${acceptedLabels(config)}`,
    ),
    chosen,
  );
  fileInput.setAttribute("aria-describedby", "video-hint");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("dragging");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
    choose(event.dataTransfer?.files?.[0]);
  });

  const postMessage = async (text) =>
    await api(`/api/chat/conversations/${conversation.id}/messages`, {
      method: "POST",
      json: { body: text },
    });

  const form = h(
    "form",
    {
      class: "composer",
      "aria-label": "Send a message",
      onsubmit: async (event) => {
        event.preventDefault();
        error.textContent = "";
        const text = body.value.trim();
        const sending = file;
        if (!text && !sending) {
          error.textContent = "Write a message or choose a video.";
          return;
        }
        if (!sending) {
          try {
            onSent(await postMessage(text));
            body.value = "";
          } catch (problem) {
            error.textContent = problem.message;
          }
          return;
        }
        let message = null;
        let upload = null;
        let panel = null;
        upload = startUpload(sending, {
          config,
          conversationId: conversation.id,
          createMessage: async () => {
            message = await postMessage(text);
            return message.id;
          },
          onProgress: (p) => panel?.progress(p),
          onState: (s) => panel?.state(s),
        });
        panel = uploadPanel(sending, upload);
        uploads.append(panel.panel);
        body.value = "";
        fileInput.value = "";
        choose(null);
        try {
          const attachment = await upload.done;
          if (message) onSent({ ...message, attachments: [attachment] });
          else onSent(null);
          panel.panel.remove();
        } catch (problem) {
          panel.panel.remove();
          if (problem?.name === "AbortError") toast("Upload cancelled");
          else if (problem instanceof ApiProblem) {
            error.textContent = explainUploadError(problem, sending, config);
          } else error.textContent = `The upload failed: ${problem?.message ?? problem}`;
          if (message) onSent({ ...message, attachments: [] });
        }
      },
    },
    field("message-body", "Message", body),
    drop,
    error,
    uploads,
    h("div", { class: "composer-actions" }, send),
  );
  return form;
}

function conversationView(id) {
  const section = h("section", { class: "conversation", "aria-labelledby": "conversation-title" });
  section.append(h("p", { class: "muted" }, "Loading…"));
  (async () => {
    let conversation;
    let page;
    try {
      [conversation, page] = await Promise.all([
        api(`/api/chat/conversations/${id}`),
        api(`/api/chat/conversations/${id}/messages?limit=50`),
      ]);
    } catch (problem) {
      replace(
        section,
        h("h1", { id: "conversation-title" }, "Conversation not found"),
        h(
          "p",
          {},
          problem.status === 404
            ? "It does not exist, or you are not one of its participants."
            : problem.message,
        ),
        h("a", { href: "#/" }, "Back to your conversations"),
      );
      return;
    }
    setTitle(conversationTitle(conversation));
    const list = h("ol", { class: "messages", "aria-label": "Messages, newest last" });
    /** Message id → where its videos go and the ids of those already there. */
    const shown = new Map();
    const add = (message, where = "end") => {
      if (!message) return;
      const known = shown.get(message.id);
      if (known) {
        // A poll during an upload shows the message before its video exists; the
        // video joins it when the upload (or a later poll) brings it.
        for (const attachment of message.attachments) {
          if (known.attachmentIds.has(attachment.id)) continue;
          known.attachmentIds.add(attachment.id);
          known.cards.append(attachmentCard(attachment, scope));
        }
        return;
      }
      // A message left empty by a refused or cancelled upload has nothing to show.
      if (!message.body && message.attachments.length === 0) return;
      const item = messageItem(message);
      shown.set(message.id, {
        cards: item.querySelector(".message-attachments"),
        attachmentIds: new Set(message.attachments.map((a) => a.id)),
      });
      if (where === "end") list.append(item);
      else list.prepend(item);
    };
    page.messages.forEach((m) => add(m));
    let cursor = page.next_cursor;
    const older = h("button", { type: "button", class: "button-quiet" }, "Load older messages");
    older.hidden = cursor === null;
    older.addEventListener("click", async () => {
      try {
        const more = await api(`/api/chat/conversations/${id}/messages?limit=50&before=${cursor}`);
        [...more.messages].reverse().forEach((m) => add(m, "start"));
        cursor = more.next_cursor;
        older.hidden = cursor === null;
      } catch (problem) {
        toast(problem.message, "error");
      }
    });
    const empty = h("p", { class: "muted empty" }, "No messages yet. Send the first video.");
    empty.hidden = shown.size > 0;

    const poll = async () => {
      try {
        const latest = await api(`/api/chat/conversations/${id}/messages?limit=20`);
        const before = shown.size;
        latest.messages.forEach((m) => add(m));
        if (shown.size !== before) empty.hidden = shown.size > 0;
      } catch {
        // the next poll tries again
      }
    };
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") poll();
    }, POLL_MS);
    scope.onClose(() => clearInterval(timer));

    const header = h(
      "header",
      { class: "conversation-head" },
      h("a", { href: "#/", class: "back" }, "← Conversations"),
      h("h1", { id: "conversation-title" }, conversationTitle(conversation)),
      participantsPanel(conversation, function added(updated) {
        const panel = participantsPanel(updated, added);
        panel.open = true;
        header.replaceChild(panel, header.lastChild);
        dispatchEvent(new Event(CONVERSATIONS_CHANGED));
        toast("Participant added");
      }),
    );
    replace(
      section,
      header,
      older,
      empty,
      list,
      composer(conversation, (message) => {
        if (message) {
          add(message);
          empty.hidden = shown.size > 0;
          list.lastElementChild?.scrollIntoView({ block: "nearest" });
        } else poll();
      }),
    );
    list.lastElementChild?.scrollIntoView({ block: "nearest" });
  })();
  return section;
}

function conversationsLayout(activeId) {
  const layout = h(
    "div",
    { class: `layout${activeId ? " has-conversation" : ""}` },
    conversationList(activeId),
  );
  if (activeId) {
    layout.append(conversationView(activeId));
  } else {
    setTitle("Conversations");
    layout.append(
      h(
        "section",
        { class: "conversation placeholder" },
        h("p", { class: "muted" }, "Choose a conversation, or start a new one."),
      ),
    );
  }
  return layout;
}

// ---------------------------------------------------------------- routing

function route() {
  scope.close();
  scope = new Scope();
  const hash = location.hash || "#/";
  if (!session.token && !session.load()) {
    if (hash !== "#/signin") {
      location.hash = "#/signin";
      return;
    }
  }
  renderNav();
  let view;
  if (hash === "#/signin") {
    if (session.token) {
      location.hash = "#/";
      return;
    }
    view = signInView();
    signInNotice = null;
  } else if (hash.startsWith("#/admin")) {
    setTitle("Administration");
    view = session.user.admin ? adminView() : h("p", {}, "The admin view is for administrators.");
  } else {
    const match = /^#\/c\/([0-9a-f-]{36})$/.exec(hash);
    view = conversationsLayout(match?.[1] ?? null);
  }
  replace(main, view);
  // Move focus to the new view for keyboard and screen reader users.
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

whenUnauthorized(() => {
  session.clear();
  signInNotice = "Your session has expired. Sign in again.";
  location.hash = "#/signin";
});

async function boot() {
  try {
    config = await api("/api/ui/config", { token: null });
  } catch (problem) {
    replace(
      main,
      h("h1", {}, "The server cannot be reached"),
      h("p", {}, problem.message),
    );
    return;
  }
  session.load();
  addEventListener("hashchange", route);
  route();
}

boot();
