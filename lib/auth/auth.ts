import { createRemoteJWKSet, importSPKI, type JWTPayload, jwtVerify, SignJWT } from "jose";
import { LRUCache } from "lru-cache";
import type { Config } from "../config/config.ts";
import { ApiError } from "../core/errors.ts";

/** The authenticated caller, from a verified token. */
export interface User {
  id: string;
  admin: boolean;
}

/**
 * What a signed media URL may be used for. `storyboard` opens the WebVTT
 * track, `storyboard-sprite` the sprite sheet its cues point into: a sprite
 * token cannot open the track, so it cannot be used to mint another one.
 * `hls` opens the files of the adaptive ladder (HLS playlists, the DASH
 * manifest and their segments), and rides in the path, not the query.
 * `runner-input` lets one remote runner read the original of the job it
 * accepted (lib/runners/): its "attachment" is `<job id>.<attempt>`.
 */
export type MediaPurpose =
  | "download"
  | "stream"
  | "thumbnail"
  | "storyboard"
  | "subtitles"
  | "storyboard-sprite"
  | "hls"
  | "events"
  | "runner-input";

/** A verified media token: who it names, and when it expires (epoch milliseconds). */
export interface MediaAccess {
  user: User;
  expiresAt: number;
}

/** The one attachment and purpose a media token is good for. */
export interface MediaTokenScope {
  attachmentId: string;
  purpose: MediaPurpose;
}

/** Options for {@linkcode Auth.signMediaToken}. */
export interface SignMediaTokenOptions extends MediaTokenScope {
  /**
   * The latest expiry the new token may have (epoch milliseconds): a URL made
   * while answering a media token never outlives that token.
   */
  notAfter?: number;
}

/** Verifies user tokens and signs/verifies the short-lived media URL tokens. */
export interface Auth {
  verifyUserToken(token: string): Promise<User>;
  signMediaToken(user: User, options: SignMediaTokenOptions): Promise<string>;
  /** Throws the same 401 for a token that is invalid, expired or for another scope. */
  verifyMediaToken(token: string, scope: MediaTokenScope): Promise<MediaAccess>;
  /** Mints a user token with the local HS256 secret; fails when an identity provider is configured. */
  signUserToken(
    userId: string,
    options?: { admin?: boolean; ttlSeconds?: number },
  ): Promise<string>;
}

const USER_ID_PATTERN = /^[\w.@:+-]{1,128}$/;
const MEDIA_AUDIENCE = "offchat-media";
const MEDIA_TOKEN_CACHE_SIZE = 10_000;

function unauthorized(): ApiError {
  return new ApiError("unauthorized", "Invalid or expired token", {
    "www-authenticate": 'Bearer realm="offchat"',
  });
}

async function deriveKey(secret: string, label: string): Promise<Uint8Array<ArrayBuffer>> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(label)));
}

/** The HS256 key material of signed media URLs, derived from their secret. */
export function mediaUrlKey(secret: string): Promise<Uint8Array<ArrayBuffer>> {
  return deriveKey(secret, "offchat media url v1");
}

type VerifyKey = Parameters<typeof jwtVerify>[1];

async function userKey(
  config: Config,
  localSecret: string,
): Promise<{ key: VerifyKey; algorithms: string[] }> {
  if (config.jwtJwksUrl) {
    return {
      key: createRemoteJWKSet(new URL(config.jwtJwksUrl)) as VerifyKey,
      algorithms: config.jwtAlgorithms,
    };
  }
  if (config.jwtPublicKey) {
    // A PEM key imports under exactly one of the algorithms; that one is pinned.
    for (const alg of config.jwtAlgorithms) {
      try {
        return { key: await importSPKI(config.jwtPublicKey, alg), algorithms: [alg] };
      } catch {
        // not a key of this algorithm; try the next
      }
    }
    throw new Error(
      `JWT_PUBLIC_KEY is not an SPKI PEM key for any of "${config.jwtAlgorithms.join(",")}"`,
    );
  }
  return { key: new TextEncoder().encode(localSecret), algorithms: ["HS256"] };
}

/**
 * Builds the token verifier. `localSecret` is `JWT_SECRET` or the generated
 * secret; media URL tokens use a key derived from `MEDIA_URL_SECRET` or, by
 * default, from it, and their own audience, so a media token can never pass
 * as a user token.
 */
const BEARER = /^Bearer[ ]+([A-Za-z0-9\-_=.]+)\s*$/i;

/** The token of an `Authorization: Bearer …` header; null when there is none or it is malformed. */
export function bearerToken(header: string | undefined): string | null {
  const match = header ? BEARER.exec(header) : null;
  return match ? match[1]! : null;
}

