'use strict';
// The shared fixtures give the decisions in bindings/fixtures/expected.json, as in Rust and Python.

const assert = require('node:assert/strict');
const test = require('node:test');

const ip = require('..');
const { fixtures, summary } = require('./support/helpers');

test('every case gives the expected decision', () => {
  const f = fixtures();
  const engine = new ip.PolicyEngine(f.policies);
  assert.deepEqual(Object.keys(f.expected.cases).sort(), Object.keys(f.cases).sort());
  for (const [name, c] of Object.entries(f.cases)) {
    assert.deepEqual(summary(engine.evaluate(c.resource, c.action, c.context)), f.expected.cases[name], name);
  }
});

test('the compose file gives the expected decisions', () => {
  const f = fixtures();
  const answer = ip.evaluateCompose(f.compose, f.policies, { now: 1700000000 });
  const services = Object.fromEntries(answer.services.map((s) => [s.service, summary(s)]));
  assert.deepEqual({ decision: answer.decision, services }, f.expected.compose);
});

test('JSON text and values give the same answer', () => {
  const f = fixtures();
  const c = f.cases.privileged_root_latest;
  const fromText = new ip.PolicyEngine(JSON.stringify(f.policies));
  const fromValues = new ip.PolicyEngine(f.policies);
  assert.deepEqual(
    fromText.evaluate(JSON.stringify(c.resource), 'create', c.context),
    fromValues.evaluate(c.resource, 'create', c.context),
  );
});
