"use strict";
// index.d.ts declares every export of index.js (and index.mjs re-exports each, the same objects).
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const path = require("path");
const { pkg, requirePackage } = require("./helpers");

test("index.d.ts declares every export; the ESM entry exports the same objects", async () => {
  const base = path.dirname(require.resolve(process.env.TWILIO_SIGNATURE_PACKAGE || path.join(__dirname, "..")));
  const declarations = fs.readFileSync(path.join(base, "index.d.ts"), "utf8");
  const names = Object.keys(pkg);
  assert.ok(names.length > 30);
  const missing = names.filter((name) => !new RegExp(`export (function|class|const) ${name}\\b`).test(declarations));
  assert.deepEqual(missing, []);
  const esm = await import(path.join(base, "index.mjs"));
  assert.deepEqual(names.filter((name) => esm[name] !== pkg[name]), []);
  assert.equal(esm.default, requirePackage());
});
