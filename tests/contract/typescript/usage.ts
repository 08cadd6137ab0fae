// A TypeScript client's view of the API, type-checked (never run) against the types that
// openapi-typescript generates from openapi/openapi.yaml into build/ts/ (make contract).
import type { components, operations, paths } from "../../../build/ts/taskapi.d.ts";

type Task = components["schemas"]["Task"];
type TaskInput = components["schemas"]["TaskInput"];
type Problem = components["schemas"]["Problem"];
type TaskPatch = components["schemas"]["TaskPatch"];
type RefreshRequest = components["schemas"]["RefreshRequest"];
type ListQuery = NonNullable<paths["/api/v1/tasks"]["get"]["parameters"]["query"]>;
type ListBody = paths["/api/v1/tasks"]["get"]["responses"]["200"]["content"]["application/json"];
type LoginBody = paths["/api/v1/auth/login"]["post"]["responses"]["200"]["content"]["application/json"];
type NotFound = paths["/api/v1/tasks/{id}"]["get"]["responses"]["404"]["content"]["application/problem+json"];
type BatchBody = NonNullable<operations["createTaskBatch"]["requestBody"]>["content"]["application/json"];

export const draft: TaskInput = {
  title: "Write the report",
  priority: "high",
  due_date: "2026-12-31T17:00:00Z",
};
export const cleared: TaskInput = { title: "No deadline", due_date: null };
export const query: ListQuery = { status: "pending", priority: "high", page: 1, limit: 20 };

export function titles(body: ListBody): string[] {
  // Offset pages count the set; cursor pages leave the count out.
  const pages: number | undefined = body.meta.total_pages;
  return body.data.map((task: Task) => `${task.title} (${task.status}, ${pages ?? "?"} pages)`);
}

export function nextPage(body: ListBody): ListQuery | null {
  const cursor: string | null = body.meta.next_cursor;
  return cursor === null ? null : { cursor, limit: body.meta.limit };
}

export function bearer(body: LoginBody): string {
  return `${body.data.token_type} ${body.data.token}`;
}

export function refreshBody(body: LoginBody): RefreshRequest {
  return { refresh_token: body.data.refresh_token };
}

export const batch: BatchBody = { tasks: [{ title: "Plan" }, { title: "Build", priority: "high" }] };

export const finish: TaskPatch = { status: "completed", due_date: null };

export function explain(problem: NotFound | Problem): string {
  const fields = (problem.errors ?? []).map((e) => `${e.field}: ${e.message}`);
  return [problem.detail, ...fields].join("\n");
}

// @ts-expect-error status is one of pending, in_progress, completed
export const badStatus: TaskInput = { title: "x", status: "done" };
// @ts-expect-error title is required
export const noTitle: TaskInput = { priority: "low" };
// @ts-expect-error only due_date may be null in a patch
export const nullTitle: TaskPatch = { title: null };
