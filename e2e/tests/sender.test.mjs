// Browser tests of the sender report (spec 5.11.3, Figure 16) against `dip demo` (its
// simulated participants send from the start): operator staff choose a sender, read its
// messages per channel and outcome, and open the messages behind a count; a participant's
// user gets its own participant's report and its CSV. With JavaScript and without.
// Screenshots: e2e/artifacts/34-sender*.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, SUP1, newPage, shot, hydrated, signIn, fetchText } from '../lib.mjs';

/// Loads the report at `path` until its table lists a channel (the demo's first flows
/// arrive within seconds of the start).
async function withTraffic(page, path, javaScript) {
  for (let i = 0; i < 60; i++) {
    const res = await page.goto(`${BASE}${path}`);
    assert.equal(res.status(), 200, path);
    if (javaScript) await hydrated(page);
    if ((await page.locator('#sender-report tbody tr').count()) > 0) return;
    await page.waitForTimeout(1000);
  }
  assert.fail(`no traffic in the sender report at ${path} within a minute`);
}

for (const javaScript of [true, false]) {
  const mode = javaScript ? '' : '-nojs';
  test(`the sender report, then the messages behind a count (JavaScript ${javaScript ? 'on' : 'off'})`, async () => {
    const page = await newPage({ javaScript });
    await signIn(page, 'auditor', { javaScript });

    // Operator staff choose the sender first; the form puts it in the URL.
    const res = await page.goto(`${BASE}/reports/senders`);
    assert.equal(res.status(), 200);
    if (javaScript) await hydrated(page);
    assert.equal(await page.locator('h1').textContent(), 'Sender report');
    assert.match(await page.locator('main').textContent(), /Choose a sender/);
    await page.fill('form.filters input[name="sender"]', SUP1);
    await Promise.all([page.waitForURL(/sender=/), page.click('form.filters button[type="submit"]')]);
    if (javaScript) await hydrated(page);
    assert.equal(new URL(page.url()).searchParams.get('sender'), SUP1);
    await withTraffic(page, `/reports/senders?sender=${SUP1}`, javaScript);
    assert.match(await page.locator('main h2').first().textContent(), new RegExp(`\\(${SUP1}\\)$`));
    const channels = await page.locator('#sender-report tbody th[scope="row"]').allTextContents();
    assert.ok(channels.some((c) => c.startsWith('IF-031')), channels.join());
    assert.equal(await page.locator('#sender-report tfoot th').textContent(), 'All channels');
    await shot(page, `34-sender${mode}`);

    // Sorting keeps the sender and the period in the URL.
    await Promise.all([page.waitForURL(/sort=accepted/), page.click('#sender-report thead a:text("Accepted")')]);
    if (javaScript) await hydrated(page);
    const sorted = new URL(page.url());
    assert.equal(sorted.searchParams.get('sender'), SUP1);

    // The accepted count of IF-031 opens the message search listing those messages.
    const row = page.locator('#sender-report tbody tr', { has: page.locator('th', { hasText: 'IF-031' }) });
    const count = row.locator('td').first().locator('a');
    const accepted = Number((await count.textContent()).trim());
    assert.ok(accepted > 0, 'IF-031 messages accepted');
    await Promise.all([page.waitForURL(/\/messages\?/), count.click()]);
    if (javaScript) await hydrated(page);
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('sender'), SUP1);
    assert.equal(url.searchParams.get('channel'), 'IF-031');
    assert.equal(url.searchParams.get('state'), 'accepted');
    assert.ok(url.searchParams.get('from') && url.searchParams.get('to'), 'the report\'s period');
    await page.waitForSelector('main table tbody tr');
    const listed = await page.locator('main table tbody tr td:nth-child(3)').allTextContents();
    assert.ok(listed.length > 0 && listed.every((c) => c.startsWith('IF-031')), listed.join());
    const senders = await page.locator('main table tbody tr td:nth-child(4)').allTextContents();
    assert.ok(senders.every((s) => s === SUP1), senders.join());
    assert.deepEqual(page.errors, []);
  });
}

test("a participant's user gets its own report and its CSV", async () => {
  const page = await newPage();
  await signIn(page, 'aura-user');
  // From the messages page.
  await page.goto(`${BASE}/messages`);
  await hydrated(page);
  await Promise.all([page.waitForURL(/\/reports\/senders/), page.click('a[href="/reports/senders"]')]);
  await hydrated(page);
  assert.equal(await page.locator('select[name="sender"]').inputValue(), SUP1);
  await withTraffic(page, '/reports/senders', true);
  assert.match(await page.locator('main h2').first().textContent(), new RegExp(`\\(${SUP1}\\)$`));
  const href = await page.locator('a[download="dip-sender-report.csv"]').getAttribute('href');
  const csv = await fetchText(page, href);
  assert.match(csv.type, /^text\/csv/);
  assert.match(csv.text, /^sender,from,to,channel,name,accepted,rejected,/);
  assert.ok(csv.text.split('\n').slice(1).every((l) => l === '' || l.startsWith(`${SUP1},`)), csv.text);
  await shot(page, '34-sender-participant');
  // Another participant's report is not found.
  const other = await page.goto(`${BASE}/reports/senders?sender=1000000002`);
  assert.equal(other.status(), 404);
  assert.deepEqual(page.errors, []);
});
