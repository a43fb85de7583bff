'use strict';
// Shared test helpers: the shared decision fixtures and a real InfraPilot server.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const REPO = path.resolve(__dirname, '..', '..', '..', '..');
const FIXTURES = path.join(REPO, 'bindings', 'fixtures');
const ADMIN = { email: 'admin@example.com', password: 'a long passphrase here' };

function fixtures() {
  const read = (name) => fs.readFileSync(path.join(FIXTURES, name), 'utf8');
  return {
    policies: JSON.parse(read('policies.json')),
    cases: JSON.parse(read('cases.json')),
    compose: read('compose.yaml'),
    expected: JSON.parse(read('expected.json')),
  };
}

function summary(evaluation) {
  return {
    decision: evaluation.decision,
    violations: evaluation.violations.map((v) => v.policy_name),
    diagnostics: evaluation.diagnostics.map((d) => d.code),
  };
}

function serverBinary() {
  if (process.env.INFRAPILOT_SERVER_BIN) return process.env.INFRAPILOT_SERVER_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(REPO, 'target');
  return path.join(target, 'debug', 'infrapilot-server');
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/**
 * Starts the real server binary with a fresh SQLite data directory, completes setup with the
 * code from its JSON log, and resolves to {baseUrl, stop}.
 */
async function startServer(ip) {
  const binary = serverBinary();
  if (!fs.existsSync(binary)) {
    // Loud, not skipped: the client tests are part of the suite.
    throw new Error(`${binary} is missing; run \`cargo build -p infrapilot-server\` first`);
  }
  const port = await freePort();
  // The agent endpoint needs a port of its own: tests start servers side by side.
  const agentPort = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'infrapilot-node-'));
  // The built-in agent drives the host's nginx for proxy hosts: on ports of its own.
  const nginxPort = await freePort();
  const nginxTlsPort = await freePort();
  const child = spawn(binary, [], {
    env: {
      PATH: process.env.PATH,
      INFRAPILOT_BIND: `127.0.0.1:${port}`,
      INFRAPILOT_AGENT_BIND: `127.0.0.1:${agentPort}`,
      INFRAPILOT_DATA_DIR: dataDir,
      INFRAPILOT_LOG_FORMAT: 'json',
      INFRAPILOT_NGINX_HTTP_PORT: String(nginxPort),
      INFRAPILOT_NGINX_HTTPS_PORT: String(nginxTlsPort),
      RUST_LOG: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const code = await new Promise((resolve, reject) => {
    let setupCode = null;
    let listening = false;
    const timer = setTimeout(() => reject(new Error('the server did not start within 60 s')), 60_000);
    child.on('exit', (status) => reject(new Error(`the server exited with ${status}`)));
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        return;
      }
      const fields = event.fields || {};
      setupCode = setupCode || fields.setup_code || null;
      listening = listening || String(fields.message || '').includes('listening');
      if (setupCode && listening) {
        clearTimeout(timer);
        resolve(setupCode);
      }
    });
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  await new ip.Client(baseUrl).setup({
    setup_code: code,
    email: ADMIN.email,
    name: 'Admin',
    password: ADMIN.password,
    organization_name: 'Acme',
  });
  const stop = () => {
    child.removeAllListeners('exit');
    child.kill('SIGTERM');
    // nginx outlives the server by design; a test's nginx must not.
    const conf = path.join(dataDir, 'nginx', 'conf', 'nginx.conf');
    if (fs.existsSync(conf)) {
      require('node:child_process').spawnSync('/usr/sbin/nginx', ['-q', '-c', conf, '-s', 'stop']);
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  return { baseUrl, stop, nginxPort };
}

module.exports = { ADMIN, REPO, fixtures, summary, startServer };
