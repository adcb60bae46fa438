// Browser tests of evidence bundles against `dip demo` (which signs with a platform
// identity it created beside its database): a message sent as the first supplier is
// delivered, its trace page offers the bundle, the browser downloads it, and tar and
// openssl check it here, with JavaScript and without. Screenshot: 50-evidence*.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BASE, SUP1, REGS_N, newPage, shot, hydrated, signIn, sendAsSup1 } from '../lib.mjs';

const run = Date.now().toString().slice(-6);

/// Opens the trace of `tx` until its copy is delivered (the demo's recipients answer
/// within seconds).
async function delivered(page, tx, javaScript) {
  for (let i = 0; i < 60; i++) {
    const res = await page.goto(`${BASE}/messages/${tx}`);
    assert.equal(res.status(), 200);
    if (javaScript) await hydrated(page);
    if ((await page.locator('section.copy h3').allTextContents()).some((t) => t.includes('Delivered'))) return;
    await page.waitForTimeout(1000);
  }
  assert.fail(`${tx} not delivered within a minute`);
}

for (const javaScript of [true, false]) {
  const mode = javaScript ? '' : '-nojs';
  test(`the evidence bundle downloads and openssl verifies it (JavaScript ${javaScript ? 'on' : 'off'})`, async () => {
    const { status, body } = await sendAsSup1('IF-031', `evidence-e2e-${run}${mode}`, REGS_N);
    assert.equal(status, 202, JSON.stringify(body));
    const tx = body.results[0].transactionID;

    const page = await newPage({ javaScript });
    await signIn(page, 'aura-user', { javaScript });
    await delivered(page, tx, javaScript);
    assert.match(await page.textContent('#signature'), /not signed/);
    await shot(page, `50-evidence${mode}`);

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('a:has-text("Download the evidence bundle")'),
    ]);
    assert.equal(download.suggestedFilename(), `evidence-${tx}.tar`);
    const dir = mkdtempSync(join(tmpdir(), 'dip-evidence-'));
    try {
      const file = join(dir, download.suggestedFilename());
      await download.saveAs(file);
      execFileSync('tar', ['-xf', file], { cwd: dir });
      const root = join(dir, `evidence-${tx}`);
      const doc = JSON.parse(readFileSync(join(root, 'evidence.json'), 'utf8'));
      assert.equal(doc.message.transactionID, tx);
      assert.equal(doc.message.senderDIPID, SUP1);
      assert.equal(doc.generatedFor, 'aura-user');
      assert.equal(doc.copies.length, 1);
      assert.equal(doc.copies[0].state, 'delivered');
      const calls = doc.copies[0].webhookCalls;
      assert.ok(calls.length >= 1 && calls.at(-1).outcome.startsWith('HTTP 2'), JSON.stringify(calls));
      assert.match(doc.archive.envelopeSha256, /^[0-9a-f]{64}$/);

      // The bundle's own script, then openssl by hand as docs/evidence.md tells.
      const out = execFileSync('sh', ['verify.sh'], { cwd: root, encoding: 'utf8' });
      assert.match(out, /OK evidence.json signed by the platform certificate/);
      assert.match(out, /All signatures verified/);
      execFileSync('openssl', ['x509', '-in', 'platform-certificate.pem', '-pubkey', '-noout', '-out', 'key.pem'], { cwd: root });
      const openssl = execFileSync('openssl',
        ['dgst', '-sha256', '-verify', 'key.pem', '-signature', 'evidence.json.sig', 'evidence.json'],
        { cwd: root, encoding: 'utf8' });
      assert.match(openssl, /Verified OK/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.deepEqual(page.errors, []);
  });
}

test('a bundle is not found for a participant that neither sent nor received the message', async () => {
  const { body } = await sendAsSup1('IF-031', `evidence-e2e-other-${run}`, REGS_N);
  const tx = body.results[0].transactionID;
  const page = await newPage();
  await signIn(page, 'bcnp-user');
  const res = await page.goto(`${BASE}/api/v1/audit/messages/${tx}/evidence`);
  assert.equal(res.status(), 404);
  const anonymous = await fetch(`${BASE}/api/v1/audit/messages/${tx}/evidence`);
  assert.equal(anonymous.status, 401);
});
