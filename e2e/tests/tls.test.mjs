// The portal over TLS, where browsers speak HTTP/2 (which carries `:authority`, not
// `Host`): signing in and a state-changing form must pass the same-origin check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage, signIn, shot, hydrated } from '../lib.mjs';

const TLS = process.env.DIP_TLS_URL ?? 'https://127.0.0.1:8443';

test('a user signs in over TLS and HTTP/2, with JavaScript and without', async () => {
  for (const javaScript of [true, false]) {
    const page = await newPage({ javaScript, ignoreHTTPSErrors: true });
    await signIn(page, 'aura-user', { javaScript, base: TLS });
    assert.equal(new URL(page.url()).pathname, '/');
    assert.match(await page.locator('h1').innerText(), /Welcome/);
    if (javaScript) {
      const protocol = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
      assert.equal(protocol, 'h2', 'the browser speaks HTTP/2 to the portal');
    }
    // A state-changing request after sign-in: signing out.
    await page.goto(`${TLS}/account`);
    if (javaScript) await hydrated(page);
    await Promise.all([
      page.waitForURL((u) => u.pathname.startsWith('/sign-in')),
      page.click('form[action="/fn/sign_out"] button'),
    ]);
    if (javaScript) await shot(page, '30-signed-out-over-tls');
    assert.deepEqual(page.errors, []);
    await page.context().close();
  }
});
