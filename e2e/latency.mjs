// Portal latency: signs in as the demo administrator and times 300 sequential requests
// of each kind against a running `dip demo` (use a release build):
//   node e2e/latency.mjs http://127.0.0.1:8080
const BASE = process.argv[2] ?? 'http://127.0.0.1:8080';
const form = new URLSearchParams({ username: 'admin', password: 'demo-password', next: '/' });
const t0 = performance.now();
const r = await fetch(`${BASE}/fn/sign_in`, { method: 'POST', body: form, redirect: 'manual', headers: { accept: 'text/html', origin: BASE } });
const signIn = performance.now() - t0;
const cookie = r.headers.get('set-cookie').split(';')[0];
async function measure(label, path, init = {}) {
  const times = [];
  for (let i = 0; i < 300; i++) {
    const t = performance.now();
    const res = await fetch(`${BASE}${path}`, { headers: { cookie, accept: 'text/html', ...(init.headers || {}) } });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(2);
  console.log(`${label.padEnd(36)} p50 ${q(0.5)} ms  p90 ${q(0.9)} ms  p99 ${q(0.99)} ms  (${(1000 * times.length / times.reduce((a, b) => a + b, 0)).toFixed(0)} req/s sequential)`);
}
console.log(`sign-in (argon2id verify, new session)  ${signIn.toFixed(1)} ms`);
await measure('GET /admin/users (SSR, session)', '/admin/users');
await measure('GET /admin/participants?sort=name', '/admin/participants?sort=name');
await measure('GET /channels (catalogue)', '/channels');
await measure('GET /api/v1/admin/users (REST)', '/api/v1/admin/users', { headers: { accept: 'application/json' } });
