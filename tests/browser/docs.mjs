// Drives the docs pages in headless Chromium as a new user would; tests/test_browser.py asserts.
//
//   node tests/browser/docs.mjs swagger-ui|redoc BASE_URL SCREENSHOT.png
//
// Prints one JSON object: every request the page made, CSP violations, page errors and console
// errors, and what the page showed. Exits non-zero only when the page could not be driven.
// Chromium is the system's (CHROMIUM, default /usr/bin/chromium): nothing is downloaded.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const [mode, base, screenshot] = process.argv.slice(2);
const TIMEOUT = 15000;

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "taskapi-chromium-"));
  // A fresh profile (--user-data-dir) each run: no stored token, no cache.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 900 },
  });
  const seen = { requests: [], blocked: [], violations: [], errors: [] };
  context.on("request", (request) => seen.requests.push(request.url()));
  // Whatever the page asks of another host is recorded and never sent.
  await context.route(
    (url) => !["127.0.0.1", ""].includes(url.hostname) && !["data:", "blob:"].includes(url.protocol),
    (route) => {
      seen.blocked.push(route.request().url());
      return route.abort("blockedbyclient");
    },
  );
  await context.addInitScript(() =>
    document.addEventListener("securitypolicyviolation", (event) =>
      console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`),
    ),
  );
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (error) => seen.errors.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    (message.text().startsWith("CSP violation") ? seen.violations : seen.errors).push(message.text());
  });
  try {
    const shown = mode === "redoc" ? await redoc(page) : await swaggerUI(page);
    console.log(JSON.stringify({ ...seen, ...shown }, null, 2));
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

// Swagger UI: sign up, log in, authorize, create a task and list tasks, then create a personal
// access token, authorize with it instead and list and create again, all with the values the
// page itself fills in (the token's example grants `tasks:read` only).
async function swaggerUI(page) {
  await page.goto(`${base}/ui/`);
  await page.locator(".swagger-ui .info .title").waitFor();
  const servers = await page.locator(".servers select option").allTextContents();

  const registered = await execute(page, "auth", "register");
  const login = await execute(page, "auth", "login");
  const token = login.body?.data?.token;
  if (!token) throw new Error(`login gave no token: ${JSON.stringify(login)}`);
  await authorize(page, token);

  const created = await execute(page, "tasks", "createTask");
  const listed = await execute(page, "tasks", "listTasks");

  const personalToken = await execute(page, "tokens", "createPersonalAccessToken");
  const secret = personalToken.body?.data?.token;
  if (!secret) throw new Error(`no personal access token: ${JSON.stringify(personalToken)}`);
  await authorize(page, secret);
  const listedWithToken = await execute(page, "tasks", "listTasks");
  const createdWithToken = await execute(page, "tasks", "createTask");
  // The operation down to its answer: the filters left empty, the request, the task listed.
  const clip = await page.evaluate(() => {
    const block = document.querySelector("#operations-tasks-listTasks").getBoundingClientRect();
    const answer = document
      .querySelector("#operations-tasks-listTasks .live-responses-table tr.response")
      .getBoundingClientRect();
    const y = block.top + window.scrollY;
    return { x: block.left, y, width: block.width, height: answer.bottom + window.scrollY - y };
  });
  await page.screenshot({ path: screenshot, fullPage: true, clip });
  return {
    servers,
    registered,
    login: { status: login.status },
    created,
    listed,
    personalToken: { status: personalToken.status, scopes: personalToken.body?.data?.scopes },
    listedWithToken,
    createdWithToken,
  };
}

// The "Authorize" dialog: bearerAuth's box takes a login session's token or a personal access
// token alike; a token given before is logged out first.
async function authorize(page, token) {
  await page.locator(".scheme-container .authorize").click();
  const dialog = page.locator(".dialog-ux .modal-ux");
  const bearer = dialog.locator(".auth-container").filter({ hasText: "bearerAuth" });
  const logout = bearer.locator("button", { hasText: "Logout" });
  if (await logout.isVisible()) await logout.click();
  await bearer.locator("input").fill(token);
  await bearer.locator("button.authorize").click();
  await dialog.locator("button.btn-done").first().click();
}

// Opens an operation, presses "Try it out" and "Execute" without changing a thing, and reads
// the request URL and the response Swagger UI shows.
async function execute(page, tag, operationId) {
  const block = page.locator(`#operations-${tag}-${operationId}`);
  if (!(await block.locator(".try-out__btn").isVisible())) {
    await block.locator(".opblock-summary").first().click();
  }
  // A second run of an operation: still in "Try it out", with the last answer to clear.
  if ((await block.locator(".try-out__btn").textContent()).trim() === "Try it out") {
    await block.locator(".try-out__btn").click();
  } else if (await block.locator("button.btn-clear").isVisible()) {
    await block.locator("button.btn-clear").click();
  }
  await block.locator("button.execute").click();
  const status = block.locator(".live-responses-table tr.response .response-col_status");
  await status.waitFor();
  const text = await block.locator(".live-responses-table pre.microlight code").first().textContent();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return {
    url: await block.locator(".request-url pre").textContent(),
    status: Number(await status.textContent()),
    body,
  };
}

// ReDoc: every operation rendered, with its method and path; the screenshot shows one.
async function redoc(page) {
  await page.goto(`${base}/redoc`);
  await page.locator("[data-section-id='tag/tasks/operation/listTasks'] .http-verb").waitFor();
  const operations = await page.$$eval(
    "[data-section-id^='tag/'][data-section-id*='/operation/']",
    (sections) =>
      sections.map((section) => {
        const verb = section.querySelector(".http-verb");
        return {
          operationId: section.getAttribute("data-section-id").split("/operation/")[1],
          method: verb?.textContent.toUpperCase() ?? null,
          path: verb ? verb.parentElement.textContent.slice(verb.textContent.length) : null,
        };
      }),
  );
  const title = await page.locator("h1").first().textContent();
  // As a link to the operation would: ReDoc scrolls there and opens it in the menu.
  await page.evaluate(() => {
    window.location.hash = "tag/tasks/operation/listTasks";
  });
  await page.locator("li[data-item-id='tag/tasks/operation/listTasks'] label.active").waitFor();
  await page.waitForTimeout(300); // the scroll settles
  await page.screenshot({ path: screenshot });
  return { title, operations };
}

main().catch((error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});
