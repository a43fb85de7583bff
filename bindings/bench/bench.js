'use strict';
// Per-decision cost through the Node bindings; compare with bench_decisions (Rust).

const fs = require('node:fs');
const path = require('node:path');

const ip = require('../node');

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const ITERATIONS = 200_000;

const engine = new ip.PolicyEngine(fs.readFileSync(path.join(FIXTURES, 'policies.json'), 'utf8'));
const cases = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'cases.json'), 'utf8'));
for (const name of ['hardened', 'privileged_root_latest']) {
  const c = cases[name];
  for (let i = 0; i < ITERATIONS / 10; i += 1) engine.evaluate(c.resource, c.action, c.context);
  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i += 1) engine.evaluate(c.resource, c.action, c.context);
  const ns = Number(process.hrtime.bigint() - start) / ITERATIONS;
  console.log(`node   ${name.padEnd(24)} ${ns.toFixed(0).padStart(9)} ns/decision`);
}
