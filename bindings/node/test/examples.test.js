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
