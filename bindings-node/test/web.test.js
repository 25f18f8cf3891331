"use strict";
// The web helpers through REAL servers on loopback (Express 5, Fastify 5, Hono on @hono/node-server)
// and node's own HTTP client: the shared rules R1-R4 (lib/web.js), each framework.
const test = require("node:test");
const assert = require("node:assert/strict");
const http = require("http");
const net = require("net");
const { pkg, requirePackage } = require("./helpers");
const { listen, request, memoryLogger, multipart } = require("./servers");

const express = require("express");
const Fastify = require("fastify");
const { Hono } = require("hono");
const { serve } = require("@hono/node-server");
const { expressWebhook } = requirePackage("lib/express.js");
const { twilioSignature } = requirePackage("lib/fastify.js");
const { verifyFetchRequest, fetchGuard } = requirePackage("lib/fetch.js");

const TOKEN = "web-test-token-0123456789abcdef";
const signer = new pkg.Validator(TOKEN);
const PAIRS = [
  ["From", "+14155550100"],
  ["Body", "Hi there, ünïcode 😀"],
  ["To", "+14155550199"],
];
const FORM = new URLSearchParams(PAIRS).toString();

// Each framework: start(options) -> {port, close}; routes POST /sms (form or JSON) answering
// {from, candidate, json} and GET /voice answering {candidate}.
const frameworks = {
  "express (raw body)": async (options) => {
    const app = express();
    app.post("/sms", expressWebhook(options), (req, res) => res.json({ from: req.body.From, candidate: req.twilio.candidate, json: req.body.a }));
    app.get("/voice", expressWebhook(options), (req, res) => res.json({ candidate: req.twilio.candidate }));
    const server = http.createServer(app);
    return { port: await listen(server), close: () => server.close(), holdsBody: true };
  },
  "express (urlencoded first)": async (options) => {
    const app = express();
    app.set("env", "test"); // body-parser's own 413 is not printed to stderr
    app.use(express.urlencoded({ extended: false }));
    app.post("/sms", expressWebhook(options), (req, res) => res.json({ from: req.body.From, candidate: req.twilio.candidate, json: req.body.a }));
    app.get("/voice", expressWebhook(options), (req, res) => res.json({ candidate: req.twilio.candidate }));
    const server = http.createServer(app);
    // express.urlencoded reads the body before the middleware runs: no 400-before-the-body here.
    return { port: await listen(server), close: () => server.close(), holdsBody: false };
  },
  fastify: async (options) => {
    const app = Fastify();
    await app.register(async (scope) => {
      scope.register(twilioSignature, options);
      scope.post("/sms", async (req) => ({ from: req.body.From, candidate: req.twilio.candidate, json: req.body.a }));
      scope.get("/voice", async (req) => ({ candidate: req.twilio.candidate }));
    });
    await app.listen({ port: 0, host: "127.0.0.1" });
    return { port: app.server.address().port, close: () => app.close(), holdsBody: true };
  },
  "hono (verifyFetchRequest)": async (options) => {
    const app = new Hono();
    const guard = fetchGuard(options);
    const handle = async (c) => {
      const result = await verifyFetchRequest(c.req.raw, { guard, incoming: c.env.incoming });
      if (!result.ok) return result.response;
      const json = result.form ? {} : JSON.parse(Buffer.from(result.body).toString("utf8") || "{}");
      return c.json({ from: result.form && result.form.get("From"), candidate: result.verified.candidate, json: json.a });
    };
    app.post("/sms", handle);
    app.get("/voice", handle);
    const server = await new Promise((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    });
    return { port: server.address().port, close: () => server.close(), holdsBody: true };
  },
};

/** The status line's code of a hand-written request (node's client would not send two Host lines). */
function rawStatus(port, text) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(text)); // Connection: close ends it
    let reply = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk) => (reply += chunk));
    socket.on("error", reject);
    socket.on("close", () => {
      const match = /^HTTP\/1\.1 (\d{3}) /.exec(reply);
      if (match) resolve(Number(match[1]));
      else reject(new Error(`no HTTP status in ${JSON.stringify(reply.slice(0, 80))}`));
    });
  });
}

