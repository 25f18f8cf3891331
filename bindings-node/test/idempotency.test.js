"use strict";
// Retries (rule R2): the delivery key and the v2 stored layout READ from tests/vectors/idempotency.json,
// MemoryStore (never evicts a live claim), RedisStore on a real redis-server this test starts on a free
// loopback port, and an Express app answering a retry once (status, Location, each Set-Cookie, body).
const test = require("node:test");
const assert = require("node:assert/strict");
const http = require("http");
const net = require("net");
const { spawn, spawnSync } = require("child_process");
const express = require("express");
const { createClient } = require("redis");
const { pkg, loadJson, requirePackage } = require("./helpers");
const { listen, request, memoryLogger } = require("./servers");
const { StoredResponse, StoreError, MemoryStore, RedisStore, Idempotency, deliveryKey } = requirePackage("lib/idempotency.js");
const { expressWebhook } = requirePackage("lib/express.js");

const vectors = loadJson("idempotency.json");
const hex = (h) => Buffer.from(h, "hex");

test("the shared vectors: delivery key, v2 encode, v1 decode, malformed refused", () => {
  assert.ok(vectors.delivery_key.length >= 2);
  for (const v of vectors.delivery_key) assert.equal(deliveryKey(hex(v.replay_key_hex), v.token), v.key);
  assert.ok(vectors.encode.length >= 3);
  for (const v of vectors.encode) {
    const response = new StoredResponse(v.status, v.headers, hex(v.body_hex));
    assert.equal(response.encode().toString("hex"), v.encoded_hex, v.name);
    const back = StoredResponse.decode(hex(v.encoded_hex));
    assert.equal(back.status, v.status);
    assert.deepEqual(back.headers, v.stored_headers, v.name);
    assert.equal(back.body.toString("hex"), v.body_hex);
  }
  for (const v of vectors.decode_v1) {
    const back = StoredResponse.decode(hex(v.encoded_hex));
    assert.deepEqual([back.status, back.headers, back.body.toString("hex")], [v.status, v.stored_headers, v.body_hex], v.name);
  }
  assert.ok(vectors.malformed.length >= 5);
  for (const v of vectors.malformed) assert.throws(() => StoredResponse.decode(hex(v.encoded_hex)), StoreError, v.name);
});

test("MemoryStore: claims, completes, never evicts a live claim, drops the oldest completed first", () => {
  const store = new MemoryStore({ maxEntries: 3 });
  const done = new StoredResponse(200, [["content-type", "text/xml"]], Buffer.from("<Response/>"));
  assert.equal(store.claim("a", "o1", 60), "ours");
  assert.equal(store.claim("a", "o2", 60), "busy");
  assert.equal(store.claim("a", "o1", 60), "ours", "a claim finding its own owner is ours");
  assert.equal(store.complete("a", "o2", done), false);
  assert.equal(store.complete("a", "o1", done), true);
  assert.deepEqual(store.claim("a", "o3", 60).body, done.body);
  assert.equal(store.claim("b", "o1", 60), "ours");
  assert.equal(store.claim("c", "o1", 60), "ours");
  // Full: the completed "a" goes, never the live claims b and c.
  assert.equal(store.claim("d", "o1", 60), "ours");
  assert.equal(store.claim("b", "o9", 60), "busy");
  assert.equal(store.claim("c", "o9", 60), "busy");
  // Only live claims left: a new claim fails (a store error), it never evicts one.
  assert.throws(() => store.claim("a", "o9", 60), (error) => error instanceof StoreError && error.message === "memory store full: 3 deliveries in flight");
  assert.equal(store.release("b", "o1"), true);
  assert.equal(store.claim("e", "o1", 60), "ours");
  assert.equal(store.size, 3);
});

