// Browser tests of `dane-audit serve`, in Debian's headless Chromium driven
// by playwright-core (no browser download). Run by tests/serve_testbed.rs
// inside the test bed's network namespace, against a server it started:
//
//   node tests/browser/serve.mjs BASE_URL SCREENSHOT_DIR WATCHED_DOMAIN
//
// The server runs with --db: a watch database in which WATCHED_DOMAIN (the
// failing scenario) has a history, with hostile text in it.
//
// Prints one line per check and exits 1 on the first failure.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const [base, shots, watched] = process.argv.slice(2);
if (!base || !shots || !watched) {
  console.error("usage: serve.mjs BASE_URL SCREENSHOT_DIR WATCHED_DOMAIN");
  process.exit(2);
}

// Scenarios of testdata/testbed/scenarios.tsv.
const SLOW_PASS = "dns-ns-dead.example"; // a dead secondary: lookups take seconds, results trickle in
const PASS = "good-311-211.example";
const FAIL = "rec-wrong-selector.example";
const NOJS = "rec-stale.example";

// The flags the machine notes ask for: no sandbox as root, and nothing
// that calls home (the network here is closed).
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

function ok(what) {
  console.log(`ok   ${what}`);
}

function check(cond, what, detail) {
  if (!cond) {
    throw new Error(`FAIL ${what}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
  }
  ok(what);
}

// Serious and critical axe violations on the current page (all WCAG 2.1 A
// and AA rules plus best practices are run; minor ones are printed only).
async function axe(page, label) {
  // Evaluated through the DevTools protocol: the page's CSP (scripts from
  // its own origin only) stays on and is not weakened for the test.
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
    });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help }));
  });
  for (const v of result) {
    console.log(`     axe ${label}: ${v.impact} ${v.id} (${v.nodes}): ${v.help}`);
  }
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  check(bad.length === 0, `axe: no serious violations on ${label}`, bad);
}

async function verdictText(page) {
  return (await page.locator("#verdict-h").innerText()).replace(/\s+/g, " ").trim();
}

async function findingCodes(page) {
  return page.locator("li.finding a.code").allInnerTexts();
}

async function run() {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ARGS });
  const cspErrors = [];
  // Script errors, CSP violations ("Refused to ..."), and any asset the
  // page asked for that failed. (A page's own 4xx, such as the form with a
  // refused input, is expected and not counted.)
  const watch = (page) => {
    page.on("console", (m) => {
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) cspErrors.push(m.text());
    });
    page.on("pageerror", (e) => cspErrors.push(String(e)));
    page.on("response", (r) => {
      if (r.request().resourceType() !== "document" && r.status() >= 400) {
        cspErrors.push(`${r.status()} ${r.url()}`);
      }
    });
    page.on("requestfailed", (r) => {
      if (r.resourceType() !== "document" && r.resourceType() !== "eventsource") {
        cspErrors.push(`failed ${r.url()}`);
      }
    });
  };
  try {
    // 1. Keyboard only: skip link first, then the field; type a domain,
    //    Enter; the progress lines stream in, then the report replaces them.
    const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
    const page = await ctx.newPage();
    watch(page);
    await page.goto(`${base}/`);
    await page.keyboard.press("Tab");
    check(await page.evaluate(() => document.activeElement.className === "skip"), "Tab reaches the skip link first");
    let presses = 1;
    while (presses < 6 && !(await page.evaluate(() => document.activeElement.id === "domain"))) {
      await page.keyboard.press("Tab");
      presses += 1;
    }
    check(presses <= 3, "Tab reaches the domain field (after the skip link and the home link)", presses);
    await page.keyboard.type(SLOW_PASS);
    await page.keyboard.press("Enter");
    await page.waitForURL(`${base}/check/${SLOW_PASS}`);
    await page.locator("#progress li").first().waitFor({ timeout: 30000 });
    const lines = await page.locator("#progress li").count();
    check(lines > 0, "progress lines appear while the audit runs", lines);
    await page.locator("#verdict-h").waitFor({ timeout: 90000 });
    check((await verdictText(page)).endsWith("PASS"), `verdict of ${SLOW_PASS} appears`, await verdictText(page));
    check(
      await page.evaluate(() => document.activeElement && document.activeElement.id === "verdict-h"),
      "focus moves to the verdict when the report arrives",
    );
    check((await findingCodes(page)).includes("ns-unreachable"), "its finding appears", await findingCodes(page));
    check(page.url() === `${base}/check/${SLOW_PASS}`, "the result has a stable URL");
    await axe(page, "a passing report (JS)");

    // 2. A failing scenario through the form; the fix's copy button copies
    //    the exact record to the clipboard.
    await page.goto(`${base}/`);
    await page.fill("#domain", FAIL);
    await page.click("button[type=submit]");
    await page.locator("#verdict-h").waitFor({ timeout: 90000 });
    check((await verdictText(page)).endsWith("FAIL"), `verdict of ${FAIL} is FAIL`, await verdictText(page));
    const codes = await findingCodes(page);
    check(codes.includes("tlsa-no-match") && codes.includes("tlsa-wrong-selector"), "its findings appear", codes);
    const button = page.locator("li.finding button.copy").first();
    check(await button.isVisible(), "the fix's copy button is shown");
    const want = await button.getAttribute("data-copy");
    check(/^(_25\._tcp\.\S+ IN TLSA )?\d \d \d [0-9a-f]+$/.test(want), "the button holds a record", want);
    await button.click();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    check(copied === want, "copy puts the record on the clipboard", { copied, want });
    check((await button.locator(".label").innerText()) === "Copied", "the button says it copied");
    await page.waitForFunction(() => document.getElementById("announce").textContent.startsWith("Copied"));
    ok("the copy is announced to screen readers");
    await page.screenshot({ path: `${shots}/serve-fail.png`, fullPage: true });
    await axe(page, "a failing report (JS)");

    await page.goto(`${base}/check/${PASS}`);
    await page.locator("#verdict-h").waitFor({ timeout: 90000 });
    await page.screenshot({ path: `${shots}/serve-pass.png`, fullPage: true });
    check((await verdictText(page)).endsWith("PASS"), `verdict of ${PASS} is PASS`);

    // 2b. The failing domain is watched: its result page links to its
    //     history; the history shows the changes, newest first, with
    //     the stored hostile text as text.
    check(FAIL === watched, "the failing scenario is the watched one", { FAIL, watched });
    await page.goto(`${base}/check/${FAIL}`);
    await page.locator("#verdict-h").waitFor({ timeout: 90000 });
    await page.getByRole("link", { name: "its history of changes" }).click();
    await page.waitForURL(`${base}/history/${FAIL}`);
    check(
      (await page.locator("#history-h").innerText()).replace(/\s+/g, " ").trim() === `History of ${FAIL} PASS`,
      "the history page names the domain and its last verdict",
      await page.locator("#history-h").innerText(),
    );
    const changes = await page.locator("li.change").count();
    check(changes === 3, "the history shows each audit that changed something", changes);
    const firstChange = await page.locator("li.change").first().innerText();
    check(firstChange.includes("verdict fail -> pass"), "newest first", firstChange);
    const hostile = await page.locator("li.change").nth(1).innerText();
    check(hostile.includes("<script>alert(1)</script>"), "stored hostile text is shown as text", hostile);
    check(await page.evaluate(() => !window.__xss && document.querySelectorAll("main img, main script").length === 0),
      "and nothing of it runs");
    await page.screenshot({ path: `${shots}/serve-history.png`, fullPage: true });
    await axe(page, "a domain's history");
    await page.goto(`${base}/history`);
    check((await page.locator(`ul.domains a[href="/history/${FAIL}"]`).count()) === 1, "the list of watched domains links to it");
    await axe(page, "the list of watched domains");
    await page.goto(`${base}/history/b.example`);
    check((await page.locator("li.change").count()) === 200, "a long history shows its newest 200 changes");
    check((await page.locator("p.older").innerText()).includes("30 older change(s) not shown"), "and says older ones exist");
    await page.setViewportSize({ width: 375, height: 800 });
    await page.goto(`${base}/history/${FAIL}`);
    const hOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(hOverflow <= 0, "the history reads on a 375 px phone", hOverflow);
    await axe(page, "a domain's history on a phone");
    await page.setViewportSize({ width: 1100, height: 900 });

    // 3. A phone: nothing wider than the screen.
    await page.setViewportSize({ width: 375, height: 800 });
    await page.goto(`${base}/check/${FAIL}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, "readable on a 375 px phone (no horizontal scrolling)", overflow);
    await page.screenshot({ path: `${shots}/serve-phone.png` });
    await axe(page, "a failing report on a phone");

    // Other pages.
    await page.setViewportSize({ width: 1100, height: 900 });
    await page.goto(`${base}/`);
    await axe(page, "the form");
    await page.goto(`${base}/check?domain=${encodeURIComponent("<b>not a domain</b>")}`);
    check((await page.locator("#domain-error").innerText()).includes("<b>not a domain</b>"), "a refused input is shown as text");
    await axe(page, "the form with an error");
    await page.goto(`${base}/explain/tlsa-wrong-selector`);
    await axe(page, "an explanation");
    check(cspErrors.length === 0, "no script errors or CSP violations", cspErrors);
    await ctx.close();

    // 4. Without JavaScript: the form still submits, the page in progress
    //    reloads itself until the report is there, records stay selectable.
    const nojs = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 1100, height: 900 } });
    const p2 = await nojs.newPage();
    await p2.goto(`${base}/`);
    await p2.fill("#domain", NOJS);
    await p2.press("#domain", "Enter");
    await p2.waitForURL(`${base}/check/${NOJS}`);
    const first = await p2.content();
    check(first.includes('http-equiv="refresh"') || first.includes('id="verdict-h"'), "without JS the first answer reloads itself or is the report");
    await p2.locator("#verdict-h").waitFor({ timeout: 90000 });
    check((await verdictText(p2)).endsWith("PASS"), `without JS the report of ${NOJS} arrives by reload`, await verdictText(p2));
    check((await findingCodes(p2)).includes("tlsa-stale"), "and its findings");
    check(!(await p2.locator("button.copy").first().isVisible()), "copy buttons stay hidden without JS");
    check((await p2.locator("code.record").count()) > 0, "records are there to select");
    await p2.goto(`${base}/history/${watched}`);
    check((await p2.locator("li.change").count()) === 3, "without JS the history is all there");
    await nojs.close();

    // The page in progress (a slow scenario, so it is still running).
    const axeCtx = await browser.newContext();
    const p3 = await axeCtx.newPage();
    await p3.goto(`${base}/check/dns-tlsa-drop-all.example`);
    if (await p3.locator("#progress").count()) {
      await axe(p3, "a page in progress");
    } else {
      ok("(the slow scenario finished before the page: no page in progress to check)");
    }
    await axeCtx.close();
  } finally {
    await browser.close();
  }
}

run().then(
  () => console.log("all browser checks passed"),
  (e) => {
    console.log(e.message);
    process.exit(1);
  },
);
