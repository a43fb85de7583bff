'use strict';
// The policy engine, compose mapping, nginx renderer and enrollment tokens from Node.

const assert = require('node:assert/strict');
const test = require('node:test');

const ip = require('..');
const { fixtures } = require('./support/helpers');

const HOST = {
  id: '00000000-0000-0000-0000-000000000007',
  domains: ['app.example.com', 'www.app.example.com'],
  upstream: 'http://web:8080',
  ssl: { mode: 'none' },
};

test('an answer carries the violation and its evidence', () => {
  const engine = new ip.PolicyEngine([{ template: 'no_privileged_containers' }]);
  const answer = engine.evaluate({ image: 'nginx:1.25', host_config: { privileged: true } }, 'create', { now: 0 });
  assert.equal(answer.decision, 'block');
  assert.deepEqual(answer.violations[0].evidence, [{ path: 'host_config.privileged', actual: true }]);
  assert.equal(engine.size, 1);
});

test('an invalid policy set throws a PolicyError with pointers into the set', () => {
  const bad = {
    id: '00000000-0000-4000-8000-000000000001',
    name: 'bad regex',
    action: 'block',
    condition: { any: [{ field: 'image', operator: 'matches', value: '(' }] },
  };
  assert.throws(
    () => new ip.PolicyEngine([{ template: 'no_host_network' }, bad]),
    (err) =>
      err instanceof ip.PolicyError &&
      err instanceof ip.InfraPilotError &&
      err.kind === 'invalid_policy' &&
      err.diagnostics[0].pointer === '/1/condition/any/0/value' &&
      err.diagnostics[0].code === 'invalid_regex',
  );
});

test('validate locates every problem', () => {
  const answer = ip.validatePolicy({ id: 'not-a-uuid', name: 'x', action: 'explode', condition: { any: [] }, colour: 1 });
  assert.equal(answer.valid, false);
  const pointers = new Set(answer.diagnostics.map((d) => d.pointer));
  for (const p of ['/id', '/action', '/colour', '/condition']) assert.ok(pointers.has(p), p);
});

test('templates are listed', () => {
  const templates = ip.listTemplates();
  assert.equal(templates.length, 11);
  assert.equal(new ip.PolicyEngine(templates.map((t) => t.policy)).size, 11);
});

test('bad arguments throw InvalidInputError naming the field', () => {
  const engine = new ip.PolicyEngine([]);
  assert.throws(() => engine.evaluate({}, 'launch'), (err) => err instanceof ip.InvalidInputError && err.field === 'action');
  assert.throws(() => new ip.PolicyEngine('[{'), ip.InvalidJsonError);
});

test('compose services map to the container shape, and errors locate the problem', () => {
  const resources = ip.composeResources(fixtures().compose);
  assert.equal(resources.web.host_config.memory, 256 * 1024 * 1024);
  assert.deepEqual(resources.worker.config.healthcheck, { test: ['NONE'] });
  assert.throws(
    () => ip.composeResources('services:\n  web:\n    mem_limit: lots\n'),
    (err) => err instanceof ip.ComposeError && err.field === 'services.web.mem_limit',
  );
  assert.throws(
    () => ip.composeResources('services:\n  web:\n    image: [unclosed\n'),
    (err) => err instanceof ip.ComposeError && typeof err.line === 'number',
  );
});

test('a proxy host renders, and a refused field is named', () => {
  const rendered = ip.renderProxyHost(HOST);
  assert.match(rendered.files[0].contents, /server_name app\.example\.com www\.app\.example\.com;/);
  ip.validateProxyHost(HOST);
  assert.throws(
    () => ip.validateProxyHost({ ...HOST, domains: ['ok.example.com', 'bad domain!'] }),
    (err) => err instanceof ip.InvalidInputError && err.field === 'domains[1]',
  );
});

test('an enrollment token shows its public parts and never echoes its secret', () => {
  const token = 'IPT1.' + 'ab'.repeat(32) + '.0123456789abcdef.' + 'A'.repeat(42) + 'E';
  assert.deepEqual(ip.inspectEnrollmentToken(token), {
    version: 1,
    ca_fingerprint: 'ab'.repeat(32),
    public_id: '0123456789abcdef',
  });
  const secret = 'S3cr3t'.repeat(7);
  assert.throws(
    () => ip.inspectEnrollmentToken('IPT1.' + 'ab'.repeat(32) + '.0123456789abcdef.' + secret),
    (err) => err instanceof ip.EnrollmentTokenError && !err.message.includes(secret),
  );
});