/** A redis-server of our own on a free loopback port (no persistence); resolves {port, stop}. */
async function startRedis() {
  if (spawnSync("sh", ["-c", "command -v redis-server"]).status !== 0) throw new Error("redis-server is not installed (make redis-server)");
  const port = await new Promise((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.end();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (up) return { port, stop: () => child.kill() };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill();
  throw new Error("redis-server did not start");
}

const TOKEN = "retry-test-token-0123456789abcdef";
const signer = new pkg.Validator(TOKEN);

const Fastify = require("fastify");
const { Hono } = require("hono");
const { serve } = require("@hono/node-server");
const { twilioSignature } = requirePackage("lib/fastify.js");
const { verifyFetchRequest, fetchGuard } = requirePackage("lib/fetch.js");

/** The same app on Fastify (the plugin's idempotency option). */
async function fastifyRetryApp(idempotency) {
  const app = Fastify();
  let runs = 0;
  await app.register(async (scope) => {
    scope.register(twilioSignature, { authToken: TOKEN, idempotency, logger: memoryLogger() });
    scope.post("/voice", async (req, reply) => {
      runs++;
      reply.code(302).header("Location", "/next?step=2").header("Set-Cookie", ["a=1; Path=/", "b=2"]).type("text/xml");
      return `<Response><Say>${req.body.Digits}</Say></Response>`;
    });
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  return { port: app.server.address().port, runs: () => runs, close: () => app.close() };
}

/** The same app on Hono (verifyFetchRequest, then Idempotency.fetch). */
async function honoRetryApp(store) {
  const app = new Hono();
  const guard = fetchGuard({ authToken: TOKEN, logger: memoryLogger() });
  const idempotency = Idempotency.of(store, memoryLogger());
  let runs = 0;
  app.post("/voice", async (c) => {
    const result = await verifyFetchRequest(c.req.raw, { guard, incoming: c.env.incoming });
    if (!result.ok) return result.response;
    return idempotency.fetch(result.verified, c.req.header("I-Twilio-Idempotency-Token"), async () => {
      runs++;
      const headers = new Headers({ Location: "/next?step=2", "Content-Type": "text/xml" });
      headers.append("Set-Cookie", "a=1; Path=/");
      headers.append("Set-Cookie", "b=2");
      return new Response(`<Response><Say>${result.form.get("Digits")}</Say></Response>`, { status: 302, headers });
    });
  });
  const server = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
  });
  return { port: server.address().port, runs: () => runs, close: () => server.close() };
}

/** An Express app whose handler counts its runs and answers a redirect with two cookies. */
async function retryApp(idempotency) {
  const app = express();
  let runs = 0;
  app.post("/voice", expressWebhook({ authToken: TOKEN, idempotency, logger: memoryLogger() }), (req, res) => {
    runs++;
    res.status(302).set("Location", "/next?step=2").append("Set-Cookie", "a=1; Path=/").append("Set-Cookie", "b=2").type("text/xml").send(`<Response><Say>${req.body.Digits}</Say></Response>`);
  });
  const server = http.createServer(app);
  const port = await listen(server);
  return { port, runs: () => runs, close: () => server.close() };
}

async function retriedOnce(t, idempotency, makeApp = retryApp) {
  const app = await makeApp(idempotency);
  t.after(() => app.close());
  const body = "CallSid=CA1&Digits=1";
  const headers = { "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signer.sign({ url: `http://127.0.0.1:${app.port}/voice`, body }), "I-Twilio-Idempotency-Token": "RC-1" };
  const first = await request(app.port, { path: "/voice", headers, body });
  const retry = await request(app.port, { path: "/voice", headers, body });
  assert.equal(app.runs(), 1, "the retry did not run the handler");
  assert.equal(first.status, 302);
  assert.equal(first.headers["idempotent-replayed"], undefined);
  assert.equal(retry.status, 302);
  assert.equal(retry.headers["idempotent-replayed"], "true");
  assert.equal(retry.headers.location, "/next?step=2");
  assert.deepEqual(retry.headers["set-cookie"], ["a=1; Path=/", "b=2"]);
  assert.match(retry.headers["content-type"], /^text\/xml/);
  assert.equal(retry.body, first.body);
  // A new delivery (new token) runs again; a forged retry is refused before the store.
  await request(app.port, { path: "/voice", headers: { ...headers, "I-Twilio-Idempotency-Token": "RC-2" }, body });
  assert.equal(app.runs(), 2);
  assert.equal((await request(app.port, { path: "/voice", headers, body: "CallSid=CA1&Digits=2" })).status, 403);
}

test("Express with a MemoryStore: a retry is answered once, with the stored headers", async (t) => {
  await retriedOnce(t, new MemoryStore());
});

test("Fastify with a MemoryStore: a retry is answered once, with the stored headers", async (t) => {
  await retriedOnce(t, new MemoryStore(), fastifyRetryApp);
});

test("Hono (verifyFetchRequest + Idempotency.fetch) with a MemoryStore: a retry is answered once", async (t) => {
  await retriedOnce(t, new MemoryStore(), honoRetryApp);
});

test("RedisStore on a real redis-server: the layout in Redis, own-owner claims, and an Express retry answered once", async (t) => {
  const redis = await startRedis();
  // One after-hook, in order: the clients disconnect (at once, nothing pending), then the server stops.
  const clients = [];
  t.after(async () => {
    for (const c of clients) await Promise.resolve(c.disconnect()).catch(() => {});
    redis.stop();
  });
  const client = createClient({ socket: { host: "127.0.0.1", port: redis.port, connectTimeout: 1000 } });
  await client.connect();
  clients.push(client);
  const store = new RedisStore(client);
  assert.equal(await store.claim("k1", "owner-1", 60), "ours");
  assert.equal(await store.claim("k1", "owner-2", 60), "busy");
  assert.equal(await store.claim("k1", "owner-1", 60), "ours", "a claim finding its own owner is ours");
  const raw = await client.withTypeMapping({ 36: Buffer }).get("twilio-signature:idempotency:k1");
  assert.equal(raw.toString("latin1"), "Powner-1");
  const v = vectors.encode[1];
  const response = new StoredResponse(v.status, v.headers, hex(v.body_hex));
  assert.equal(await store.complete("k1", "owner-2", response), false);
  assert.equal(await store.complete("k1", "owner-1", response), true);
  const stored = await client.withTypeMapping({ 36: Buffer }).get("twilio-signature:idempotency:k1");
  assert.equal(stored.toString("hex"), Buffer.from("D").toString("hex") + v.encoded_hex, "b'D' + the shared layout");
  assert.ok((await client.pTTL("twilio-signature:idempotency:k1")) > 23 * 3600 * 1000);
  const found = await store.claim("k1", "owner-3", 60);
  assert.deepEqual(found.headers, v.stored_headers);
  assert.equal(await store.claim("k2", "o", 60), "ours");
  assert.equal(await store.release("k2", "not-o"), false);
  assert.equal(await store.release("k2", "o"), true);
  // A v1 value another (older) face wrote is read.
  await client.set("twilio-signature:idempotency:k3", Buffer.concat([Buffer.from("D"), hex(vectors.decode_v1[0].encoded_hex)]));
  assert.deepEqual((await store.claim("k3", "o", 60)).headers, vectors.decode_v1[0].stored_headers);

  await retriedOnce(t, new RedisStore(client));

  // ioredis: the same store over evalBuffer, reading what node-redis wrote.
  const IORedis = require("ioredis");
  const io = new IORedis({ host: "127.0.0.1", port: redis.port, connectTimeout: 1000, maxRetriesPerRequest: 1, lazyConnect: true });
  await io.connect();
  clients.push(io);
  const ioStore = new RedisStore(io);
  assert.deepEqual((await ioStore.claim("k1", "owner-9", 60)).headers, v.stored_headers);
  assert.equal(await ioStore.claim("k4", "io-owner", 60), "ours");
  assert.equal(await ioStore.claim("k4", "io-owner", 60), "ours");
  assert.equal(await store.claim("k4", "other", 60), "busy");
  assert.equal(await ioStore.complete("k4", "io-owner", response), true);
  assert.deepEqual((await store.claim("k4", "other", 60)).body, response.body);
  await retriedOnce(t, new RedisStore(io));

  // node-redis 4 (commandOptions({returnBuffers: true})).
  const v4 = require("redis4").createClient({ socket: { host: "127.0.0.1", port: redis.port, connectTimeout: 1000 } });
  await v4.connect();
  clients.push(v4);
  const v4Store = new RedisStore(v4);
  assert.deepEqual((await v4Store.claim("k4", "v4-owner", 60)).body, response.body);
  assert.equal(await v4Store.claim("k5", "v4-owner", 60), "ours");
  assert.equal(await v4Store.claim("k5", "v4-owner", 60), "ours");
  assert.equal(await v4Store.complete("k5", "v4-owner", response), true);
  assert.deepEqual((await store.claim("k5", "x", 60)).headers, v.stored_headers);
});

test("a store that fails: processed unguarded by default, 503 with onStoreError refuse", async (t) => {
  const failing = { claim: () => Promise.reject(new Error("down")), complete: async () => true, release: async () => true };
  const logger = memoryLogger();
  const refuse = new Idempotency(failing, { onStoreError: "refuse", logger });
  const ticket = await refuse.begin(Buffer.alloc(32), "RC-1");
  assert.equal(ticket.answer.status, 503);
  assert.match(logger.lines.find(([level]) => level === "error")[1], /^twilio webhook retry store failed \(claim\): Error: down; answered 503$/);
  const processTicket = await new Idempotency(failing, { logger }).begin(Buffer.alloc(32), "RC-1");
  assert.deepEqual(processTicket, {});
  // A full MemoryStore is a store failure too.
  const full = new MemoryStore({ maxEntries: 1 });
  full.claim("x", "o", 60);
  assert.equal((await new Idempotency(full, { onStoreError: "refuse", logger }).begin(Buffer.alloc(32), "RC-9")).answer.status, 503);
});

test("Express: a client gone before the response releases the claim (the retry runs, no 409 wait)", async (t) => {
  const store = new MemoryStore();
  const app = express();
  let runs = 0;
  let release;
  const gate = new Promise((resolve) => (release = resolve));
  app.post("/voice", expressWebhook({ authToken: TOKEN, idempotency: new Idempotency(store, { wait: 5, logger: memoryLogger() }), logger: memoryLogger() }), async (req, res) => {
    runs++;
    if (runs === 1) {
      await gate; // the first delivery's client hangs up while this runs
      res.destroy();
      return;
    }
    res.type("text/xml").send("<Response/>");
  });
  const server = http.createServer(app);
  const port = await listen(server);
  t.after(() => server.close());
  const body = "CallSid=CA7&Digits=7";
  const headers = { "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signer.sign({ url: `http://127.0.0.1:${port}/voice`, body }), "I-Twilio-Idempotency-Token": "RC-gone" };
  const first = request(port, { path: "/voice", headers, body }).catch((error) => error);
  while (runs === 0) await new Promise((r) => setTimeout(r, 10));
  release();
  assert.ok((await first) instanceof Error, "the first client saw its connection dropped");
  await new Promise((r) => setTimeout(r, 20));
  const started = Date.now();
  const retry = await request(port, { path: "/voice", headers, body });
  assert.equal(retry.status, 200);
  assert.equal(runs, 2);
  assert.ok(Date.now() - started < 2000, "the retry did not wait for a claim left behind");
  assert.equal(store.size, 1, "the retry's response is stored");
});
