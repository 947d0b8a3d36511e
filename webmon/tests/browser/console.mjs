// Drives Debian's chromium (headless, through playwright-core) against a running lvs-webmon.
// Started by webmon/tests/browser.rs, which owns the cluster: at each "STEP name" line this
// script waits for "GO" on stdin (the Rust side has done or checked its part). "OK name"
// lines report passed checks; any failure exits non-zero with the reason on stderr.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import readline from "node:readline";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`environment variable ${k} is not set`);
  return v;
};
const URL = env("WEBMON_URL");
const SHOT = env("SCREENSHOT");
const [ADMIN, ADMIN_PW, VIEWER, VIEWER_PW] = ["ADMIN", "ADMIN_PW", "VIEWER", "VIEWER_PW"].map(env);
const SERVICE = env("SERVICE");
const [RS_DOWN, RS_DRAIN, RS_FORGE] = env("SERVERS").split(",");
// An IPv6 service and real server, as the page shows them: "[2001:db8::80]:80".
const VIP6 = env("VIP6");
const RS6 = env("RS6");
const SOON = 30_000;

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function step(name) {
  console.log(`STEP ${name}`);
  const { value, done } = await lines.next();
  if (done || value.trim() !== "GO") throw new Error(`the test said ${JSON.stringify(value)} at step ${name}`);
  return Date.now();
}
const ok = (name) => console.log(`OK ${name}`);

