'use strict';
// The client against the real server binary: sign-in, API tokens, enrollment tokens,
// members and the audit log, with errors as typed exceptions.

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');

const ip = require('..');
const { ADMIN, startServer } = require('./support/helpers');

let server;
let admin;

before(async () => {
  server = await startServer(ip);
  admin = new ip.Client(server.baseUrl);
  const answer = await admin.login(ADMIN.email, ADMIN.password);
  assert.equal(answer.mfa_required, false);
});

after(() => server && server.stop());

test('sign in and who am I', async () => {
  const me = await admin.me();
  assert.equal(me.email, ADMIN.email);
  assert.deepEqual(me.organizations.map((o) => o.name), ['Acme']);
});

test('a wrong password rejects with an ApiError carrying the problem', async () => {
  await assert.rejects(new ip.Client(server.baseUrl).login(ADMIN.email, 'not the password at all'), (err) =>
    err instanceof ip.ApiError && err.status === 401 && err.detail.length > 0 && err.problem_type.length > 0,
  );
});

test('a refused field is reported', async () => {
  await assert.rejects(admin.createEnrollmentToken('short', null, 1), (err) =>
    err instanceof ip.ApiError && err.status === 422 && err.errors.map((e) => e.field).join() === 'expires_in_secs',
  );
});

test('an API token lists members and an enrollment token round-trips', async () => {
  const created = await admin.createApiToken('ci', 'admin');
  const scripted = new ip.Client(server.baseUrl, created.token);
  const members = await scripted.listMembers({ limit: 10 });
  assert.deepEqual(members.items.map((m) => m.email), [ADMIN.email]);
  const enrollment = await scripted.createEnrollmentToken('edge', { env: 'production' }, 3600, 1);
  const info = ip.inspectEnrollmentToken(enrollment.token);
  assert.equal(info.public_id, enrollment.enrollment_token.id);
  assert.equal((await scripted.getEnrollmentToken(info.public_id)).status, 'active');
  await admin.revokeApiToken(created.api_token.id);
  await assert.rejects(scripted.listMembers(), ip.ApiError);
});

test('the audit log verifies, and tampering is found offline', async () => {
  const page = await admin.listAudit({ action: 'enrollment_token.create', limit: 5 });
  assert.ok(page.items.length > 0);
  assert.equal((await admin.verifyAudit()).broken, null);
  const exported = await admin.exportAudit();
  const report = ip.verifyAuditExport(exported, exported.public_key);
  assert.equal(report.ok, true);
  assert.equal(report.entries, exported.entries.length);
  assert.equal((await admin.verifyAuditOffline()).ok, true);
  const tampered = JSON.parse(JSON.stringify(exported));
  tampered.entries[0].entry.outcome = tampered.entries[0].entry.outcome === 'failure' ? 'success' : 'failure';
  const broken = ip.verifyAuditExport(tampered, exported.public_key);
  assert.deepEqual([broken.ok, broken.broken.seq, broken.broken.kind], [false, 1, 'modified']);
});

test('alert channels and rules, logs and events', async () => {
  const channel = await admin.createAlertChannel('ops hook', {
    type: 'webhook', url: 'http://127.0.0.1:9/hook', secret: 'sixteen chars or more',
  });
  assert.deepEqual(channel.config.secret, { set: true });
  const tested = await admin.testAlertChannel(channel.id);
  assert.equal(tested.ok, false);
  // The server calls only public addresses unless told otherwise: loopback is refused.
  assert.match(tested.error, /loopback/);
  const rule = await admin.createAlertRule(
    { name: 'edge down', kind: 'agent_offline', after_secs: 120, severity: 'critical', enabled: true },
    [channel.id],
  );
  assert.deepEqual(rule.channels, [channel.id]);
  assert.deepEqual((await admin.listAlertRules()).map((r) => r.rule.name), ['edge down']);
  assert.deepEqual((await admin.listAlerts({ status: 'firing' })).items, []);
  assert.deepEqual((await admin.queryLogs({ container: ['web', 'db'], level: 'error' })).items, []);
  await assert.rejects(admin.queryLogs({ level: 'loud' }), (err) =>
    err instanceof ip.ApiError && err.status === 422 && err.errors.map((e) => e.field).join() === 'level',
  );
  assert.ok(Array.isArray((await admin.listEvents({ type: 'agent.online' })).items));
  await admin.deleteAlertRule(rule.rule.id);
  await admin.deleteAlertChannel(channel.id);
  assert.deepEqual(await admin.listAlertChannels(), []);
});

test('policies are listed and deleted', async () => {
  const created = await admin.createPolicyFromTemplate({ template: 'no_latest_tag' });
  const listed = (await admin.listPolicies()).items.map((p) => p.policy.id);
  assert.ok(listed.includes(created.policy.id));
  assert.deepEqual((await admin.listViolations({ status: 'open' })).items, []);
  await admin.deletePolicy(created.policy.id);
  const after = (await admin.listPolicies()).items.map((p) => p.policy.id);
  assert.ok(!after.includes(created.policy.id));
});
