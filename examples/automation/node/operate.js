#!/usr/bin/env node
'use strict';
// Day-two automation: list the agents, restart a container on one, and put a proxy host in
// front of a service.
//
//   bindings/node/build.sh
//   INFRAPILOT_URL=http://127.0.0.1:8080 INFRAPILOT_TOKEN=ipat_... \
//       node examples/automation/node/operate.js AGENT_ID CONTAINER app.example.com http://127.0.0.1:3000
//
// CONTAINER may be `-` to restart nothing. Prints the proxy host's status (`applied`, or
// `quarantined`/`failed` with nginx's own message). Exits 1 when nginx does not serve the
// host, 2 on any other error (a blocking policy included, with the policy's message).

const path = require('node:path');

const ip = require(process.env.INFRAPILOT_NODE || path.join(__dirname, '..', '..', '..', 'bindings', 'node'));

async function main([agentId, container, domain, upstream]) {
  if (!process.env.INFRAPILOT_TOKEN) throw new Error('set INFRAPILOT_TOKEN');
  const client = new ip.Client(process.env.INFRAPILOT_URL || 'http://127.0.0.1:8080', process.env.INFRAPILOT_TOKEN);
  console.log('agents:');
  for (const agent of (await client.listAgents({ limit: 200 })).items) {
    console.log(`  ${agent.status.padEnd(8)} ${agent.id} ${agent.name}`);
  }
  if (container !== '-') {
    const answer = await client.containerAction(agentId, container, 'restart');
    console.log(`restarted ${container}: ${answer.result.state}`);
    for (const w of answer.warnings) console.log(`  policy warning: ${w.message}`);
  }
  const host = await client.createProxyHost(agentId, { domains: [domain], upstream });
  console.log(`proxy host ${host.id} for ${domain} -> ${upstream}: ${host.status}`);
  if (host.status_error) console.log(`  nginx: ${host.status_error}`);
  return host.status === 'applied' ? 0 : 1;
}

const args = process.argv.slice(2);
if (args.length !== 4) {
  console.error('usage: operate.js AGENT_ID CONTAINER|- DOMAIN UPSTREAM');
  process.exit(2);
}
main(args).then(
  (code) => process.exit(code),
  (err) => {
    const fields = (err.errors || []).map((e) => `${e.field}: ${e.reason}`).join('; ');
    console.error(`operate: ${err.status ? `${err.status} ` : ''}${err.detail || err.message} ${fields}`.trimEnd());
    process.exit(2);
  },
);
