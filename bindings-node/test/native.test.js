"use strict";
// The native API (Validator) and the drop-in against the project's shared vectors, errors and secrets.
const test = require("node:test");
const assert = require("node:assert/strict");
const util = require("util");
const { pkg, loadJson } = require("./helpers");

const { vectors } = loadJson("twilio-signatures.json");

function paramsObject(pairs) {
  const obj = {};
  for (const [k, v] of pairs) {
    if (!Object.hasOwn(obj, k)) obj[k] = v;
    else obj[k] = [].concat(obj[k], v);
  }
  return obj;
}

test("the shared vectors: Validator.isValid / verify on the raw body and on parsed params", () => {
  assert.ok(vectors.length >= 200);
  let checked = 0;
  for (const v of vectors) {
    let validator;
    try {
      validator = new pkg.Validator(v.secret);
    } catch (error) {
      // An unusable secret signs nothing: such a vector can only expect a refusal.
      assert.equal(v.expect, false, `${v.id}: secret refused but the vector expects acceptance`);
      assert.equal(error.code, "ERR_INVALID_SECRET");
      continue;
    }
    const body = v.params === null ? v.body : v.form_body;
    const request = { url: v.url, body, signature: v.signature, settings: v.signature_settings };
    assert.equal(validator.isValid(request), v.expect, `${v.id} (raw body): ${v.note}`);
    assert.equal(validator.isValid({ ...request, body: Buffer.from(body, "utf8") }), v.expect, `${v.id} (Buffer body)`);
    if (v.expect) {
      const verified = validator.verify(request);
      assert.equal(verified.secretIndex, 0);
      assert.equal(verified.algorithm, v.algorithm);
      assert.equal(verified.replayKey.length, 32);
    } else {
      assert.throws(() => validator.verify(request), pkg.SignatureError, v.id);
    }
    if (v.params !== null && !/[?&]bodySHA256=/.test(v.url)) {
      assert.equal(validator.isValid({ url: v.url, params: v.params, signature: v.signature, settings: v.signature_settings }), v.expect, `${v.id} (params)`);
    }
    checked++;
  }
  assert.ok(checked > 150);
});

test("the shared vectors through the drop-in: the contract's verdict, HMAC-SHA1 vectors", () => {
  let differsFromNode = 0;
  let checked = 0;
  for (const v of vectors) {
    if (v.algorithm !== "HMAC_SHA1" || v.signature_settings !== null) continue;
    const ours =
      v.params === null
        ? pkg.validateRequestWithBody(v.secret, v.signature, v.url, v.body)
        : /[?&]bodySHA256=/.test(v.url)
          ? null
          : pkg.validateRequest(v.secret, v.signature, v.url, paramsObject(v.params));
    if (ours === null) continue;
    assert.equal(ours, v.expect, `${v.id}: ${v.note}`);
    if (v.twilio_node !== null && v.twilio_node !== v.expect) differsFromNode++;
    checked++;
  }
  assert.ok(checked > 100, `${checked} drop-in vectors`);
  assert.ok(differsFromNode > 0, "the vectors include documented twilio-node differences");
});

test("signing reproduces every accepted vector signed over the URL as given", () => {
  let signed = 0;
  for (const v of vectors) {
    // Other vectors were signed over a variant (port toggled, no credentials): sign() signs the URL given.
    if (!v.expect || v.params === null || !v.signed_string.startsWith(v.url)) continue;
    signed++;
    const validator = new pkg.Validator(v.secret);
    assert.equal(validator.sign({ url: v.url, body: v.form_body, settings: v.signature_settings }), v.signature, v.id);
  }
  assert.ok(signed > 60, `${signed} vectors signed`);
});

