#!/usr/bin/env node
// Differential: twilio-node 6.2.0 (validateRequest / validateRequestWithBody, HMAC-SHA1) against the
// Rust core, on seeded random webhooks. Usage: node diff.js [CASES] [SEED]
//
// Every disagreement must be one of the documented contract choices (tests/vectors/README.md):
//   node-url-normalisation  node, after the URL as received fails, also accepts signatures over the
//                           WHATWG-normalised or querystring-re-encoded URL; we sign the bytes as given;
//   utf16-order             node sorts names (and repeated values) by UTF-16 code unit, we by code
//                           point (UTF-8 bytes); they differ only around characters beyond U+FFFF;
//   credentials-dropped     we also try the URL without user:pass@ (Twilio drops it), node never does.
// Anything else fails the test.
"use strict";
const path = require("path");
const { spawnSync } = require("child_process");
const twilio = require("twilio");

const CASES = Number(process.argv[2] || 5000);
const { makeCase, nodeVerdict, classify } = require("./cases")(twilio, process.argv[3] || 20240611);

const cases = Array.from({ length: CASES }, makeCase);
const bin = path.join(__dirname, "target", "release", "core-verdicts");
const run = spawnSync(bin, [], {
  input: cases.map((c) => JSON.stringify({ token: c.token, url: c.url, body: c.body, signature: c.signature })).join("\n") + "\n",
  maxBuffer: 1 << 28,
});
if (run.status !== 0) {
  console.error(`node-diff: ${bin} failed: ${run.stderr}`);
  process.exit(1);
}
const verdicts = run.stdout.toString().trim().split("\n").map((l) => JSON.parse(l));
if (verdicts.length !== cases.length) {
  console.error(`node-diff: ${verdicts.length} verdicts for ${cases.length} cases`);
  process.exit(1);
}
const counts = { agree: 0, agreeAccept: 0 };
const unexplained = [];
cases.forEach((c, i) => {
  const ours = verdicts[i];
  const node = nodeVerdict(c);
  if (ours.ok === node) {
    counts.agree++;
    if (node) counts.agreeAccept++;
    return;
  }
  const why = classify(c, ours, node);
  if (why) counts[why] = (counts[why] || 0) + 1;
  else unexplained.push({ url: c.url, body: c.body, signature: c.signature, node, ours });
});
console.log(`node-diff: ${CASES} webhooks (twilio-node 6.2.0 vs core, HMAC-SHA1): ${JSON.stringify(counts)}`);
if (unexplained.length) {
  console.log(`node-diff: ${unexplained.length} UNEXPLAINED divergence(s); first ones:`);
  for (const u of unexplained.slice(0, 5)) console.log("  " + JSON.stringify(u));
  process.exit(1);
}
if (counts.agreeAccept < CASES / 10) {
  console.log("node-diff: too few accepted webhooks to mean anything");
  process.exit(1);
}
console.log("node-diff: every divergence is a documented contract choice");