const url = (port, path = "/sms") => `http://127.0.0.1:${port}${path}`;
const formHeaders = (signature) => ({ "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature });

for (const [name, start] of Object.entries(frameworks)) {
  test(`${name}: the shared rules through a real server`, async (t) => {
    const logger = memoryLogger();
    const server = await start({ authToken: TOKEN, logger });
    t.after(() => server.close());
    const { port } = server;
    const signature = signer.sign({ url: url(port), body: FORM });

    await t.test("signed form -> 200, the app gets the verified form", async () => {
      const res = await request(port, { headers: formHeaders(signature), body: FORM });
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(JSON.parse(res.body).from, "+14155550100");
      assert.equal(JSON.parse(res.body).candidate, "as_given");
    });

    await t.test("signed GET (no body) -> 200", async () => {
      const res = await request(port, { method: "GET", path: "/voice?CallSid=CA1", headers: { "X-Twilio-Signature": signer.sign({ url: url(port, "/voice?CallSid=CA1"), body: "" }) } });
      assert.equal(res.status, 200, res.body);
    });

    await t.test("signed JSON under bodySHA256 -> 200; its body altered -> 403", async () => {
      const json = '{"a":"b"}';
      const path = `/sms?bodySHA256=${pkg.bodySha256(json)}`;
      const sig = signer.sign({ url: url(port, path), body: json });
      const res = await request(port, { path, headers: { "Content-Type": "application/json", "X-Twilio-Signature": sig }, body: json });
      assert.equal(res.status, 200, res.body);
      assert.equal(JSON.parse(res.body).json, "b");
      const forged = await request(port, { path, headers: { "Content-Type": "application/json", "X-Twilio-Signature": sig }, body: '{"a":"c"}' });
      assert.equal(forged.status, 403);
    });

    await t.test("forged form -> 403, logged with url and diagnosis", async () => {
      logger.lines.length = 0;
      const forged = FORM.replace("14155550100", "14155550666");
      const res = await request(port, { headers: formHeaders(signature), body: forged });
      assert.equal(res.status, 403);
      const line = logger.lines.find(([level]) => level === "warn");
      assert.ok(line, "a refusal line");
      assert.match(line[1], new RegExp(`^twilio webhook refused: 403 the signature does not match the request; url=http://127\\.0\\.0\\.1:${port}/sms; `));
      assert.ok(!line[1].includes(TOKEN) && !line[1].includes(signature));
    });

    await t.test("no X-Twilio-Signature -> 400" + (server.holdsBody ? " before the body is read" : ""), async () => {
      const res = server.holdsBody
        ? await request(port, { headers: { "Content-Type": "application/x-www-form-urlencoded", "Content-Length": "100" }, holdBody: true })
        : await request(port, { headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: FORM });
      assert.equal(res.status, 400);
      assert.match(res.body, /X-Twilio-Signature/);
    });

    await t.test("2 MiB body -> 413 (declared and chunked)", async () => {
      const big = "Body=" + "x".repeat(2 << 20);
      const sig = signer.sign({ url: url(port), body: "a=1" });
      const declared = await request(port, { headers: formHeaders(sig), body: big });
      assert.equal(declared.status, 413);
      const chunked = await request(port, { headers: formHeaders(sig), body: big, chunked: true });
      assert.equal(chunked.status, 413);
    });

    await t.test("the signed form re-encoded as multipart -> 415", async () => {
      logger.lines.length = 0;
      const { body, type } = multipart([...PAIRS.slice(1), ["From", "+14155550666"]]);
      const res = await request(port, { headers: { "Content-Type": type, "X-Twilio-Signature": signature }, body });
      assert.equal(res.status, 415);
      const line = logger.lines.find(([level]) => level === "warn");
      assert.match(line[1], /^twilio webhook refused: 415 unsupported content type "multipart\/form-data" for a form body; url=.*; Twilio sends form webhooks as application\/x-www-form-urlencoded; a body verified as a form must carry that type$/);
    });

    await t.test("a form body without Content-Type -> 415", async () => {
      const res = await request(port, { headers: { "X-Twilio-Signature": signature }, body: FORM });
      assert.equal(res.status, 415);
    });

    await t.test("a Host that is no host -> 400", async () => {
      const res = await request(port, { headers: { ...formHeaders(signature), Host: "evil.example/x?" }, body: FORM });
      assert.equal(res.status, 400);
    });

    await t.test("a second Host line -> 400 (the app never runs); one Host holding two hosts -> 400", async () => {
      // Node keeps only the first Host in req.headers, and the form is validly signed for it: without
      // the line count this request would pass while a proxy or the app could read the second Host.
      const host = `127.0.0.1:${port}`;
      const head = (hosts) =>
        `POST /sms HTTP/1.1\r\n${hosts.map((h) => `Host: ${h}\r\n`).join("")}Content-Type: application/x-www-form-urlencoded\r\n` +
        `X-Twilio-Signature: ${signature}\r\nContent-Length: ${Buffer.byteLength(FORM)}\r\nConnection: close\r\n\r\n${FORM}`;
      logger.lines.length = 0;
      assert.equal(await rawStatus(port, head([host, "evil.example"])), 400);
      const line = logger.lines.find(([level]) => level === "warn");
      assert.ok(line, "a refusal line");
      assert.match(line[1], /^twilio webhook refused: 400 the request has more than one Host header; /);
      assert.equal(await rawStatus(port, head([`${host},evil.example`])), 400);
      assert.equal(await rawStatus(port, head([host])), 200, "the same request with one Host");
    });

    await t.test("forwarded headers from an untrusted peer are ignored, and the line says so", async () => {
      logger.lines.length = 0;
      const publicUrl = "https://public.example/sms";
      const sig = signer.sign({ url: publicUrl, body: FORM });
      const res = await request(port, { headers: { ...formHeaders(sig), "X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example" }, body: FORM });
      assert.equal(res.status, 403);
      const line = logger.lines.find(([level]) => level === "warn")[1];
      assert.match(line, /; X-Forwarded-Proto, X-Forwarded-Host ignored: no trustedProxies configured$/);
    });
  });

  test(`${name}: trusted and untrusted proxies`, async (t) => {
    const publicUrl = "https://public.example/sms";
    const sig = signer.sign({ url: publicUrl, body: FORM });
    const headers = { ...formHeaders(sig), "X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example" };

    const trusted = await start({ authToken: TOKEN, trustedProxies: ["127.0.0.0/8"], logger: memoryLogger() });
    t.after(() => trusted.close());
    const ok = await request(trusted.port, { headers, body: FORM });
    assert.equal(ok.status, 200, ok.body);

    const logger = memoryLogger();
    const untrusted = await start({ authToken: TOKEN, trustedProxies: ["10.0.0.0/8"], logger });
    t.after(() => untrusted.close());
    const refused = await request(untrusted.port, { headers, body: FORM });
    assert.equal(refused.status, 403);
    assert.match(logger.lines.find(([level]) => level === "warn")[1], /; X-Forwarded-Proto, X-Forwarded-Host ignored: from 127\.0\.0\.1, not in trustedProxies$/);

    // baseUrl: the public origin; forwarded headers play no part.
    const based = await start({ authToken: TOKEN, baseUrl: "https://public.example", logger: memoryLogger() });
    t.after(() => based.close());
    assert.equal((await request(based.port, { headers: formHeaders(sig), body: FORM })).status, 200);
  });

  test(`${name}: an unusable token is 500, logged, never a pass; baseUrl repeating the route warns once`, async (t) => {
    const logger = memoryLogger();
    const broken = await start({ authToken: "   ", logger });
    t.after(() => broken.close());
    const res = await request(broken.port, { headers: formHeaders("x".repeat(28)), body: FORM });
    assert.equal(res.status, 500);
    assert.match(logger.lines.find(([level]) => level === "error")[1], /^twilio webhook refused: 500 TWILIO_AUTH_TOKEN is not usable/);

    const warnings = memoryLogger();
    const doubled = await start({ authToken: TOKEN, baseUrl: "https://h.example/sms", logger: warnings });
    t.after(() => doubled.close());
    const sig = signer.sign({ url: "https://h.example/sms/sms", body: FORM });
    assert.equal((await request(doubled.port, { headers: formHeaders(sig), body: FORM })).status, 200);
    await request(doubled.port, { headers: formHeaders(sig), body: FORM });
    const warned = warnings.lines.filter(([, line]) => line.startsWith("baseUrl "));
    assert.equal(warned.length, 1);
    assert.equal(
      warned[0][1],
      'baseUrl "https://h.example/sms" ends with "/sms", which the request path "/sms" starts with: the URL verified is "https://h.example/sms/sms". Give baseUrl as the public origin plus only the mount prefix the app does not see (usually just the origin).'
    );
  });
}

test("express: a form parsed by express.urlencoded is verified from its pairs (repeated names too)", async (t) => {
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.post("/sms", expressWebhook({ authToken: TOKEN, logger: memoryLogger() }), (req, res) => res.json({ media: req.body.MediaUrl, raw: req.rawBody === undefined }));
  const server = http.createServer(app);
  const port = await listen(server);
  t.after(() => server.close());
  const body = "MediaUrl=https%3A%2F%2Fa&MediaUrl=https%3A%2F%2Fb&From=%2B1555";
  const res = await request(port, { headers: formHeaders(signer.sign({ url: url(port), body })), body });
  assert.equal(res.status, 200, res.body);
  assert.deepEqual(JSON.parse(res.body).media, ["https://a", "https://b"]);
  const forged = await request(port, { headers: formHeaders(signer.sign({ url: url(port), body })), body: body.replace("1555", "1666") });
  assert.equal(forged.status, 403);
});

test("express: a body parsed as JSON before the middleware is a 500, never a pass", async (t) => {
  const logger = memoryLogger();
  const app = express();
  app.use(express.json());
  app.post("/sms", expressWebhook({ authToken: TOKEN, logger }), (req, res) => res.send("reached"));
  const server = http.createServer(app);
  const port = await listen(server);
  t.after(() => server.close());
  const json = '{"a":1}';
  const path = `/sms?bodySHA256=${pkg.bodySha256(json)}`;
  const res = await request(port, { path, headers: { "Content-Type": "application/json", "X-Twilio-Signature": signer.sign({ url: url(port, path), body: json }) }, body: json });
  assert.equal(res.status, 500);
  assert.notEqual(res.body, "reached");
});

test("helpers never show the token: util.inspect and JSON of a guard", () => {
  const util = require("util");
  const guard = fetchGuard({ authToken: TOKEN, baseUrl: "https://example.com" });
  guard.validator("https://example.com/sms");
  for (const shown of [util.inspect(guard, { showHidden: true, depth: 9 }), JSON.stringify(guard)]) {
    assert.ok(!shown.includes(TOKEN), shown);
    assert.match(shown, /redacted/);
  }
});

test("the drop-in webhook() through a real Express server answers as twilio-node's", async (t) => {
  const app = express();
  app.use(express.urlencoded({ extended: false }));
  app.post("/sms", pkg.webhook(TOKEN), (req, res) => res.send("ok"));
  app.post("/https", pkg.webhook({ protocol: "https", host: "public.example" }, TOKEN), (req, res) => res.send("ok"));
  app.post("/empty", pkg.webhook("   "), (req, res) => res.send("reached"));
  app.post("/off", pkg.webhook({ validate: false }), (req, res) => res.send("ok"));
  const server = http.createServer(app);
  const port = await listen(server);
  t.after(() => server.close());
  const sig = signer.sign({ url: url(port), body: FORM });
  assert.equal((await request(port, { headers: formHeaders(sig), body: FORM })).status, 200);
  const forged = await request(port, { headers: formHeaders(sig), body: FORM.replace("14155550100", "14155550666") });
  assert.deepEqual([forged.status, forged.body], [403, "Twilio Request Validation Failed."]);
  const none = await request(port, { headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: FORM });
  assert.equal(none.status, 400);
  assert.match(none.body, /^No signature header error/);
  const httpsSig = signer.sign({ url: "https://public.example/https", body: FORM });
  assert.equal((await request(port, { path: "/https", headers: formHeaders(httpsSig), body: FORM })).status, 200);
  const origError = console.error;
  console.error = () => {};
  t.after(() => (console.error = origError));
  const empty = await request(port, { path: "/empty", headers: formHeaders(sig), body: FORM });
  assert.equal(empty.status, 500);
  assert.notEqual(empty.body, "reached");
  assert.equal((await request(port, { path: "/off", body: FORM })).status, 200);
});

test("express: a body consumed by another middleware without a copy is a 500, never verified as empty", async (t) => {
  const logger = memoryLogger();
  const app = express();
  app.use((req, res, next) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      req.stash = Buffer.concat(chunks);
      next();
    });
  });
  app.post("/sms", expressWebhook({ authToken: TOKEN, logger }), (req, res) => res.send("reached"));
  const server = http.createServer(app);
  const port = await listen(server);
  t.after(() => server.close());
  // Signed over the URL alone (as a request without a body would be): must not pass with a body.
  const res = await request(port, { headers: formHeaders(signer.sign({ url: url(port), body: "" })), body: FORM });
  assert.equal(res.status, 500);
  assert.notEqual(res.body, "reached");
});
