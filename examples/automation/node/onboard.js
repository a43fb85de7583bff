#!/usr/bin/env node
'use strict';
// An automation script over what the API offers today: sign in (or use an API token),
// create an enrollment token for a new host, list the organization's members, and verify the
// audit log on the server and offline.
//
//   bindings/node/build.sh
//   INFRAPILOT_URL=http://127.0.0.1:8080 INFRAPILOT_TOKEN=ipat_... \
//       node examples/automation/node/onboard.js edge-01
//
// Credentials: INFRAPILOT_TOKEN (an API token), or INFRAPILOT_EMAIL and INFRAPILOT_PASSWORD.
// INFRAPILOT_AUDIT_PUBLIC_KEY (hex) pins the audit key; without it the key in the export is
// used. Exits 1 when the audit chain does not verify, 2 on any other error.

const path = require('node:path');

const ip = require(process.env.INFRAPILOT_NODE || path.join(__dirname, '..', '..', '..', 'bindings', 'node'));

async function connect() {
  const client = new ip.Client(process.env.INFRAPILOT_URL || 'http://127.0.0.1:8080');
  if (process.env.INFRAPILOT_TOKEN) {
    client.setToken(process.env.INFRAPILOT_TOKEN);
  } else {
    const { INFRAPILOT_EMAIL: email, INFRAPILOT_PASSWORD: password } = process.env;
    if (!email || !password) throw new Error('set INFRAPILOT_TOKEN, or INFRAPILOT_EMAIL and INFRAPILOT_PASSWORD');
    const answer = await client.login(email, password);
    if (answer.mfa_required) throw new Error('this account needs a second factor; use an API token');
  }
  return client;
}

async function main(host) {
  const client = await connect();
  const created = await client.createEnrollmentToken(`enroll ${host}`, { host }, 3600, 1);
  const info = ip.inspectEnrollmentToken(created.token);
  console.log(`enrollment token ${info.public_id} for ${host} (CA ${info.ca_fingerprint.slice(0, 16)}…)`);
  console.log(`install with: ${created.install_command}`);

  console.log('members:');
  let cursor;
  do {
    const page = await client.listMembers({ limit: 100, cursor });
    for (const m of page.items) console.log(`  ${m.role.padEnd(8)} ${m.email}`);
    cursor = page.next_cursor || undefined;
  } while (cursor);

  const online = await client.verifyAudit();
  const offline = await client.verifyAuditOffline(process.env.INFRAPILOT_AUDIT_PUBLIC_KEY || null);
  console.log(
    `audit: ${offline.entries} entries, server says ${online.broken === null ? 'intact' : 'BROKEN'}, ` +
      `offline check says ${offline.ok ? 'intact' : `BROKEN: ${offline.broken.message}`}`,
  );
  return offline.ok && online.broken === null ? 0 : 1;
}

main(process.argv[2] || 'new-host').then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    const fields = err instanceof ip.ApiError ? err.errors.map((e) => `${e.field}: ${e.reason}`).join('; ') : '';
    console.error(`onboard: ${err.message} ${fields}`.trimEnd());
    process.exitCode = 2;
  },
);