const verifiedRequests = new WeakMap<Request, Promise<User>>();

/**
 * `auth.verifyUserToken(token)` at most once per request: the rate limiter,
 * the upload cap and `requireUser` all need the caller of the same request.
 */
export function verifyRequestUser(auth: Auth, request: Request, token: string): Promise<User> {
  let verified = verifiedRequests.get(request);
  if (!verified) {
    verified = auth.verifyUserToken(token);
    verifiedRequests.set(request, verified);
  }
  return verified;
}

export async function createAuth(config: Config, localSecret: string): Promise<Auth> {
  const { key, algorithms } = await userKey(config, localSecret);
  const mediaKey = await crypto.subtle.importKey(
    "raw",
    await mediaUrlKey(config.mediaUrlSecret ?? localSecret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
  // A player sends the same media token with every range request: remember
  // verified ones until they expire (bounded, the least recently used
  // dropped first). The expiry is checked here, against the token's own
  // `exp`, exactly as jose does.
  type MediaEntry = { user: User; att: unknown; use: unknown; exp: number };
  const verifiedMedia = new LRUCache<string, MediaEntry>({ max: MEDIA_TOKEN_CACHE_SIZE });
  const localUserKey = new TextEncoder().encode(localSecret);
  const usesLocalSecret = !config.jwtPublicKey && !config.jwtJwksUrl;

  function toUser(payload: JWTPayload): User {
    if (typeof payload.sub !== "string" || !USER_ID_PATTERN.test(payload.sub)) {
      // The same answer as a bad signature: saying why would confirm the signature was good.
      throw unauthorized();
    }
    return { id: payload.sub, admin: payload.role === "admin" };
  }

  async function verifiedMediaEntry(token: string): Promise<MediaEntry> {
    let entry = verifiedMedia.get(token);
    if (!entry || entry.exp * 1000 <= Date.now()) {
      verifiedMedia.delete(token);
      try {
        const { payload } = await jwtVerify(token, mediaKey, {
          algorithms: ["HS256"],
          audience: MEDIA_AUDIENCE,
          requiredClaims: ["exp", "sub"],
        });
        entry = {
          user: { ...toUser(payload), admin: payload.adm === true },
          att: payload.att,
          use: payload.use,
          exp: payload.exp!,
        };
      } catch (error) {
        if (error instanceof ApiError) throw error;
        throw unauthorized();
      }
      verifiedMedia.set(token, entry);
    }
    return entry;
  }

  return {
    async verifyUserToken(token) {
      try {
        const { payload } = await jwtVerify(token, key, {
          algorithms,
          issuer: config.jwtIssuer,
          audience: config.jwtAudience,
          requiredClaims: ["exp", "sub"],
          clockTolerance: 5,
        });
        if (payload.aud === MEDIA_AUDIENCE) throw unauthorized();
        return toUser(payload);
      } catch (error) {
        // Every failure is the same 401: the reason would only help an attacker.
        if (error instanceof ApiError) throw error;
        throw unauthorized();
      }
    },
    async signMediaToken(user, options) {
      const { attachmentId, purpose } = options;
      const now = Math.floor(Date.now() / 1000);
      let exp = now + config.mediaUrlTtl;
      if (options.notAfter !== undefined) exp = Math.min(exp, Math.floor(options.notAfter / 1000));
      return await new SignJWT({ att: attachmentId, use: purpose, adm: user.admin || undefined })
        .setProtectedHeader({ alg: "HS256" })
        .setSubject(user.id)
        .setAudience(MEDIA_AUDIENCE)
        .setIssuedAt(now)
        .setExpirationTime(exp)
        .sign(mediaKey);
    },
    async verifyMediaToken(token, scope) {
      const entry = await verifiedMediaEntry(token);
      if (entry.att !== scope.attachmentId || entry.use !== scope.purpose) throw unauthorized();
      return { user: entry.user, expiresAt: entry.exp * 1000 };
    },
    async signUserToken(userId, options = {}) {
      if (!usesLocalSecret) {
        throw new Error("Tokens come from the configured identity provider, not this server");
      }
      if (!USER_ID_PATTERN.test(userId)) throw new Error(`Invalid user id "${userId}"`);
      const jwt = new SignJWT(options.admin ? { role: "admin" } : {})
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setSubject(userId)
        .setIssuedAt()
        .setExpirationTime(`${options.ttlSeconds ?? 24 * 3600}s`);
      if (config.jwtIssuer) jwt.setIssuer(config.jwtIssuer);
      if (config.jwtAudience) jwt.setAudience(config.jwtAudience);
      return await jwt.sign(localUserKey);
    },
  };
}
