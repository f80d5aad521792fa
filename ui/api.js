/** The API client: the signed-in user's token, and JSON requests that fail with readable errors. */

const TOKEN_KEY = "offchat.token";
/** Where tus-js-client keeps the URLs of unfinished uploads (`tus::<fingerprint>::<n>`). */
const RESUMABLE_KEY_PREFIX = "tus::";

/** An error answer from the API (application/problem+json), or a network failure (status 0). */
export class ApiProblem extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.name = "ApiProblem";
    this.status = status;
    this.code = code;
  }
}

/** Decodes a JWT's payload for display only: the server verifies it, the page just reads it. */
export function decodeToken(token) {
  try {
    const part = token.split(".")[1];
    const base64 = part.replaceAll("-", "+").replaceAll("_", "/");
    const text = new TextDecoder().decode(
      Uint8Array.from(
        atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")),
        (c) => c.charCodeAt(0),
      ),
    );
    const payload = JSON.parse(text);
    if (typeof payload.sub !== "string") return null;
    return {
      id: payload.sub,
      admin: payload.role === "admin",
      expiresAt: typeof payload.exp === "number" ? payload.exp * 1000 : null,
    };
  } catch {
    return null;
  }
}

/** The signed-in session, kept in sessionStorage, or localStorage when asked to remember it. */
export const session = {
  token: null,
  user: null,

  load() {
    const token = sessionStorage.getItem(TOKEN_KEY) ?? localStorage.getItem(TOKEN_KEY);
    const user = token ? decodeToken(token) : null;
    if (!token || !user || (user.expiresAt !== null && user.expiresAt <= Date.now())) {
      this.clear();
      return false;
    }
    this.token = token;
    this.user = user;
    return true;
  },

  save(token, remember) {
    const user = decodeToken(token);
    if (!user) throw new ApiProblem(0, "invalid_token", "That does not look like a token (a JWT)");
    this.clear();
    (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
    this.token = token;
    this.user = user;
  },

  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(TOKEN_KEY);
    // Unfinished resumable uploads are remembered by URL; whoever signs in next on
    // this browser must not learn them (an upload URL is one half of a takeover).
    for (const key of Object.keys(localStorage)) {
      if (key.startsWith(RESUMABLE_KEY_PREFIX)) localStorage.removeItem(key);
    }
    this.token = null;
    this.user = null;
  },
};

/** Called when the API answers 401: the session is over. */
let onUnauthorized = () => {};

/** Sets what happens when a request comes back 401. */
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

/** Reads a problem+json body (or any error body) into an ApiProblem. */
export async function problemFrom(response) {
  let code = "error";
  let detail = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (typeof body.code === "string") code = body.code;
    if (typeof body.detail === "string") detail = body.detail;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiProblem(response.status, code, detail);
}

/**
 * A JSON request with the session's token. `json` is sent as the body; the
 * answer's JSON is returned (null for 204). Errors throw ApiProblem.
 */
export async function api(path, { method = "GET", json, signal, token = session.token } = {}) {
  const headers = new Headers({ accept: "application/json" });
  if (token) headers.set("authorization", `Bearer ${token}`);
  if (json !== undefined) headers.set("content-type", "application/json");
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
      signal,
      credentials: "omit",
    });
  } catch (error) {
    if (error?.name === "AbortError") throw error;
    throw new ApiProblem(0, "network", "The server could not be reached. Check your connection.");
  }
  if (!response.ok) {
    const problem = await problemFrom(response);
    if (response.status === 401 && token === session.token) onUnauthorized(problem);
    throw problem;
  }
  return response.status === 204 ? null : await response.json();
}

/** A multipart POST (a small form with a file) with the session's token; its JSON answer. */
export async function upload(path, form) {
  const headers = new Headers({ accept: "application/json" });
  if (session.token) headers.set("authorization", `Bearer ${session.token}`);
  let response;
  try {
    response = await fetch(path, { method: "POST", headers, body: form, credentials: "omit" });
  } catch {
    throw new ApiProblem(0, "network", "The server could not be reached. Check your connection.");
  }
  if (!response.ok) throw await problemFrom(response);
  return await response.json();
}

/** Builds a query string from the non-empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