const dirs = [];
async function browserContext() {
  const dir = mkdtempSync(join(tmpdir(), "lvs-webmon-chromium-"));
  dirs.push(dir);
  return chromium.launchPersistentContext(dir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    ignoreHTTPSErrors: true,
    viewport: { width: 1400, height: 900 },
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

async function login(page, user, password) {
  await page.goto(URL + "/");
  await page.waitForURL(/\/login$/, { timeout: SOON });
  await page.fill("#username", user);
  await page.fill("#password", password);
  await Promise.all([page.waitForLoadState("load"), page.click("#login")]);
}

const row = (page, server) => page.locator(`tr[data-service="${SERVICE}"][data-server="${server}"]`);

async function expectHealth(page, server, want) {
  await page.locator(`tr[data-service="${SERVICE}"][data-server="${server}"] td.health`)
    .filter({ hasText: new RegExp(`^${want}$`) })
    .waitFor({ timeout: SOON });
}

let admin, viewer;
try {
  admin = await browserContext();
  const page = admin.pages()[0] || (await admin.newPage());

  // A wrong password is refused: the login page again, with the error.
  await login(page, ADMIN, "not-the-password");
  if (!/\/login$/.test(page.url())) throw new Error(`wrong password led to ${page.url()}`);
  const err = await page.textContent("#login-error");
  if (!/Wrong user name or password/.test(err)) throw new Error(`no error shown: ${err}`);
  const cookies = await admin.cookies();
  if (cookies.some((c) => c.name === "lvs_session")) throw new Error("a session cookie after a wrong password");
  ok("wrong password refused");

  // The right one shows the overview with three healthy servers.
  await login(page, ADMIN, ADMIN_PW);
  await page.waitForURL(URL + "/", { timeout: SOON });
  await page.locator("tr[data-server]").nth(2).waitFor({ timeout: SOON });
  for (const s of [RS_DOWN, RS_DRAIN, RS_FORGE]) await expectHealth(page, s, "up");
  const n = await page.locator("tr[data-server]").count();
  if (n !== 3) throw new Error(`${n} real servers shown, not 3`);
  ok("overview with three healthy servers");
  await step("traffic");
  // The page shows the connections of that traffic (counters come with the next poll).
  await page.waitForFunction(
    () => [...document.querySelectorAll("td.inactive, td.active")].some((td) => td.textContent !== "0"),
    null, { timeout: SOON });
  await page.screenshot({ path: SHOT, fullPage: true });
  ok("screenshot");

  // One real server's HTTP service stops: the page shows it down within seconds.
  const killed = await step("kill");
  await expectHealth(page, RS_DOWN, "down");
  console.log(`TIME down_on_page_ms ${Date.now() - killed}`);
  ok("stopped server shown down");

  // Drain: the admin clicks, the page shows the result, the director has weight 0.
  await row(page, RS_DRAIN).locator("button.drain").click();
  await page.locator("#result.ok").filter({ hasText: "quiesced" }).waitFor({ timeout: SOON });
  await step("drained");
  await expectHealth(page, RS_DRAIN, "quiesced");
  ok("drain shown");

  // A viewer sees everything and has no controls; a forged request is refused.
  viewer = await browserContext();
  const vpage = viewer.pages()[0] || (await viewer.newPage());
  await login(vpage, VIEWER, VIEWER_PW);
  await vpage.waitForURL(URL + "/", { timeout: SOON });
  await vpage.locator("tr[data-server]").nth(2).waitFor({ timeout: SOON });
  await expectHealth(vpage, RS_FORGE, "up");
  for (const sel of ["button.drain", "button.set-weight", "button.maint-on", "button.remove-server", "form.add-server"]) {
    const c = await vpage.locator(sel).count();
    if (c !== 0) throw new Error(`viewer sees ${c} x ${sel}`);
  }
  if (await vpage.locator("#add-service").isVisible()) throw new Error("viewer sees the add-service form");
  const forged = await vpage.evaluate(async ([service, server]) => {
    const s = await (await fetch("/api/session")).json();
    const r = await fetch("/api/action/drain", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": s.csrf },
      body: JSON.stringify({ service, server }),
    });
    return [r.status, await r.text()];
  }, [SERVICE, RS_FORGE]);
  if (forged[0] !== 403) throw new Error(`forged viewer request answered ${forged[0]}: ${forged[1]}`);
  ok("viewer has no controls and a forged request is refused");
  await step("forged");

  // IPv6: the admin adds a service on an IPv6 VIP and an IPv6 real server with the page's
  // forms; both show bracketed, the director has them, and a click drains the server.
  await page.fill("#add-service [name=vip]", VIP6);
  await page.fill("#add-service [name=scheduler]", "rr");
  await page.click("#add-service button[type=submit]");
  await page.locator("#result.ok").filter({ hasText: `tcp/${VIP6} added` }).waitFor({ timeout: SOON });
  const svc6 = `tcp/${VIP6}`;
  const block6 = page.locator(`div.service[data-service="${svc6}"]`);
  await block6.locator("form.add-server").waitFor({ timeout: SOON });
  const title = await block6.locator("h3").textContent();
  if (!title.startsWith(`TCP ${VIP6}  scheduler rr`)) throw new Error(`IPv6 service shown as ${JSON.stringify(title)}`);
  await block6.locator("input[name=server]").fill(RS6);
  await block6.locator("input[name=weight]").fill("2");
  await block6.locator("form.add-server button[type=submit]").click();
  const row6 = page.locator(`tr[data-service="${svc6}"][data-server="${RS6}"]`);
  await row6.waitFor({ timeout: SOON });
  const cell = await row6.locator("td").first().textContent();
  if (!cell.startsWith(`${RS6} (`)) throw new Error(`IPv6 real server shown as ${JSON.stringify(cell)}`);
  ok("IPv6 service and real server shown bracketed");
  await step("ipv6_added");
  await row6.locator("button.drain").click();
  await page.locator("#result.ok").filter({ hasText: "quiesced" }).waitFor({ timeout: SOON });
  await step("ipv6_drained");
  ok("IPv6 real server drained");
  console.log("DONE");
} catch (e) {
  console.error(`browser test failed: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
} finally {
  for (const c of [viewer, admin]) if (c) await c.close().catch(() => {});
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  process.exit(process.exitCode || 0);
}
