// console.mjs -- drives the auditor's console in Debian's Chromium with
// playwright-core and reports what a person would see, as one JSON object on
// stdout (test_console_browser.py checks it). Screenshots go to OUT.
//
//   GW_URL=https://127.0.0.1:PORT CERTS=certs/dev OUT=dir PHASE=intact|tampered \
//   PATIENT=283052724101267 node console.mjs
//
// The auditor's certificate is presented with the clientCertificates option.
// Playwright relays those origins through its own TLS client, which checks
// the gateway's certificate against Node's trust store: NODE_EXTRA_CA_CERTS
// (set by the caller to the development CA) makes that check real, so no
// ignoreHTTPSErrors is needed.
import { chromium } from "playwright-core";
import path from "node:path";

const { GW_URL, CERTS, OUT, PHASE = "intact", PATIENT = "" } = process.env;
const TIMEOUT = 15000;
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const seen = { phase: PHASE, cspViolations: [], pageErrors: [] };

function cert(name) {
  return [{ origin: GW_URL, certPath: path.join(CERTS, name + ".pem"),
            keyPath: path.join(CERTS, name + ".key") }];
}

async function newPage(browser, who, options = {}) {
  const context = await browser.newContext({
    clientCertificates: cert(who),
    viewport: options.viewport || { width: 1280, height: 800 },
    locale: options.locale || "en-GB",
    timezoneId: "Europe/Paris",
    acceptDownloads: true,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/.test(m.text())) seen.cspViolations.push(m.text());
  });
  page.on("pageerror", (e) => seen.pageErrors.push(String(e)));
  return page;
}

const shot = (page, name) => page.screenshot({ path: path.join(OUT, name + ".png"), fullPage: false });
const texts = (page, selector) => page.$$eval(selector, (els) => els.map((e) => e.textContent.trim()));

const generation = (page) => page.getAttribute("#results", "data-generation");

// Waits until the events table shows an answer newer than the one before.
async function waitForRows(page, before) {
  await page.waitForFunction((prev) => {
    const r = document.getElementById("results");
    return r.dataset.generation && r.dataset.generation !== prev && !r.hasAttribute("aria-busy");
  }, before);
}

async function overview(page) {
  const response = await page.goto(GW_URL + "/console/");
  seen.status = response.status();
  seen.csp = response.headers()["content-security-policy"] || "";
  await page.waitForSelector("#rows tr");
  await page.waitForFunction(() => document.getElementById("timeline").childNodes.length > 0);
  seen.heading = await page.textContent("h1");
  seen.zone = await page.textContent("#zone");
  seen.firstRows = (await page.$$("#rows tr")).length;
  seen.bars = (await page.$$("#timeline g.bar")).length;
  seen.alarmBars = (await page.$$("#timeline g.bar.has-refusals")).length;
  seen.clients = await texts(page, "#client-rows tr");
  seen.timelineCaption = await page.textContent("#timeline-caption");
  await shot(page, "01-overview");
}

async function keyboard(page) {
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  await page.keyboard.press("Tab");
  const order = [];
  for (let i = 0; i < 6; i++) {
    order.push(await page.evaluate(() => document.activeElement.id || document.activeElement.className ||
                                         document.activeElement.tagName));
    await page.keyboard.press("Tab");
  }
  seen.tabOrder = order;
  seen.focusVisible = await page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return s.outlineStyle !== "none" && s.outlineWidth !== "0px";
  });
}

async function searchByPatient(page) {
  const before = await generation(page);
  await page.fill("#patient", PATIENT);
  await page.press("#patient", "Enter"); // the form submits from the keyboard
  await waitForRows(page, before);
  seen.patientSummary = await page.textContent("#summary");
  seen.patientRows = await texts(page, "#rows td.refs");
  seen.patientWhat = await texts(page, "#rows tr td:nth-child(3) span:first-child");
  await shot(page, "02-search-by-patient");
}

async function openEvent(page) {
  const show = page.locator("#rows button.show").first();
  await show.focus();
  await page.keyboard.press("Enter");
  await page.waitForSelector("#detail[open]");
  seen.dialogFocus = await page.evaluate(() => document.activeElement.id);
  seen.eventJson = JSON.parse(await page.textContent("#detail-json"));
  seen.eventFacts = await texts(page, "#detail-facts dd");
  seen.eventLinks = await texts(page, "#detail-links button");
  await shot(page, "03-event");
  const before = await generation(page);
  await page.click("#detail-links button:has-text('Events of this referral')");
  await waitForRows(page, before);
  seen.referralLinked = await page.textContent("#linked-text");
  seen.referralWhat = await texts(page, "#rows tr td:nth-child(3) span:first-child");
  await shot(page, "04-referral-events");
}

async function verify(page, name) {
  await page.click("#verify");
  await page.waitForSelector("#verify-result.intact, #verify-result.broken");
  seen.verifyClass = await page.getAttribute("#verify-result", "class");
  seen.verifyText = await page.textContent("#verify-result");
  await shot(page, name);
}

async function exportEvents(page) {
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export")]);
  const file = path.join(OUT, "export.ndjson");
  await download.saveAs(file);
  seen.exportFile = file;
  seen.exportName = download.suggestedFilename();
  seen.exportHref = await page.getAttribute("#export", "href");
}

async function tablet(browser) {
  const page = await newPage(browser, "auditor", { viewport: { width: 768, height: 1024 } });
  await page.goto(GW_URL + "/console/");
  await page.waitForSelector("#rows tr");
  seen.tabletOverflow = await page.evaluate(() => document.scrollingElement.scrollWidth - innerWidth);
  await shot(page, "06-tablet");
  await page.context().close();
}

async function french(browser) {
  const page = await newPage(browser, "auditor", { locale: "fr-FR" });
  await page.goto(GW_URL + "/console/");
  await page.waitForSelector("#rows tr");
  seen.frenchHeading = await page.textContent("h1");
  seen.frenchVerify = await page.textContent("#verify");
  await shot(page, "07-french");
  await page.context().close();
}

async function gp(browser) {
  const page = await newPage(browser, "gp");
  const response = await page.goto(GW_URL + "/console/");
  seen.gpStatus = response.status();
  seen.gpContentType = response.headers()["content-type"];
  seen.gpText = await page.textContent("body");
  await shot(page, "08-gp-forbidden");
  await page.context().close();
}

async function openBroken(page) {
  await page.click("#open-broken");
  await page.waitForSelector("#detail[open]");
  seen.brokenEventJson = await page.textContent("#detail-json");
  await shot(page, "10-broken-event");
}

// chromium.launch() starts Chromium on a fresh, empty user data directory
// of its own (a temporary profile, removed when the browser closes).
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: FLAGS,
                                        headless: true });
try {
  const page = await newPage(browser, "auditor");
  await overview(page);
  if (PHASE === "intact") {
    await keyboard(page);
    await searchByPatient(page);
    await openEvent(page);
    await verify(page, "05-verify-intact");
    await exportEvents(page);
    await tablet(browser);
    await french(browser);
    await gp(browser);
  } else {
    await verify(page, "09-verify-broken");
    await openBroken(page);
  }
} catch (e) {
  seen.error = String(e && e.stack || e);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(seen) + "\n");
