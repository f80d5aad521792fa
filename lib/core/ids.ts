import { v7 } from "uuid";

/** A new time-ordered identifier (UUIDv7), so ids sort by creation time. */
export function newId(): string {
  return v7();
}
