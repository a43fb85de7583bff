#!/usr/bin/env node
'use strict';
// A CI gate: evaluate every service of a docker-compose file against a policy set and exit
// non-zero when any service would be blocked.
//
//   bindings/node/build.sh
//   node examples/policy-gate/node/ci_gate.js examples/policy-gate/compose.yaml \
//       examples/policy-gate/policies.json
//
// Exit codes: 0 allow or warn, 1 block, 2 the gate itself could not run. DEPLOY_ENV (default
// `production`) is the environment the stack deploys to. INFRAPILOT_NODE overrides where the
// bindings are loaded from (default: this repository's bindings/node).

const fs = require('node:fs');
const path = require('node:path');

const ip = require(process.env.INFRAPILOT_NODE || path.join(__dirname, '..', '..', '..', 'bindings', 'node'));

function main(argv) {
  if (argv.length !== 2) {
    console.error('usage: ci_gate.js <compose.yaml> <policies.json>');
    return 2;
  }
  const [composePath, policiesPath] = argv;
  let answer;
  try {
    const engine = new ip.PolicyEngine(fs.readFileSync(policiesPath, 'utf8'));
    const context = { agent_labels: { env: process.env.DEPLOY_ENV || 'production' } };
    answer = engine.evaluateCompose(fs.readFileSync(composePath, 'utf8'), 'create', context);
  } catch (err) {
    if (err instanceof ip.PolicyError) {
      for (const d of err.diagnostics) console.error(`ci_gate: ${policiesPath}${d.pointer}: ${d.message}`);
    } else {
      console.error(`ci_gate: ${err.message}`);
    }
    return 2;
  }
  for (const service of answer.services) {
    console.log(`${service.decision.padEnd(5)} ${service.service}`);
    for (const v of service.violations) console.log(`      ${v.action.padEnd(5)} ${v.policy_name}: ${v.message}`);
  }
  console.log(`decision: ${answer.decision}`);
  return answer.decision === 'block' ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
