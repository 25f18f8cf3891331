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

test("without a prebuilt addon for this platform the error names it and how to build from source", () => {
  const os = require("os");
  const { spawnSync } = require("child_process");
  const base = path.dirname(require.resolve(process.env.TWILIO_SIGNATURE_PACKAGE || path.join(__dirname, "..")));
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), "twsig-noaddon-"));
  try {
    fs.cpSync(path.join(base, "lib"), path.join(copy, "lib"), { recursive: true });
    fs.copyFileSync(path.join(base, "index.js"), path.join(copy, "index.js"));
    const env = { ...process.env };
    delete env.TWILIO_SIGNATURE_NATIVE;
    const run = spawnSync(process.execPath, ["-e", `require(${JSON.stringify(copy)})`], { env, encoding: "utf8" });
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /twilio-signature: no prebuilt native addon for linux-x64-gnu \(this package ships linux-x64-gnu\)/);
    assert.match(run.stderr, /cargo build --release -p twilio-signature-node/);
    assert.match(run.stderr, /TWILIO_SIGNATURE_NATIVE/);
  } finally {
    fs.rmSync(copy, { recursive: true, force: true });
  }
});
