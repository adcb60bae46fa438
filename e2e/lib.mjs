// What the browser tests share: the server's address, demo identities, one Chromium per
// test file (Debian's, never a downloaded one), pages that collect errors and
// Content-Security-Policy violations, screenshots into e2e/artifacts/, signing in, sending
// a message as the first supplier.
import { before, after } from 'node:test';
import { mkdirSync, readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

export const BASE = process.env.DIP_URL ?? 'http://127.0.0.1:8080';
export const ARTIFACTS = new URL('./artifacts/', import.meta.url).pathname;
export const PASSWORD = 'demo-password';
export const SUP1 = '1000000001';
export const SUP2 = '1000000002';
export const REGS_N = '1000000011';
export const LDSO_P = '1000000021';
mkdirSync(ARTIFACTS, { recursive: true });

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});
after(async () => { await browser?.close(); });

export async function newPage({ javaScript = true, ignoreHTTPSErrors = false } = {}) {
  const context = await browser.newContext({
    javaScriptEnabled: javaScript, ignoreHTTPSErrors, viewport: { width: 1280, height: 900 },
  });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  // A script or resource the Content-Security-Policy blocked is an error too.
  page.on('console', (m) => { if (m.text().includes('Content Security Policy')) page.errors.push(m.text()); });
  return page;
}

export async function shot(page, name) {
  await page.screenshot({ path: `${ARTIFACTS}${name}.png`, fullPage: true });
}

export async function hydrated(page) {
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 15000 });
}

export async function signIn(page, username, { javaScript = true, base = BASE } = {}) {
  await page.goto(`${base}/sign-in`);
  if (javaScript) await hydrated(page);
  await page.fill('#f-username', username);
  await page.fill('#f-password', PASSWORD);
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/sign-in')), page.click('form button.primary')]);
  if (javaScript) await hydrated(page);
}

/// Fetches `href` from inside the page (its session cookie goes along): content type and text.
export async function fetchText(page, href) {
  return page.evaluate(async (h) => {
    const r = await fetch(h);
    return { type: r.headers.get('content-type'), text: await r.text() };
  }, href);
}

// The demo directory's API key of the first supplier, to send messages as it.
const demo = readFileSync(new URL('../broker-core/demo/demo.toml', import.meta.url), 'utf8');
const SUP1_KEY = demo.match(/dip_id = "1000000001"[\s\S]*?api_key = "([^"]+)"/)[1];

/// Sends one item as the demo's first supplier (SUP1) on `channel` to `recipient`: the
/// answer's status and body.
export async function sendAsSup1(channel, reference, recipient) {
  const body = {
    payload: {
      CommonBlock: {
        S0: { interfaceID: channel, schemaVersion: '001', eventCode: 'SupplierServiceAppointmentRequest' },
        S1: { environmentTag: 'DEV', senderUniqueReference: reference, senderTimestamp: new Date().toISOString(),
          senderDIPID: SUP1, senderRoleID: 'SUP', senderCorrelationID: null, DIPConnectionProviderID: null },
        M0: { MPANCore: '1600001000020' },
        A0: { primaryRecipients: [recipient] },
      },
      CustomBlock: { mpanCore: '1600001000020', supplierId: 'AURA', serviceRole: 'MSS', serviceProviderId: 'KYST',
        serviceProviderDIPID: '1000000031', effectiveFromDate: '2025-02-01', contractReference: 'C-1' },
    },
  };
  const res = await fetch(`${BASE}/api/v1/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${SUP1_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}
