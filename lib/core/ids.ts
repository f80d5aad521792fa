import { v7 } from "uuid";
import { z } from "zod";

/** A new time-ordered identifier (UUIDv7), so ids sort by creation time. */
export function newId(): string {
  return v7();
}

// The same check as the API's `idSchema` (routes/_schemas.ts): zod's RFC 9562 UUID.
const ID = z.string().uuid();

/**
 * Whether `value` has the shape of an id (a UUID), checked before it reaches
 * a query or names a file.
 *
 * @example
 * ```ts
 * isId("01936b2e-6f3a-7cc4-9d5e-2f0c1a9b8e77"); // true
 * isId("../jwt_secret"); // false
 * ```
 */
export function isId(value: unknown): value is string {
  return ID.safeParse(value).success;
}
