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
const crypto = require("crypto");
const { spawnSync } = require("child_process");
const twilio = require("twilio");

const CASES = Number(process.argv[2] || 5000);
let seed = BigInt(process.argv[3] || 20240611);

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
  if (ours.ok && !node && ours.candidate.startsWith("without-userinfo")) return "credentials-dropped";
  if (node && !ours.ok) {
    const norm = nodeNormalised(c.url);
    const rawMatches = twilio.getExpectedTwilioSignature(c.token, c.url, c.json ? {} : c.obj) === c.signature;
    if (norm !== null && norm !== c.url && !rawMatches) return "node-url-normalisation";
  }
  return null;
}

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
