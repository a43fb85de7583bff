'use strict';
// The examples run: the CI gate on both compose files, and the automation script against the
// real server with an API token.

const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const { after, before, test } = require('node:test');

const ip = require('..');
const { ADMIN, REPO, startServer } = require('./support/helpers');

const GATE = path.join(REPO, 'examples', 'policy-gate');
const run = (args, env = {}) =>
  spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });

test('the CI gate passes a good stack and blocks a bad one', () => {
  const gate = path.join(GATE, 'node', 'ci_gate.js');
  const ok = run([gate, path.join(GATE, 'compose.yaml'), path.join(GATE, 'policies.json')]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /decision: warn/);
  const blocked = run([gate, path.join(GATE, 'compose-blocked.yaml'), path.join(GATE, 'policies.json')]);
  assert.equal(blocked.status, 1, blocked.stderr);
  assert.match(blocked.stdout, /block cadvisor/);
});

let server;
before(async () => {
  server = await startServer(ip);
});
after(() => server && server.stop());

test('the onboarding script runs with an API token', async () => {
  const admin = new ip.Client(server.baseUrl);
  await admin.login(ADMIN.email, ADMIN.password);
  const { token } = await admin.createApiToken('automation', 'admin');
  const script = path.join(REPO, 'examples', 'automation', 'node', 'onboard.js');
  const result = run([script, 'edge-01'], { INFRAPILOT_URL: server.baseUrl, INFRAPILOT_TOKEN: token });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /install with:/);
  assert.match(result.stdout, /offline check says intact/);
  const refused = run([script], { INFRAPILOT_URL: server.baseUrl, INFRAPILOT_TOKEN: 'ipat_nope' });
  assert.equal(refused.status, 2);
});

test('the operate script restarts a container and puts a proxy in front', async () => {
  const { execFileSync } = require('node:child_process');
  const http = require('node:http');
  const image = 'infrapilot-test/busybox:1';
  execFileSync('docker', ['image', 'inspect', image], { stdio: 'ignore' }); // built by the Rust suite
  const admin = new ip.Client(server.baseUrl);
  await admin.login(ADMIN.email, ADMIN.password);
  const { token } = await admin.createApiToken('operate', 'admin');
  let agent;
  for (let i = 0; i < 100 && !agent; i++) {
    const online = (await admin.listAgents()).items.filter((a) => a.status === 'online');
    if (online.length) agent = online[0].id;
    else await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(agent, 'the built-in agent comes online');
  const upstream = http.createServer((req, res) => res.end('hello'));
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  const name = `nodeop-${Math.random().toString(16).slice(2, 12)}`;
  execFileSync('docker', ['run', '-d', '--name', name, '--label', 'infrapilot.test=node-operate', image, 'sleep', '600']);
  try {
    const script = path.join(REPO, 'examples', 'automation', 'node', 'operate.js');
    const domain = `${name}.test`;
    // The script runs in another process: this one must keep serving the upstream meanwhile.
    const { spawn } = require('node:child_process');
    const result = await new Promise((resolve) => {
      const child = spawn(process.execPath, [script, agent, name, domain, `http://127.0.0.1:${upstream.address().port}`], {
        env: { ...process.env, INFRAPILOT_URL: server.baseUrl, INFRAPILOT_TOKEN: token },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.match(result.stdout, new RegExp(`restarted ${name}: running`));
    assert.match(result.stdout, /: applied/);
    let body;
    for (let i = 0; i < 50 && body !== 'hello'; i++) {
      body = await new Promise((resolve) => {
        http
          .get({ host: '127.0.0.1', port: server.nginxPort, path: '/', headers: { Host: domain } }, (res) => {
            let text = '';
            res.on('data', (d) => (text += d));
            res.on('end', () => resolve(text));
          })
          .on('error', () => resolve(null));
      });
      if (body !== 'hello') await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(body, 'hello', 'nginx serves the new host');
  } finally {
    upstream.close();
    execFileSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
  }
});
