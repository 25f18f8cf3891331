"use strict";
// The seeded random webhooks and the classes of documented difference shared by the two twilio-node
// differentials: tests/node-diff/diff.js (twilio-node against the Rust core) and
// bindings-node/test/oracle.test.js (twilio-node against the Node package). twilio-node is passed in,
// so each caller uses its own installed copy.
const crypto = require("crypto");

module.exports = function webhookCases(twilio, initialSeed) {
  let seed = BigInt(initialSeed);

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
    if (ours.ok && !node && /^without.userinfo/.test(ours.candidate)) return "credentials-dropped";
    if (node && !ours.ok) {
      const norm = nodeNormalised(c.url);
      const rawMatches = twilio.getExpectedTwilioSignature(c.token, c.url, c.json ? {} : c.obj) === c.signature;
      if (norm !== null && norm !== c.url && !rawMatches) return "node-url-normalisation";
    }
    return null;
  }

  return { makeCase, nodeVerdict, classify };
};
