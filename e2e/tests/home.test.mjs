// Browser tests of the home pages against `dip demo`: "is everything all right?" for
// operator staff and for a participant's user, with JavaScript and without; a figure
// leads to the list it counts. Screenshots: e2e/artifacts/40-home-operator*.png and
// 41-home-participant*.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, SUP1, SUP2, newPage, shot, hydrated, signIn, sendAsSup1 as send } from '../lib.mjs';

const run = Date.now().toString().slice(-6);

/// Sends an IF-031 from SUP1 to the Registration Service; returns the reference.
async function sendAsSup1(reference) {
  const { status, body } = await send('IF-031', reference, '1000000011');
  assert.equal(status, 202, JSON.stringify(body));
  return reference;
}

/// The figure of a tile, as a number (`10000+` counts as 10000).
async function figure(page, key) {
  const text = (await page.textContent(`#tile-${key} .tile-value`)).trim();
  assert.match(text, /^\d+\+?$/, `${key}: ${text}`);
  return Number.parseInt(text, 10);
}

for (const javaScript of [true, false]) {
  const mode = javaScript ? '' : '-nojs';
  const on = javaScript ? 'on' : 'off';

  test(`the operator's home answers "is everything all right?" (JavaScript ${on})`, async () => {
    const page = await newPage({ javaScript });
    await signIn(page, 'admin', { javaScript });
    const res = await page.goto(`${BASE}/`);
    assert.equal(res.status(), 200);
    if (javaScript) await hydrated(page);
    else assert.equal(await page.getAttribute('body', 'data-hydrated'), null, 'no script ran');
    assert.equal(await page.textContent('h1'), 'Welcome, Platform Administrator');
    assert.match(await page.textContent('#verdict'), /Everything is all right|worth a look|to act on/);
    for (const key of ['received_today', 'delivered_today', 'errors_today', 'queues_failing', 'queues_backlog',
      'dead_letters', 'certificates', 'alarms']) {
      await figure(page, key);
    }
    assert.ok(await page.isVisible('#tile-objective'));
    // Each figure links to where it is handled.
    assert.match(await page.getAttribute('#tile-queues_failing', 'href'), /^\/ops\/queues/);
    assert.equal(await page.getAttribute('#tile-dead_letters', 'href'), '/ops/dead-letters');
    assert.equal(await page.getAttribute('#tile-certificates', 'href'), '/admin/certificates?status=expiring');
    assert.equal(await page.getAttribute('#tile-alarms', 'href'), '/alarms');
    assert.match(await page.getAttribute('#tile-received_today', 'href'), /^\/reports\?range=custom&from=/);
    // Today's volumes as a chart drawn on the server.
    assert.equal(await page.locator('section.health .chart svg').count(), 1);
    // The administration cards are still there.
    assert.ok(await page.isVisible('a.card[href="/admin/participants"]'));
    await shot(page, `40-home-operator${mode}`);
    assert.deepEqual(page.errors, []);
  });

  test(`a participant's home shows its own figures, each leading to its list (JavaScript ${on})`, async () => {
    const reference = await sendAsSup1(`home-e2e-${run}${mode}`);
    const page = await newPage({ javaScript });
    await signIn(page, 'aura-user', { javaScript });
    const res = await page.goto(`${BASE}/`);
    assert.equal(res.status(), 200);
    if (javaScript) await hydrated(page);
    const main = await page.textContent('main');
    assert.ok(main.includes(SUP1), 'its participant');
    assert.ok(!main.includes(SUP2), 'no other participant');
    assert.ok(main.includes('Your queues') && main.includes('Your certificates'));
    const sent = await figure(page, 'sent_today');
    assert.ok(sent >= 1, `sent today: ${sent}`);
    for (const key of ['received_today', 'returned_recent', 'dead_lettered_recent', 'queues_backlog', 'dead_letters']) {
      await figure(page, key);
    }
    assert.equal(await page.getAttribute('#tile-dead_letters', 'href'), `/ops/dead-letters?recipient=${SUP1}`);
    await shot(page, `41-home-participant${mode}`);

    // "Messages sent today" opens the search of exactly those, with the one just sent.
    await Promise.all([page.waitForURL(/\/messages\?/), page.click('#tile-sent_today')]);
    if (javaScript) await hydrated(page);
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('sender'), SUP1);
    assert.match(url.searchParams.get('from'), /^\d{4}-\d{2}-\d{2}$/);
    // (With JavaScript the router fetches the list after the URL changes.)
    await page.locator(`main td:has-text("${reference}")`).first().waitFor({ timeout: 15000 });
    assert.deepEqual(page.errors, []);
  });
}
