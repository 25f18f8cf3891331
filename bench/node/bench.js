// Times one webhook verification in Node, in batches that bench/run.py asks for.
//
//   node bench.js <fixture.json> [twilio-node | ours-validator | ours-dropin]
//
// twilio-node      twilio-node 6.2.0's validateRequest(token, signature, url, params object);
// ours-validator   twilio-signature's Validator.verify({url, body, signature}) on the raw body, a Buffer
//                  as a Node server reads it from the socket (bindings-node, the addon make node-addon built);
// ours-dropin      twilio-signature's drop-in validateRequest with the same arguments as twilio-node.
//
// Prints "ready" once the fixture validates (and a tampered copy does not), then for every line "N" on
// standard input runs N validations and prints the elapsed nanoseconds (measured here, in-process).
"use strict";

const fs = require("fs");
const path = require("path");
const readline = require("readline");

const fixture = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const mode = process.argv[3] || "twilio-node";
// twilio-node takes the framework's parsed body: an object of name -> value.
const params = Object.fromEntries(fixture.params);
const { token, url, signature } = fixture;
const body = Buffer.from(fixture.body, "utf8");

let check;
let tampered;
if (mode === "twilio-node") {
  const { validateRequest } = require("twilio");
  check = () => validateRequest(token, signature, url, params);
  tampered = () => validateRequest(token, signature, url, { ...params, Body: params.Body + "!" });
} else {
  let ours;
  try {
    ours = require(path.join(__dirname, "..", "..", "bindings-node"));
  } catch (error) {
    console.error(`bench.js: twilio-signature does not load (make node-addon): ${error.message}`);
    console.log("unavailable");
    process.exit(0);
  }
  if (mode === "ours-validator") {
    const validator = new ours.Validator(token);
    check = () => validator.verify({ url, body, signature }).secretIndex === 0;
    tampered = () => validator.isValid({ url, body: Buffer.concat([body, Buffer.from("!")]), signature });
  } else if (mode === "ours-dropin") {
    check = () => ours.validateRequest(token, signature, url, params);
    tampered = () => ours.validateRequest(token, signature, url, { ...params, Body: params.Body + "!" });
  } else {
    console.error(`bench.js: unknown mode ${mode}`);
    process.exit(2);
  }
}

if (!check()) {
  console.error(`bench.js (${mode}): the fixture does not validate`);
  process.exit(1);
}
if (tampered()) {
  console.error(`bench.js (${mode}): a tampered request validates`);
  process.exit(1);
}
console.log("ready");

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const n = parseInt(line, 10);
  if (!(n > 0)) {
    lines.close();
    return;
  }
  let failures = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    if (!check()) failures++;
  }
  const elapsed = process.hrtime.bigint() - start;
  if (failures) {
    console.error(`bench.js (${mode}): ${failures} validations failed`);
    process.exit(1);
  }
  console.log(elapsed.toString());
});
