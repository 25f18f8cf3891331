// Times twilio-node's validateRequest on one webhook, in batches that bench/run.py asks for.
//
//   node bench.js <fixture.json>
//
// Prints "ready" once the fixture validates (and a tampered copy does not), then for every line "N" on
// standard input runs N validations and prints the elapsed nanoseconds (measured here, in-process).
"use strict";

const fs = require("fs");
const readline = require("readline");
const { validateRequest } = require("twilio");

const fixture = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
// twilio-node takes the framework's parsed body: an object of name -> value.
const params = Object.fromEntries(fixture.params);
const { token, url, signature } = fixture;

if (!validateRequest(token, signature, url, params)) {
  console.error("bench.js: the fixture does not validate");
  process.exit(1);
}
if (validateRequest(token, signature, url, { ...params, Body: params.Body + "!" })) {
  console.error("bench.js: a tampered request validates");
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
    if (!validateRequest(token, signature, url, params)) failures++;
  }
  const elapsed = process.hrtime.bigint() - start;
  if (failures) {
    console.error(`bench.js: ${failures} validations failed`);
    process.exit(1);
  }
  console.log(elapsed.toString());
});