test("errors: one class per cause, a code, the groups", () => {
  const v = new pkg.Validator("12345");
  const url = "https://example.com/sms";
  const cases = [
    [{ url, body: "a=1" }, pkg.MissingSignatureError, "ERR_MISSING_SIGNATURE", pkg.MalformedRequestError],
    [{ url, body: "a=1", signature: "nope" }, pkg.MalformedSignatureError, "ERR_MALFORMED_SIGNATURE", pkg.MalformedRequestError],
    [{ url, body: "a=1", signature: v.sign({ url, body: "a=2" }) }, pkg.SignatureMismatchError, "ERR_SIGNATURE_MISMATCH", pkg.SignatureError],
    [{ url, body: "a=%FF", signature: v.sign({ url, body: "a=1" }) }, pkg.MalformedBodyError, "ERR_MALFORMED_BODY", pkg.MalformedRequestError],
    [{ url, body: "a=1", signature: v.sign({ url, body: "a=1" }), settings: "algorithm=HMAC_MD5" }, pkg.UnsupportedAlgorithmError, "ERR_UNSUPPORTED_ALGORITHM", pkg.MalformedRequestError],
  ];
  for (const [request, Class, code, Group] of cases) {
    assert.throws(
      () => v.verify(request),
      (error) => error instanceof Class && error instanceof Group && error instanceof Error && error.code === code && error.name === Class.name
    );
  }
  const json = '{"a":1}';
  const jsonUrl = `${url}?bodySHA256=${pkg.bodySha256(json)}`;
  const signature = v.sign({ url: jsonUrl, body: json });
  assert.equal(v.verify({ url: jsonUrl, body: json, signature }).candidate, "as_given");
  assert.throws(() => v.verify({ url: jsonUrl, body: '{"a":2}', signature }), pkg.BodyHashMismatchError);
  assert.throws(() => v.verify({ url: jsonUrl, params: { a: "1" }, signature }), pkg.BodyRequiredError);
  const tooMany = new pkg.Validator("12345", { maxParams: 2 });
  assert.throws(() => tooMany.verify({ url, body: "a=1&b=2&c=3", signature: v.sign({ url, body: "a=1&b=2&c=3" }) }), pkg.TooManyParamsError);
});

test("secrets: rotation, key ids, never in errors, inspect or JSON; unusable ones refused", () => {
  const secret = "s3cr3t-token-value-0123456789abcdef";
  const url = "https://example.com:8443/voice?x=1";
  const body = "CallSid=CA1&From=%2B15551234567";
  const old = new pkg.Validator("old-token-value");
  const rotated = new pkg.Validator(["primary-token", secret]);
  const signature = new pkg.Validator(secret).sign({ url, body });
  const verified = rotated.verify({ url, body, signature });
  assert.equal(verified.secretIndex, 1);
  assert.equal(verified.keyId, null);
  assert.equal(old.isValid({ url, body, signature }), false);
  // The port-toggled URL (Twilio strips :443/:80 or not): the candidate is reported.
  const toggled = new pkg.Validator(secret).sign({ url: "https://example.com/voice?x=1", body });
  assert.equal(new pkg.Validator(secret).verify({ url: "https://example.com:443/voice?x=1", body, signature: toggled }).candidate, "port_toggled");

  // SharedKeys: a settings header naming a key id and HMAC_SHA256.
  const keyed = new pkg.Validator({ KS1: "key-one-secret", KS2: secret });
  const settings = "key=KS2,algorithm=HMAC_SHA256";
  const sig256 = keyed.sign({ url, body, settings });
  assert.equal(sig256.length, 44);
  const v2 = keyed.verify({ url, body, signature: sig256, settings });
  assert.deepEqual([v2.secretIndex, v2.keyId, v2.algorithm], [1, "KS2", "HMAC_SHA256"]);
  assert.equal(keyed.isValid({ url, body, signature: sig256, settings: "key=KS1,algorithm=HMAC_SHA256" }), false);

  for (const shown of [util.inspect(rotated), util.inspect(keyed, { showHidden: true, depth: 9 }), JSON.stringify(keyed), String(keyed)]) {
    assert.ok(!shown.includes(secret), shown);
  }
  assert.match(util.inspect(keyed), /KS1/);
  for (const bad of ["", "   ", "\t\n", ["ok-token", " "], { KS1: "" }, []]) {
    assert.throws(
      () => new pkg.Validator(bad),
      (error) => error instanceof pkg.ConfigurationError && error.code === "ERR_INVALID_SECRET" && !/ok-token/.test(error.message)
    );
  }
  assert.throws(() => new pkg.Validator(42), (error) => error.code === "ERR_INVALID_SECRET" && !error.message.includes("42"));
  assert.throws(() => new pkg.Validator(secret, { maxParams: 0 }), (error) => error.code === "ERR_INVALID_OPTION");
  // An error from a failed verify carries no secret, no expected signature.
  try {
    rotated.verify({ url, body, signature: old.sign({ url, body }) });
    assert.fail("verified");
  } catch (error) {
    const everything = util.inspect(error, { showHidden: true }) + JSON.stringify(error);
    assert.ok(!everything.includes(secret) && !everything.includes(signature));
  }
});

