// TaskAPI from TypeScript: openapi-fetch, typed by what openapi-typescript generates from the spec.
//
//   npm ci
//   npm run types        # openapi/openapi.yaml -> build/ts/taskapi.d.ts
//   npm run examples     # type-check and compile -> build/examples/typescript_fetch.js
//   node build/examples/typescript_fetch.js http://localhost:8080
//
// Signs up a new account, logs in, then creates, lists, updates and deletes tasks, printing a
// line per step, while keeping a copy of the account's tasks in sync through the change feed.
// Last, it gives a script a read-only personal access token, uses it, and revokes it.
// Paths, parameters and bodies are checked against the spec when compiled.
import { randomUUID } from "node:crypto";
import createClient from "openapi-fetch";
import type { components, paths } from "../build/ts/taskapi.d.ts";

type Problem = components["schemas"]["Problem"];
type Task = components["schemas"]["Task"];

/** The success body; a documented error (a Problem) ends the example with its detail. */
function expect<T>(result: { data?: T; error?: Problem }, action: string): T {
  if (result.data === undefined) {
    const why = result.error ? `${result.error.status} ${result.error.detail}` : "no body";
    throw new Error(`${action}: ${why}`);
  }
  return result.data;
}

const baseUrl = process.argv[2] ?? "http://localhost:8080";
const email = `example-${randomUUID().slice(0, 8)}@example.com`;
const password = "correct-horse-battery";

const publicApi = createClient<paths>({ baseUrl });
const account = { email, password, name: "Jane Doe" };
const user = expect(await publicApi.POST("/api/v1/auth/register", { body: account }), "register");
console.log(`registered ${user.data.email}`);
const login = expect(
  await publicApi.POST("/api/v1/auth/login", { body: { email, password } }),
  "log in",
);
console.log(`logged in, token expires in ${login.data.expires_in} s`);

const api = createClient<paths>({
  baseUrl,
  headers: { Authorization: `${login.data.token_type} ${login.data.token}` },
});

/** Brings `copy` up to date from `since` (none: from nothing), page by page, in order: upsert
 * each task, drop each deleted id. The next `since`, and how many deletes came. */
async function sync(copy: Map<number, Task>, since?: string): Promise<[string, number]> {
  let deletes = 0;
  for (;;) {
    const query = { limit: 100, ...(since === undefined ? {} : { since }) };
    const page = expect(await api.GET("/api/v1/tasks/changes", { params: { query } }), "sync");
    for (const changed of page.data.tasks) copy.set(changed.id, changed);
    for (const gone of page.data.deleted) copy.delete(gone.id);
    deletes += page.data.deleted.length;
    since = page.meta.next_since;
    if (!page.meta.has_more) return [since, deletes];
  }
}

const copy = new Map<number, Task>();
let [since] = await sync(copy);

const report = {
  title: "Write the report",
  priority: "high",
  due_date: "2026-12-31T17:00:00Z",
} as const;
let task = expect(await api.POST("/api/v1/tasks", { body: report }), "create").data;
console.log(`created task ${task.id}: ${task.title} (${task.priority}, ${task.status})`);

const batch = { tasks: [{ title: "Plan" }, { title: "Build" }] };
const created = expect(await api.POST("/api/v1/tasks/batch", { body: batch }), "create many");
console.log(`created ${created.data.length} tasks in one batch`);

const page = expect(
  await api.GET("/api/v1/tasks", { params: { query: { sort: "-priority", limit: 10 } } }),
  "list",
);
const titles = page.data.map((t) => t.title).join(", ");
console.log(`listed ${page.meta.total_count} tasks, highest priority first: ${titles}`);

// PUT replaces every writable field: send those to keep along with the change.
const path = { id: task.id };
const done = {
  title: task.title,
  priority: task.priority,
  due_date: task.due_date,
  status: "completed",
} as const;
task = expect(await api.PUT("/api/v1/tasks/{id}", { params: { path }, body: done }), "update").data;
const due = task.due_date?.slice(0, 16).replace("T", " ");
console.log(`updated task ${task.id}: ${task.status}, due ${due} UTC`);

const deleted = expect(await api.DELETE("/api/v1/tasks/{id}", { params: { path } }), "delete");
console.log(`deleted task ${task.id}: ${deleted.data}`);

const gone = await api.GET("/api/v1/tasks/{id}", { params: { path } });
if (gone.error) {
  console.log(`task ${task.id} is gone: ${gone.error.status} ${gone.error.detail}`);
}

let deletes: number;
[since, deletes] = await sync(copy, since);
const listed = expect(await api.GET("/api/v1/tasks", { params: { query: { limit: 100 } } }), "list");
const same =
  listed.data.length === copy.size &&
  listed.data.every((t) => JSON.stringify(t) === JSON.stringify(copy.get(t.id)));
if (!same) throw new Error("the synced copy differs from the list");
const kept = [...copy.values()].map((t) => t.title).sort().join(", ");
console.log(`synced copy: ${kept}; ${deletes} deleted since the first sync; same as the list`);

// A script gets a token of its own, with only the powers it needs, and no password.
const grant = { name: "example script", scopes: ["tasks:read" as const] };
const pat = expect(await api.POST("/api/v1/auth/tokens", { body: grant }), "token").data;
console.log(`created personal access token "${pat.name}" with scopes ${pat.scopes.join(", ")}`);

const script = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${pat.token}` } });
const readable = expect(await script.GET("/api/v1/tasks"), "list with the token");
const refused = await script.POST("/api/v1/tasks", { body: { title: "Not allowed" } });
if (!refused.error) throw new Error("a read-only token could write");
console.log(
  `with the token: listed ${readable.meta.total_count} tasks; ` +
    `a write is refused: ${refused.error.status} ${refused.error.code}`,
);

const revoked = await api.DELETE("/api/v1/auth/tokens/{id}", { params: { path: { id: pat.id } } });
if (revoked.response.status !== 204) throw new Error(`revoke: ${revoked.response.status}`);
const after = await script.GET("/api/v1/tasks");
if (!after.error) throw new Error("a revoked token still works");
console.log(`revoked the token: ${after.error.status} ${after.error.code} afterwards`);
