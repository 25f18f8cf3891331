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
let seed = BigInt(process.env.ORACLE_SEED || 20261206);

function rand() {
  // xorshift64*, deterministic for a given seed.
  seed ^= seed >> 12n; seed ^= (seed << 25n) & 0xffffffffffffffffn; seed ^= seed >> 27n;
  return Number(((seed * 0x2545f4914f6cdd1dn) & 0xffffffffffffffffn) >> 11n) / 2 ** 53;
}
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const chance = (p) => rand() < p;

const CHARS = ["a", "b", "Z", "0", "9", "-", "_", ".", "~", " ", "'", "+", "é", "ü", "日", "\uFF21", "\u{1D4B3}", "😀", "%", "&", "=", "/"];
const PATH_CHARS = ["a", "b", "Z", "0", "-", "_", ".", "~", "'", "é", "%20", "%7e", "%C3%A9", "|", "!", "😀"];
const word = (pool, max) => Array.from({ length: 1 + Math.floor(rand() * max) }, () => pick(pool)).join("");

function makeUrl() {
  const scheme = pick(["https", "http", "https", "HTTPS"]);
  const userinfo = chance(0.1) ? pick(["user:pass@", "u@", "a:b@"]) : "";
  const host = pick(["example.com", "Example.COM", "h-1.example.org", "[::1]", "127.0.0.1"]);
  const port = chance(0.4) ? ":" + pick(["443", "80", "8080", "3000"]) : "";
  let url = `${scheme}://${userinfo}${host}${port}/${word(PATH_CHARS, 6)}`;
  if (chance(0.5)) url += "?" + ["q=" + word(PATH_CHARS, 4), "x=" + word(["1", "'", "é", "%27", "a+b"], 3)].slice(0, 1 + Math.floor(rand() * 2)).join("&");
  return url;
}

// Params as a server's body parser gives them to twilio-node: repeated names become arrays.
function makeParams() {
  const pairs = [];
  const n = Math.floor(rand() * 5);
  for (let i = 0; i < n; i++) {
    const name = chance(0.7) ? pick(["Body", "From", "To", "CallSid", "Digits"]) : word(CHARS.filter((c) => !"%&=+".includes(c)), 3);
    pairs.push([name, word(CHARS, 8)]);
    if (chance(0.1)) pairs.push([name, word(CHARS, 4)]);
  }
  return pairs;
}
function paramsObject(pairs) {
  const obj = {};
  for (const [k, v] of pairs) {
    if (!(k in obj)) obj[k] = v;
    else obj[k] = [].concat(obj[k], v);
  }
  return obj;
}
const formBody = (pairs) => pairs.map(([k, v]) => encodeURIComponent(k) + "=" + encodeURIComponent(v)).join("&");
const b64hmac = (token, data) => crypto.createHmac("sha1", token).update(Buffer.from(data, "utf-8")).digest("base64");
const byteCmp = (a, b) => Buffer.compare(Buffer.from(a, "utf-8"), Buffer.from(b, "utf-8"));

// The contract's canonical string: names and their distinct values in code-point (UTF-8 byte) order.
function contractString(url, pairs) {
  const map = new Map();
  for (const [k, v] of pairs) (map.get(k) || map.set(k, new Set()).get(k)).add(v);
  let s = url;
  for (const k of [...map.keys()].sort(byteCmp)) for (const v of [...map.get(k)].sort(byteCmp)) s += k + v;
  return s;
}
function utf16OrderDiffers(pairs) {
  const keys = [...new Set(pairs.map((p) => p[0]))];
  if (keys.slice().sort().join("\0") !== keys.slice().sort(byteCmp).join("\0")) return true;
  const obj = paramsObject(pairs);
  return Object.values(obj).some((v) => Array.isArray(v) && [...new Set(v)].sort().join("\0") !== [...new Set(v)].sort(byteCmp).join("\0"));
}
function withoutUserinfo(url) {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, "$1");
}
function nodeNormalised(url) {
  try { return new URL(url).toString(); } catch { return null; }
}

function makeCase() {
  const token = crypto.createHash("sha1").update(String(rand())).digest("hex").slice(0, 32);
  const json = chance(0.25);
  let url = makeUrl();
  let pairs = [];
  let body;
  if (json) {
    body = JSON.stringify({ a: word(CHARS, 6), n: Math.floor(rand() * 100) });
    const hash = chance(0.9) ? crypto.createHash("sha256").update(Buffer.from(body, "utf-8")).digest("hex") : "0".repeat(64);
    url += (url.includes("?") ? "&" : "?") + "bodySHA256=" + hash;
  } else {
    pairs = makeParams();
    body = formBody(pairs);
  }
  const obj = paramsObject(pairs);
  // What was signed: the URL as given, a variant of it, node's own string, or a tampered signature.
  const variants = [url, url, withoutUserinfo(url), nodeNormalised(url) || url, url.replace(/^https?/i, (s) => (s.toLowerCase() === "https" ? "http" : "https")), url + "/"];
  const signedUrl = pick(variants);
  let signature = chance(0.5) ? b64hmac(token, json ? signedUrl : contractString(signedUrl, pairs)) : twilio.getExpectedTwilioSignature(token, signedUrl, json ? {} : obj);
  if (chance(0.1)) signature = signature.slice(0, 5) + (signature[5] === "A" ? "B" : "A") + signature.slice(6);
  return { token, url, body, json, pairs, obj, signature };
}

function nodeVerdict(c) {
  try {
    return c.json ? twilio.validateRequestWithBody(c.token, c.signature, c.url, c.body) : twilio.validateRequest(c.token, c.signature, c.url, c.obj);
  } catch {
    return false; // new URL() throws on what it cannot parse: node refuses.
  }
}

function classify(c, ours, node) {
  if (!c.json && utf16OrderDiffers(c.pairs)) return "utf16-order";
  if (ours.ok && !node && ours.candidate.startsWith("without_userinfo")) return "credentials-dropped";
  if (node && !ours.ok) {
    const norm = nodeNormalised(c.url);
    const rawMatches = twilio.getExpectedTwilioSignature(c.token, c.url, c.json ? {} : c.obj) === c.signature;
    if (norm !== null && norm !== c.url && !rawMatches) return "node-url-normalisation";
  }
  return null;
}


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
