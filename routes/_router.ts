import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "./_env.ts";
import { ApiError } from "../lib/core/errors.ts";
import { ProblemSchema } from "./_schemas.ts";

/**
 * A sub-app whose request validation failures become 400 `invalid_request`
 * problems naming the field.
 */
export function newRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    strict: false,
    defaultHook: (result) => {
      if (!result.success) {
        const issue = result.error.issues[0];
        const field = issue?.path.length ? issue.path.join(".") : result.target;
        throw new ApiError("invalid_request", `Field "${field}": ${issue?.message ?? "invalid"}`);
      }
    },
  });
}

/** An `application/json` response of `schema` for a route definition. */
export function json<T extends z.ZodType>(
  schema: T,
  description: string,
): { description: string; content: { "application/json": { schema: T } } } {
  return { description, content: { "application/json": { schema } } };
}

const problem = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: ProblemSchema } },
});

/** The problem responses most routes can give. */
export const problems = {
  400: problem("A field failed validation"),
  401: problem("Missing, malformed or expired token"),
  404: problem("No such resource, or the caller is not a participant"),
};

/** OpenAPI security requirement for Bearer-authenticated routes. */
export const bearer = [{ bearerAuth: [] }];
