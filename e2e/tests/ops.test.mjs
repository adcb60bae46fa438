// Browser tests of the operations pages against `dip demo` (e2e/run starts it with
// --stale-after-secs, so an undelivered message is dead-lettered within seconds):
// queue health; dead letters made by pointing a registration service's endpoint at a
// closed port, then redriven one by one (JavaScript on) and all at once (off) once the
// endpoint is back; a replay previewed, confirmed, followed until delivered and listed
// in the history, with JavaScript on and off. Screenshots: e2e/artifacts/45-queues.png,
// 46-dead-letters*.png, 47-replay-preview*.png, 48-replay-progress*.png, 49-replays*.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, REGS_N, newPage, shot, hydrated, signIn } from '../lib.mjs';

/// The registration service's portal user (message user) in the demo.
const REGS_USER = 'nmrs-user';

/// A call of the admin REST API with the page's session.
async function admin(page, method, path, data) {
  const r = await page.request.fetch(`${BASE}${path}`, { method, data, headers: { Origin: BASE } });
  assert.ok(r.ok(), `${method} ${path}: ${r.status()} ${await r.text()}`);
  return r.json();
}

/// Reloads `path` until `ready(page)` holds (at most `seconds`).
async function until(page, path, ready, javaScript, seconds = 90) {
  for (let i = 0; i < seconds; i++) {
    const res = await page.goto(`${BASE}${path}`);
    assert.equal(res.status(), 200, path);
    if (javaScript) await hydrated(page);
    if (await ready(page)) return;
    await page.waitForTimeout(1000);
  }
  assert.fail(`${path} not ready within ${seconds} s`);
}

test('queue health lists the queues, worst first, with filters in the URL', async () => {
  const page = await newPage();
  await signIn(page, 'admin');
  await until(page, '/ops/queues', async (p) => (await p.locator('main table tbody tr').count()) > 0, true);
  assert.equal(await page.locator('h1').textContent(), 'Queues');
  const queues = await page.locator('main table tbody tr td:first-child').allTextContents();
  assert.ok(queues.some((q) => q.startsWith(`${REGS_N}/`)), queues.join());
  await shot(page, '45-queues');
  await page.selectOption('select[name="state"]', 'healthy');
  await Promise.all([page.waitForURL(/state=healthy/), page.click('form.filters button[type="submit"]')]);
  await hydrated(page);
  const states = await page.locator('main table tbody tr td:nth-child(4) .badge:first-child').allTextContents();
  assert.ok(states.every((s) => s === 'healthy'), states.join());
  assert.deepEqual(page.errors, []);
});

