"use strict";
// Oracle: twilio-node 6.2.0 (the npm package, a devDependency) against this package's drop-in
// (validateRequest / validateRequestWithBody) and its native Validator, on thousands of seeded random
// webhooks: form and JSON (bodySHA256) bodies, ports, userinfo, repeated params, Unicode, tampered
// signatures. The generator and the classes of difference are tests/node-diff/diff.js's (which runs the
// core through Rust); every disagreement must be one of the contract's documented differences:
//   node-url-normalisation  node, after the URL as received fails, also accepts signatures over its
//                           WHATWG-normalised or querystring-re-encoded URL; we verify the bytes as given;
//   utf16-order             node sorts by UTF-16 unit, we by code point (beyond U+FFFF only);
//   credentials-dropped     we also try the URL without user:pass@ (Twilio drops it), node never does.
const test = require("node:test");
const assert = require("node:assert/strict");
const crypto = require("crypto");
const twilio = require("twilio");
const { pkg } = require("./helpers");

const CASES = Number(process.env.ORACLE_CASES || 4000);
const { makeCase, nodeVerdict, classify } = require("../../tests/node-diff/cases.js")(
  twilio,
  process.env.ORACLE_SEED || 20261206,
);

test(`twilio-node 6.2.0 as the oracle on ${CASES} generated webhooks`, () => {
  const cases = Array.from({ length: CASES }, makeCase);
  const counts = { agree: 0, agreeAccept: 0 };
  const unexplained = [];
  for (const c of cases) {
    const node = nodeVerdict(c);
    const dropIn = c.json
      ? pkg.validateRequestWithBody(c.token, c.signature, c.url, c.body)
      : pkg.validateRequest(c.token, c.signature, c.url, c.obj);
    // The drop-in answers exactly what the native Validator answers on the raw body (the contract).
    const validator = new pkg.Validator(c.token);
    let ours;
    try {
      ours = { ok: true, candidate: validator.verify({ url: c.url, body: c.body, signature: c.signature }).candidate };
    } catch (error) {
      assert.ok(error instanceof pkg.SignatureError, String(error));
      ours = { ok: false };
    }
    assert.equal(dropIn, ours.ok, `drop-in vs Validator: ${JSON.stringify({ url: c.url, body: c.body })}`);
    if (ours.ok === node) {
      counts.agree++;
      if (node) counts.agreeAccept++;
      continue;
    }
    const why = classify(c, ours, node);
    if (why) counts[why] = (counts[why] || 0) + 1;
    else unexplained.push({ url: c.url, body: c.body, signature: c.signature, node, ours });
  }
  console.log(`oracle: ${CASES} webhooks, twilio-node 6.2.0 vs twilio-signature (drop-in = Validator): ${JSON.stringify(counts)}`);
  assert.deepEqual(unexplained.slice(0, 5), [], `${unexplained.length} unexplained divergences`);
  // Only the documented classes, and enough accepted webhooks for the comparison to mean something.
  for (const key of Object.keys(counts)) {
    assert.ok(["agree", "agreeAccept", "node-url-normalisation", "utf16-order", "credentials-dropped"].includes(key), key);
  }
  assert.ok(counts.agreeAccept > CASES / 10, "too few accepted webhooks");
  assert.ok(counts.agree > CASES * 0.8, "agreement below 80%");
});

test("the documented differences, one by one", () => {
  const token = "12345";
  // twilio/twilio-node#1183: a signed URL with ' and + in its query.
  const url = "https://example.com/sms?name=O'Brien&q=a+b";
  const params = { Body: "hi" };
  const signature = crypto.createHmac("sha1", token).update(url + "Bodyhi").digest("base64");
  assert.equal(pkg.validateRequest(token, signature, url, params), true);
  // Credentials: Twilio signs the URL without user:pass@.
  const withCreds = "https://user:pass@example.com/sms";
  const sigNoCreds = crypto.createHmac("sha1", token).update("https://example.com/smsBodyhi").digest("base64");
  assert.equal(pkg.validateRequest(token, sigNoCreds, withCreds, params), true);
  assert.equal(twilio.validateRequest(token, sigNoCreds, withCreds, params), false);
  // The WHATWG-normalised URL is not what Twilio signed: refused by us, accepted by twilio-node.
  const raw = "https://Example.COM/a b";
  const normalised = new URL(raw).toString();
  const sigNormalised = crypto.createHmac("sha1", token).update(normalised + "Bodyhi").digest("base64");
  assert.equal(twilio.validateRequest(token, sigNormalised, raw, params), true);
  assert.equal(pkg.validateRequest(token, sigNormalised, raw, params), false);
  // An empty token keys nothing here; twilio-node accepts an HMAC keyed with "".
  const emptyKeyed = crypto.createHmac("sha1", "").update(url + "Bodyhi").digest("base64");
  assert.equal(twilio.validateRequest("", emptyKeyed, url, params), true);
  assert.equal(pkg.validateRequest("", emptyKeyed, url, params), false);
  assert.equal(pkg.validateRequest("  ", emptyKeyed, url, params), false);
  // An unparseable URL: false, not a thrown TypeError.
  assert.throws(() => twilio.validateRequestWithBody(token, "x", "not a url", "{}"), TypeError);
  assert.equal(pkg.validateRequestWithBody(token, "x", "not a url", "{}"), false);
});

test("the drop-in's helpers answer as twilio-node's", () => {
  const token = "12345";
  const url = "https://mycompany.com/myapp.php?foo=1&bar=2";
  const params = { CallSid: "CA1234567890ABCDE", Caller: "+12349013030", Digits: "1234", From: "+12349013030", To: "+18005551212", Multi: ["b", "a", "b"], N: 5 };
  assert.equal(pkg.getExpectedTwilioSignature(token, url, params), twilio.getExpectedTwilioSignature(token, url, params));
  const body = '{"property": "value", "boolean": true}';
  assert.equal(pkg.getExpectedBodyHash(body), twilio.getExpectedBodyHash(body));
  assert.equal(pkg.validateBody(body, twilio.getExpectedBodyHash(body)), true);
  assert.equal(pkg.validateBody(body, "0".repeat(64)), false);
  const jsonUrl = `https://example.com/hook?bodySHA256=${twilio.getExpectedBodyHash(body)}`;
  const sig = twilio.getExpectedTwilioSignature(token, jsonUrl, {});
  assert.equal(pkg.getExpectedTwilioSignature(token, jsonUrl, null), sig);
  assert.equal(pkg.validateRequestWithBody(token, sig, jsonUrl, body), true);
  assert.equal(pkg.validateRequestWithBody(token, sig, jsonUrl, body + " "), false);
  // Express-shaped requests: validateIncomingRequest / validateExpressRequest build the URL as twilio-node.
  const request = {
    protocol: "https",
    headers: { host: "mycompany.com" },
    originalUrl: "/myapp.php?foo=1&bar=2",
    body: params,
    header(name) {
      return name.toLowerCase() === "x-twilio-signature" ? twilio.getExpectedTwilioSignature(token, url, params) : undefined;
    },
  };
  assert.equal(pkg.validateIncomingRequest(request, token), twilio.validateIncomingRequest(request, token));
  assert.equal(pkg.validateExpressRequest(request, token), true);
  assert.equal(pkg.validateExpressRequest(request, token, { host: "other.com" }), false);
  assert.equal(pkg.validateExpressRequest(request, token, { url }), true);
  assert.equal(pkg.validateExpressRequest({ ...request, body: { ...params, Digits: "9" } }, token), false);
});
