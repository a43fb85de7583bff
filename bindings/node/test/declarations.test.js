'use strict';
// Every export of index.js, and every method of its classes, is declared in index.d.ts.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');

const ip = require('..');

const dts = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8');

function classBody(name) {
  const start = dts.indexOf(`export class ${name} `);
  assert.notEqual(start, -1, `class ${name} is not declared`);
  const open = dts.indexOf('{', start);
  let depth = 0;
  for (let i = open; i < dts.length; i += 1) {
    if (dts[i] === '{') depth += 1;
    if (dts[i] === '}') depth -= 1;
    if (depth === 0) return dts.slice(open, i);
  }
  return '';
}

test('every export is declared', () => {
  for (const [name, value] of Object.entries(ip)) {
    const declared =
      typeof value === 'function' && /^[A-Z]/.test(name)
        ? dts.includes(`export class ${name} `)
        : dts.includes(`export function ${name}(`);
    assert.ok(declared, `${name} is exported by index.js but not declared in index.d.ts`);
  }
});

test('every method and getter of the classes is declared', () => {
  for (const name of ['PolicyEngine', 'Client']) {
    const body = classBody(name);
    for (const member of Object.getOwnPropertyNames(ip[name].prototype)) {
      if (member === 'constructor') continue;
      assert.match(body, new RegExp(`\\b${member}\\b[(:?]`), `${name}.${member} is not declared`);
    }
  }
});

test('nothing is declared that is not exported', () => {
  for (const [, name] of dts.matchAll(/export (?:class|function) (\w+)/g)) {
    assert.ok(name in ip, `${name} is declared but not exported`);
  }
});