test('dead letters of a broken endpoint, redriven one (JavaScript on) and all (off) after it is mended', async () => {
  const operator = await newPage();
  await signIn(operator, 'admin');
  const endpoints = await admin(operator, 'GET', `/api/v1/admin/endpoints?q=${REGS_N}`);
  const endpoint = endpoints.rows.find((e) => e.dip_id === REGS_N && e.url);
  assert.ok(endpoint, JSON.stringify(endpoints));
  const path = `/api/v1/admin/endpoints/${REGS_N}/${endpoint.name}`;
  // A closed port: every attempt fails until the messages go stale.
  await admin(operator, 'PUT', path, { url: 'http://127.0.0.1:9/dip/closed', channels: endpoint.channels });
  const page = await newPage();
  await signIn(page, REGS_USER);
  const rows = async (p) => p.locator('#dead-letters tbody tr').count();
  try {
    await until(page, `/ops/dead-letters?recipient=${REGS_N}`, async (p) => (await rows(p)) >= 2, true, 120);
  } finally {
    await admin(operator, 'PUT', path, { url: endpoint.url, channels: endpoint.channels });
  }
  await shot(page, '46-dead-letters');

  // One, with JavaScript: counted, confirmed, queued again, delivered.
  const first = page.locator('#dead-letters tbody tr').first();
  const tx = (await first.locator('td:nth-child(2) a').textContent()).trim();
  await Promise.all([page.waitForURL(/redrive=/), first.locator('a', { hasText: 'Redrive…' }).click()]);
  await hydrated(page);
  assert.match(await page.locator('.confirm-box').textContent(), /1 dead letter will be queued again/);
  await shot(page, '46-dead-letters-confirm');
  await page.check('#redrive-form input[name="confirm"]');
  await Promise.all([page.waitForURL(/done=1/), page.click('#redrive-form button[type="submit"]')]);
  await hydrated(page);
  assert.match(await page.locator('.notice').textContent(), /1 dead letter\(s\) queued again/);
  await until(page, `/messages/${tx}`, async (p) => {
    const text = await p.locator('main').textContent();
    return text.includes('Redriven') && text.includes('Delivered');
  }, true, 60);
  assert.deepEqual(page.errors, []);

  // The rest, without JavaScript: "Redrive all", confirmed.
  const plain = await newPage({ javaScript: false });
  await signIn(plain, REGS_USER, { javaScript: false });
  await plain.goto(`${BASE}/ops/dead-letters?recipient=${REGS_N}`);
  const left = await rows(plain);
  assert.ok(left >= 1, 'dead letters left');
  await Promise.all([plain.waitForURL(/redrive=all/), plain.click('a:has-text("Redrive all")')]);
  const confirm = await plain.locator('.confirm-box').textContent();
  assert.match(confirm, new RegExp(`${left} dead letters? will be queued again`));
  await plain.check('#redrive-form input[name="confirm"]');
  await Promise.all([plain.waitForURL(/done=/), plain.click('#redrive-form button[type="submit"]')]);
  assert.match(await plain.locator('.notice').textContent(), new RegExp(`${left} dead letter\\(s\\) queued again`));
  assert.equal(await plain.locator('#dead-letters').count(), 0, 'none left');
  await shot(plain, '46-dead-letters-nojs');
});

for (const javaScript of [true, false]) {
  const mode = javaScript ? '' : '-nojs';
  test(`a replay previewed, confirmed, delivered and in the history (JavaScript ${javaScript ? 'on' : 'off'})`, async () => {
    const page = await newPage({ javaScript });
    await signIn(page, REGS_USER, { javaScript });
    // The last two minutes of change-of-service requests the registration service received.
    const from = new Date(Date.now() - 120_000).toISOString().slice(0, 19);
    await page.goto(`${BASE}/replays`);
    if (javaScript) await hydrated(page);
    await page.selectOption('#replay-form select[name="channel"]', 'IF-031');
    await page.fill('#replay-form input[name="from"]', from);
    await Promise.all([page.waitForURL(/preview=1/), page.click('#replay-form button[type="submit"]')]);
    if (javaScript) await hydrated(page);
    const count = Number(await page.locator('#preview-count').textContent());
    assert.ok(count > 0, 'messages to replay');
    assert.match(await page.locator('#replay-preview').textContent(), new RegExp(`${REGS_N}/`));
    await shot(page, `47-replay-preview${mode}`);

    await page.check('#replay-confirm input[name="confirm"]');
    await Promise.all([page.waitForURL(/\/replays\/[0-9a-f-]+$/), page.click('#replay-confirm button[type="submit"]')]);
    const replay = page.url();
    for (let i = 0; i < 60; i++) {
      if (javaScript) await hydrated(page);
      if ((await page.locator('#replay-progress').getAttribute('data-done')) === 'true') break;
      await page.waitForTimeout(1000);
      await page.goto(replay);
    }
    const progress = await page.locator('#replay-progress').textContent();
    assert.match(progress, new RegExp(`${count} of ${count} settled`));
    await shot(page, `48-replay-progress${mode}`);

    await page.goto(`${BASE}/replays`);
    if (javaScript) await hydrated(page);
    const first = await page.locator('main table tbody tr').first().textContent();
    assert.match(first, new RegExp(`user:${REGS_USER} \\(${REGS_N}\\)`));
    assert.match(first, /done/);
    await shot(page, `49-replays${mode}`);
    assert.deepEqual(page.errors, []);
  });
}
