// Browser tests of the message audit trail against `dip demo` (its simulated participants
// send change-of-service workflows from the start): search → transaction trace →
// workflow, with JavaScript and without. Screenshots: e2e/artifacts/30-messages*.png,
// 31-transaction*.png, 32-workflow*.png, 33-mpan*.png (the MPAN report).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, SUP1, newPage, shot, hydrated, signIn, fetchText } from '../lib.mjs';

/// Loads the search at `path` until it lists messages (the demo's first flows arrive
/// within seconds of the start).
async function withMessages(page, path, javaScript) {
  for (let i = 0; i < 60; i++) {
    const res = await page.goto(`${BASE}${path}`);
    assert.equal(res.status(), 200, path);
    if (javaScript) await hydrated(page);
    if ((await page.locator('main table tbody tr').count()) > 0) return;
    await page.waitForTimeout(1000);
  }
  assert.fail(`no messages listed at ${path} within a minute`);
}

for (const javaScript of [true, false]) {
  const mode = javaScript ? '' : '-nojs';
  test(`search, then a transaction's trace, then its workflow (JavaScript ${javaScript ? 'on' : 'off'})`, async () => {
    const page = await newPage({ javaScript });
    await signIn(page, 'auditor', { javaScript });
    await withMessages(page, '/messages?channel=IF-031', javaScript);
    assert.equal(await page.locator('h1').textContent(), 'Messages');
    const channels = await page.locator('main table tbody tr td:nth-child(3)').allTextContents();
    assert.ok(channels.every((c) => c.startsWith('IF-031')), channels.join());
    await shot(page, `30-messages${mode}`);

    // The filter form puts the filters in the URL.
    await page.fill('input[name="sender"]', SUP1);
    await Promise.all([page.waitForURL(/sender=/), page.click('form.filters button[type="submit"]')]);
    if (javaScript) await hydrated(page);
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('sender'), SUP1);
    assert.equal(url.searchParams.get('channel'), 'IF-031');
    const senders = await page.locator('main table tbody tr td:nth-child(4)').allTextContents();
    assert.ok(senders.length > 0 && senders.every((s) => s === SUP1), senders.join());

    // The first message's trace: receipt, routing decision, payload, copies with steps.
    const link = page.locator('main table tbody tr td:nth-child(2) a').first();
    const tx = (await link.textContent()).trim();
    await Promise.all([page.waitForURL(`**/messages/${tx}`), link.click()]);
    if (javaScript) await hydrated(page);
    assert.match(await page.locator('h1').textContent(), new RegExp(tx));
    const headings = await page.locator('main h2').allTextContents();
    assert.deepEqual(headings, ['Receipt', 'Routing decision', 'Payload', 'Recipient copies']);
    assert.match(await page.locator('#payload').textContent(), new RegExp(`"transactionID": "${tx}"`));
    assert.ok((await page.locator('section.copy table.steps tbody tr').count()) > 0, 'steps of the copies');
    await shot(page, `31-transaction${mode}`);

    // Its MPAN's report: the appointment history beside the messages about it.
    const mpan = page.locator('a[href^="/mpans/"]');
    const mpanHref = await mpan.getAttribute('href');
    await Promise.all([page.waitForURL(/\/mpans\//), mpan.click()]);
    if (javaScript) await hydrated(page);
    assert.match(await page.locator('h1').textContent(), /^MPAN \d{13}$/);
    assert.ok((await page.locator('#appointments tbody tr').count()) > 0, 'appointments listed');
    const about = await page.locator('main table:not(#appointments) tbody tr td:nth-child(2) a').allTextContents();
    assert.ok(about.includes(tx), `${tx} among the MPAN's messages: ${about.join()}`);
    await shot(page, `33-mpan${mode}`);
    await page.goBack();
    if (javaScript) await hydrated(page);
    assert.ok(mpanHref.startsWith('/mpans/'));

    // Its workflow: a sequence diagram drawn on the server, and the messages in order.
    const workflow = page.locator('a[href^="/workflows/"]');
    await Promise.all([page.waitForURL(/\/workflows\//), workflow.click()]);
    if (javaScript) await hydrated(page);
    assert.match(await page.locator('h1').textContent(), /^Workflow /);
    const svg = page.locator('.chart.sequence svg[role="img"]');
    assert.equal(await svg.count(), 1);
    assert.match(await svg.getAttribute('aria-label'), /Sequence of workflow/);
    const listed = await page.locator('main table tbody tr td:nth-child(2) a').allTextContents();
    assert.ok(listed.includes(tx), `${tx} in its workflow: ${listed.join()}`);
    await shot(page, `32-workflow${mode}`);
    assert.deepEqual(page.errors, []);
  });
}

test("a participant's user sees its own messages only, and gets the CSV of its search", async () => {
  const page = await newPage();
  await signIn(page, 'aura-user');
  await withMessages(page, '/messages', true);
  const rows = await page.locator('main table tbody tr').evaluateAll((trs) =>
    trs.map((tr) => ({
      sender: tr.querySelector('td:nth-child(4)').textContent,
      copies: [...tr.querySelectorAll('ul.copies li')].map((li) => li.textContent),
    })));
  // Its own messages, or its own copy of others'.
  for (const r of rows) {
    assert.ok(r.sender === SUP1 || (r.copies.length > 0 && r.copies.every((c) => c.startsWith(SUP1))), JSON.stringify(r));
  }
  const href = await page.locator('a[download]').getAttribute('href');
  const csv = await fetchText(page, href);
  assert.match(csv.type, /^text\/csv/);
  assert.match(csv.text, /^transaction_id,received_at,sender,/);
  await shot(page, '30-messages-participant');
  assert.deepEqual(page.errors, []);
});