test("explain names the mistake: http vs https", () => {
  const v = new pkg.Validator("12345");
  const body = "a=1";
  const signature = v.sign({ url: "http://example.com/sms", body });
  const text = v.explain({ url: "https://example.com/sms", body, signature });
  assert.match(text, /^invalid: /);
  assert.match(text, /scheme/);
  assert.match(v.explain({ url: "http://example.com/sms", body, signature }), /^valid: /);
});

test("hostile input: wrong types are TypeErrors, huge and odd bodies are verdicts", () => {
  const v = new pkg.Validator("12345");
  assert.throws(() => v.verify({ url: 42, body: "" }), TypeError);
  assert.throws(() => v.verify({ url: "https://h/", body: 42, signature: "x" }), TypeError);
  assert.throws(() => v.verify({ url: "https://h/", body: {}, signature: "x" }), TypeError);
  assert.throws(() => v.verify(null), TypeError);
  const big = "&".repeat(1 << 20) + "a=" + "x".repeat(1 << 20);
  assert.equal(v.isValid({ url: "https://h/", body: big, signature: v.sign({ url: "https://h/", body: "a=" + "x".repeat(1 << 20) }) }), true);
  assert.equal(v.isValid({ url: "https://h/\u0000\ud800", body: "\ud800=\udfff", signature: "x".repeat(28) }), false);
  const many = Array.from({ length: 20000 }, (_, i) => `p${i}=${i}`).join("&");
  assert.throws(() => v.verify({ url: "https://h/", body: many, signature: v.sign({ url: "https://h/", body: "a=1" }) }), pkg.TooManyParamsError);
});

test("parsed params cross as one string: Unicode, lone and split surrogates, repeated names, numbers", () => {
  const v = new pkg.Validator("12345");
  const url = "https://example.com/sms";
  const cases = [
    { Body: "Hey 😀 ünï", From: "+1555" },
    { "n\u00e4me": ["b", "a", "b"], x: 5, y: true },
    { "a\ud83d": "\ude00b", lone: "\udfff", high: "x\ud800" },
    { "日本": "語", "\uFF21": "\u{1D4B3}" },
    {},
  ];
  for (const params of cases) {
    // sign() takes the params as separate strings (another path into the addon); isValid joins them.
    const signature = v.sign({ url, params });
    assert.equal(v.isValid({ url, params, signature }), true, JSON.stringify(params));
    assert.equal(pkg.validateRequest("12345", signature, url, params), true);
    assert.equal(v.isValid({ url, params: { ...params, extra: "1" }, signature }), false);
    assert.equal(v.isValid({ url, params: Object.entries(params), signature }), true);
  }
  // The same pairs as a form body give the same verdict.
  const body = "Body=Hey+%F0%9F%98%80+%C3%BCn%C3%AF&From=%2B1555";
  assert.equal(v.isValid({ url, params: cases[0], signature: v.sign({ url, body }) }), true);
});

test("parsed params: own names only, as twilio-node's Object.keys (inherited and polluted names ignored)", () => {
  const url = "https://example.com/sms";
  const own = { From: "+1555", Body: "hi" };
  const signature = pkg.getExpectedTwilioSignature("12345", url, own);
  const child = Object.create({ Injected: "x" });
  Object.assign(child, own);
  assert.equal(pkg.validateRequest("12345", signature, url, child), true);
  Object.prototype.Polluted = "y"; // eslint-disable-line no-extend-native
  try {
    assert.equal(pkg.validateRequest("12345", signature, url, { ...own }), true);
    assert.equal(pkg.validateRequest("12345", signature, url, { ...own, Extra: "z" }), false);
  } finally {
    delete Object.prototype.Polluted;
  }
});

test("replay keys: equal for the same signed request, different otherwise, intact when read long after", () => {
  const v = new pkg.Validator("12345");
  const url = "https://example.com/sms";
  const results = [];
  for (let i = 0; i < 1000; i++) {
    const body = `Digits=${i % 10}`;
    results.push([i % 10, v.verify({ url, body, signature: v.sign({ url, body }) })]);
  }
  // Read only now, hundreds of verifications later: each still holds its own key.
  const byDigit = new Map();
  for (const [digit, result] of results) {
    const key = result.replayKey.toString("hex");
    assert.equal(result.replayKey.length, 32);
    if (byDigit.has(digit)) assert.equal(byDigit.get(digit), key);
    else byDigit.set(digit, key);
  }
  assert.equal(new Set(byDigit.values()).size, 10);
  assert.equal(results[0][1].replayKey, results[0][1].replayKey, "the same Buffer each time");
  assert.equal(JSON.parse(JSON.stringify(results[3][1])).replayKey, byDigit.get(3));
});
