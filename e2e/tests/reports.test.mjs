// Browser tests of the reports dashboard and the alarms page against `dip demo`, whose
// simulated participants send change-of-service flows from the start. Screenshots:
// e2e/artifacts/20-reports*.png, 21-alarms.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, SUP1, newPage, shot, hydrated, signIn, fetchText } from '../lib.mjs';

/// Loads `path` until the totals table shows incoming traffic (the demo's flows start
/// with the server; the first arrive within seconds).
async function withTraffic(page, path) {
  for (let i = 0; i < 60; i++) {
    const res = await page.goto(`${BASE}${path}`);
    assert.equal(res.status(), 200, path);
    await hydrated(page);
    const incoming = await page.locator('#totals tbody tr').first().locator('td').first().textContent();
    if (Number(incoming) > 0) return;
    await page.waitForTimeout(1000);
  }
  assert.fail(`no traffic reported at ${path} within a minute`);
}

test('the dashboard shows live traffic as charts and tables, with filters in the URL', async () => {
  const page = await newPage();
  await signIn(page, 'admin');
  await withTraffic(page, '/reports?range=1h');
  assert.equal(await page.locator('h1').textContent(), 'Reports');
  // Three server-drawn charts, each an image with a description.
  const charts = page.locator('.chart svg[role="img"]');
  assert.equal(await charts.count(), 3);
  assert.match(await charts.first().getAttribute('aria-label'), /Incoming, outgoing and error/);
  assert.ok((await page.locator('#series tbody tr').count()) > 0, 'intervals listed');
  await shot(page, '20-reports');

  // Filter by two channels and split by channel through the form: the URL carries it.
  await page.selectOption('select[name="channel"]', ['IF-031', 'IF-032']);
  await page.selectOption('select[name="group"]', 'channel');
  await Promise.all([page.waitForURL(/group=channel/), page.click('form.report-filters button[type="submit"]')]);
  await hydrated(page);
  const url = new URL(page.url());
  assert.deepEqual(url.searchParams.getAll('channel'), ['IF-031', 'IF-032']);
  const groups = await page.locator('#totals tbody th[scope="row"]').allTextContents();
  assert.equal(groups[0], 'All');
  const all = Number(await page.locator('#totals tbody tr').first().locator('td').first().textContent());
  const perChannel = await page.locator('#totals tbody tr').evaluateAll((rows) =>
    rows.slice(1).map((r) => Number(r.querySelector('td').textContent)));
  // The split totals are read just after the series, so live traffic may add a little.
  const sum = perChannel.reduce((a, b) => a + b, 0);
  assert.ok(all > 0 && all <= sum && sum - all < 10, `All ${all} against the channels' ${sum}`);
  assert.ok(groups.slice(1).every((g) => g === 'IF-031' || g === 'IF-032'), groups.join());
  assert.ok(groups.includes('IF-031'), `IF-031 traffic split out: ${groups.join()}`);
  await shot(page, '20-reports-filtered');

  // The same view as CSV.
  const href = await page.locator('a[download]').getAttribute('href');
  const csv = await fetchText(page, href);
  assert.match(csv.type, /^text\/csv/);
  assert.match(csv.text, /^interval_start,group,received,/);
  assert.ok(csv.text.trim().split('\n').length > 1, 'rows in the CSV');

  // Live: the last hour, refreshed in place.
  await page.click('text=Follow the last hour live');
  await page.waitForURL(/live=1/);
  await hydrated(page);
  assert.match(await page.locator('.live').textContent(), /Live/);
  assert.deepEqual(page.errors, []);
});

test("a participant's user sees their own traffic, or market totals without detail", async () => {
  const page = await newPage();
  await signIn(page, 'aura-user');
  await withTraffic(page, '/reports?range=1h');
  assert.match(await page.locator('.report-span').textContent(), new RegExp(`traffic sent or received by ${SUP1}`));
  const res = await page.goto(`${BASE}/reports?range=1h&scope=market&group=recipient`);
  assert.equal(res.status(), 400, 'market totals split by recipient are refused');
  const api = await page.evaluate(async () => (await fetch('/api/v1/reports/throughput?range=1h&scope=market&group=channel')).status);
  assert.equal(api, 200);
  assert.deepEqual(page.errors, []);
});

test('alarms are created from the page, listed with their state, and can be received by email', async () => {
  const page = await newPage();
  await signIn(page, 'admin');
  await page.goto(`${BASE}/alarms`);
  await hydrated(page);
  await page.fill('#f-email', 'ops@example.test');
  await Promise.all([page.waitForResponse((r) => r.url().includes('/fn/save_alarm_email')), page.click('text=Save')]);
  await page.click('summary:has-text("New alarm")');
  const name = `Slow IF-031 ${Date.now()}`;
  await page.fill('#f-name', name);
  await page.selectOption('#f-kind', 'latency');
  await page.selectOption('#f-channel', 'IF-031');
  await page.fill('#f-threshold', '1');
  await page.fill('#f-window_minutes', '10');
  await Promise.all([page.waitForResponse((r) => r.url().includes('/fn/create_alarm')), page.click('text=Create alarm')]);
  const row = page.locator('#alarms tbody tr', { hasText: name });
  await row.waitFor();
  assert.match(await row.textContent(), /90th percentile end-to-end latency on IF-031 above 1 ms over 10 min/);
  assert.match(await row.textContent(), /Stop emails/, 'the creator receives it');
  // With demo traffic and a 1 ms threshold, the next evaluation raises it.
  for (let i = 0; i < 40 && !/raised since/.test(await row.textContent()); i++) {
    await page.waitForTimeout(1000);
    await page.reload();
    await hydrated(page);
  }
  assert.match(await row.textContent(), /raised since/);
  assert.ok((await page.locator('#alarm-history tbody tr', { hasText: name }).count()) > 0, 'in the history');
  await shot(page, '21-alarms');
  assert.deepEqual(page.errors, []);
});
