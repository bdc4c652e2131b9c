// Drives headless Chromium through the page moq-relay serves at `/` (run by tests/browser.rs).
//
//   node drive.mjs <page URL> <path> [screenshot.png]
//
// The page is opened with `?jwt=`, which must reach the WebTransport URL.
// Environment: MOQ_CHROMIUM (the browser executable), MOQ_WEB_MODULES (a directory whose
// node_modules holds playwright-core). Opens the page in a fresh profile, waits for <path> in the
// list of announced broadcasts, clicks it, and waits for at least three clock lines that arrive
// about a second apart; then clicks it again (a clean restart) and waits for them again; then
// subscribes to a path nobody announced and waits for the page to show "track not found"; then
// checks that a refused certificate and an unreachable relay are shown. Prints
// the first subscription's three lines as `clock: <line>` and their gaps as `gaps: <ms>,<ms>`.
// Exits 1 with a reason and a `*-failed.png` screenshot on failure.

import { createRequire } from "node:module";
import path from "node:path";

const [pageUrl, trackPath, screenshot] = process.argv.slice(2);
const require = createRequire(path.join(process.env.MOQ_WEB_MODULES, "node_modules", "/"));
const { chromium } = require("playwright-core");

/** Every wait is bounded. */
const TIMEOUT_MS = 20_000;

const browser = await chromium.launch({
  executablePath: process.env.MOQ_CHROMIUM,
  headless: true,
  // Loopback only: no sync, no updates, no component downloads, no metrics.
  args: ["--disable-background-networking", "--disable-component-update", "--no-first-run", "--metrics-recording-only"],
});
const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
const console_ = [];
page.on("console", (msg) => console_.push(`${msg.type()}: ${msg.text()}`));
page.on("pageerror", (err) => console_.push(`page error: ${err.message}`));

/** The frame lines on the page, oldest first. */
const frameLines = () =>
  page.$$eval("#frames li", (items) =>
    items
      .map((li) => ({
        group: li.dataset.group,
        frame: Number(li.dataset.frame),
        time: Number(li.dataset.time),
        text: li.querySelector(".text")?.textContent ?? null,
      }))
      .reverse(),
  );

/** Clock lines: each later frame of a group joined to the group's frame 0, with arrival times. */
function clockLines(lines) {
  const bases = new Map(lines.filter((l) => l.frame === 0).map((l) => [l.group, l.text]));
  return lines
    .filter((l) => l.frame > 0 && bases.has(l.group) && l.text !== null)
    .map((l) => ({ line: bases.get(l.group) + l.text, time: l.time }));
}

/** The last three clock lines, when they arrived 0.5–1.5 s apart; otherwise null. */
function liveClock(lines) {
  const clock = clockLines(lines).slice(-3);
  if (clock.length < 3) return null;
  const gaps = clock.slice(1).map((c, i) => c.time - clock[i].time);
  return gaps.every((g) => g >= 500 && g <= 1500) ? { clockLines: clock.map((c) => c.line), gaps } : null;
}

async function waitForClock(what) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const found = liveClock(await frameLines());
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`${what}: no three clock lines a second apart within ${TIMEOUT_MS} ms`);
    await page.waitForTimeout(250);
  }
}

async function errorsShown() {
  return page.$$eval("#errors li", (items) => items.map((li) => li.textContent));
}

// Records the URLs the page opens WebTransport sessions to, to check the token is passed on.
await page.addInitScript(() => {
  const Native = window.WebTransport;
  window.webTransportUrls = [];
  window.WebTransport = function (url, options) {
    window.webTransportUrls.push(String(url));
    return new Native(url, options);
  };
});
const TOKEN = "browser-test-token";

try {
  await page.goto(`${pageUrl}?jwt=${TOKEN}`, { timeout: TIMEOUT_MS });
  const button = page.locator("#paths button.path", { hasText: new RegExp(`^${trackPath}$`) });
  await button.waitFor({ timeout: TIMEOUT_MS });
  await button.click();
  const first = await waitForClock("first subscription");

  // Clicking the same path again ends the old subscription and starts a new one; the click
  // clears the frame list at once, so every line seen after it belongs to the new one.
  await button.click();
  await waitForClock("second subscription");

  const urls = await page.evaluate(() => window.webTransportUrls);
  if (urls.length !== 1 || new URL(urls[0]).searchParams.get("jwt") !== TOKEN) {
    throw new Error(`the page's ?jwt= was not passed on to WebTransport: ${JSON.stringify(urls)}`);
  }
  const errors = await errorsShown();
  if (errors.length > 0) throw new Error(`the page shows errors: ${errors.join(" | ")}`);
  if (screenshot) await page.screenshot({ path: screenshot });

  // A path nobody announced: the relay resets the subscription with NotFound (13), and the
  // page says so.
  await page.fill("#path", "no/such/track");
  await page.click("#subscribe button");
  await page
    .locator("#errors li", { hasText: "track not found: no/such/track (reset code 13)" })
    .waitFor({ timeout: TIMEOUT_MS });

  // Errors are shown: a pinned hash the relay's certificate does not match, and an HTTP
  // request that never reaches the relay (each in a fresh page).
  for (const [answer, shown] of [
    [(route) => route.fulfill({ body: "00".repeat(32) }), "refused the pinned development certificate"],
    [(route) => route.abort("connectionrefused"), "relay unreachable"],
  ]) {
    const other = await browser.newPage();
    await other.route("**/fingerprint", answer);
    await other.goto(pageUrl, { timeout: TIMEOUT_MS });
    await other.locator("#errors li", { hasText: shown }).waitFor({ timeout: TIMEOUT_MS });
    await other.close();
  }
  for (const line of first.clockLines) console.log(`clock: ${line}`);
  console.log(`gaps: ${first.gaps.join(",")}`);
  await browser.close();
} catch (err) {
  const shot = (screenshot ?? "browser-test.png").replace(/\.png$/, "") + "-failed.png";
  await page.screenshot({ path: shot }).catch(() => {});
  console.error(`${err.message}\nerrors shown: ${JSON.stringify(await errorsShown().catch(() => []))}`);
  console.error(`browser console:\n  ${console_.join("\n  ")}\nscreenshot: ${shot}`);
  await browser.close();
  process.exit(1);
}
