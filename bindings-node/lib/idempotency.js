"use strict";
// Twilio retries answered once (rule R2; the same key and stored layout as the Python, Go and Rust
// faces, so a mixed fleet shares one Redis). Twilio sends the same I-Twilio-Idempotency-Token on every
// retry of one delivery: the first delivery runs the handler and its response (status, end-to-end
// headers, body) is stored; a retry gets that response with Idempotent-Replayed: true; a retry while the
// first run is still going waits up to `wait` seconds, then 409. Failures (an exception, a 5xx) are not
// stored. When the store fails the request is processed unguarded and an error logged
// (onStoreError: "process"), or answered 503 ("refuse"): Twilio retries only a failed connection once by
// default (the #rc/#rp URL fragment overrides change it), so a 503 may be a lost webhook.
//
// This is retry handling, not replay protection: the token header is not signed.
const crypto = require("crypto");

const TOKEN_HEADER = "I-Twilio-Idempotency-Token";
const REPLAYED_HEADER = "Idempotent-Replayed";
const DEFAULT_TTL = 24 * 3600;
const DEFAULT_LEASE = 60;
const DEFAULT_WAIT = 5;
const DEFAULT_MAX_BODY = 64 * 1024;
const KEY_DOMAIN = Buffer.from("twilio-signature/idempotency/v1\0", "latin1");
const PREFIX = "twilio-signature:idempotency:";
// Never stored or replayed: hop-by-hop headers, Date, Content-Length and our own marker.
const NOT_STORED = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "date",
  "content-length",
  "idempotent-replayed",
]);

/** The store failed (unreachable, full, or holding data it did not write). */
class StoreError extends Error {
  constructor(message) {
    super(message);
    this.name = "StoreError";
  }
}

/** The store key of one delivery: hex SHA-256 over a domain tag, the 32-byte replay key and the token. */
function deliveryKey(replayKey, token) {
  if (!(replayKey instanceof Uint8Array) || replayKey.length !== 32) throw new TypeError("replayKey must be the 32 bytes of verify().replayKey");
  const tokenBytes = typeof token === "string" ? Buffer.from(token, "utf8") : Buffer.from(token);
  return crypto.createHash("sha256").update(KEY_DOMAIN).update(replayKey).update(tokenBytes).digest("hex");
}

/** A response to send as it is: a stored one replayed, or the driver's own 409/503 (replayed false). */
class StoredResponse {
  /** headers: [[name, value], ...] (names lower-cased when stored; values latin-1 strings). */
  constructor(status, headers, body, replayed = true) {
    this.status = status;
    this.headers = headers;
    this.body = Buffer.isBuffer(body) ? body : Buffer.from(body);
    this.replayed = replayed;
  }

  /** The v2 layout: 0xFF 0x02, status u16, line count u16, per line name len/name/value len/value, body. */
  encode() {
    const lines = this.headers.map(([name, value], index) => [Buffer.from(String(name).toLowerCase(), "latin1"), Buffer.from(String(value), "latin1"), index]);
    // Sorted by name bytes; the values of one name keep the order sent (the index breaks ties).
    lines.sort((a, b) => Buffer.compare(a[0], b[0]) || a[2] - b[2]);
    if (lines.length > 0xffff) throw new RangeError("too many header lines to store");
    const parts = [Buffer.from([0xff, 0x02, this.status >> 8, this.status & 0xff, lines.length >> 8, lines.length & 0xff])];
    for (const [name, value] of lines) {
      if (name.length > 0xffff || value.length > 0xffff) throw new RangeError("a header line is too long to store");
      parts.push(Buffer.from([name.length >> 8, name.length & 0xff]), name, Buffer.from([value.length >> 8, value.length & 0xff]), value);
    }
    parts.push(this.body);
    return Buffer.concat(parts);
  }

  /** The inverse of encode(), and the v1 layout (read, never written); a StoreError for anything else. */
  static decode(data) {
    const fail = (why) => {
      throw new StoreError(`stored response is ${why}`);
    };
    if (data.length < 4) fail("truncated");
    if (data[0] === 0xff) {
      if (data[1] !== 0x02) fail(`of an unknown version (0xff 0x${data[1].toString(16).padStart(2, "0")})`);
      if (data.length < 6) fail("truncated");
      const status = data.readUInt16BE(2);
      if (status < 100 || status > 999) fail("malformed (status)");
      let count = data.readUInt16BE(4);
      let at = 6;
      const headers = [];
      const take = () => {
        if (at + 2 > data.length) fail("truncated (a header line runs past the end)");
        const length = data.readUInt16BE(at);
        if (at + 2 + length > data.length) fail("truncated (a header line runs past the end)");
        const text = data.toString("latin1", at + 2, at + 2 + length);
        at += 2 + length;
        return text;
      };
      while (count-- > 0) headers.push([take(), take()]);
      return new StoredResponse(status, headers, data.subarray(at));
    }
    const status = data.readUInt16BE(0);
    const length = data.readUInt16BE(2);
    if (status < 100 || status > 999) fail("malformed (status)");
    if (data.length < 4 + length) fail("truncated");
    const type = data.toString("latin1", 4, 4 + length);
    return new StoredResponse(status, type ? [["content-type", type]] : [], data.subarray(4 + length));
  }
}

const now = () => performance.now() / 1000;

/**
 * An in-process store: one process. Bounded (maxEntries); when full, expired entries go first, then the
 * oldest completed responses; a live claim is never evicted: with only live claims left, a claim fails
 * with a StoreError and the store-failure policy applies.
 */
class MemoryStore {
  constructor({ ttl = DEFAULT_TTL, maxEntries = 10000 } = {}) {
    if (!(ttl > 0) || !(maxEntries > 0)) throw new RangeError("ttl and maxEntries must be positive");
    this.ttl = ttl;
    this.maxEntries = maxEntries;
    this.entries = new Map(); // key -> {expires, owner (claim) or null, response or null}
  }

  get size() {
    this.#expire(now());
    return this.entries.size;
  }

  claim(key, owner, lease) {
    const t = now();
    const entry = this.entries.get(key);
    if (entry && entry.expires > t) {
      if (entry.response) return entry.response;
      return entry.owner === owner ? "ours" : "busy";
    }
    this.entries.delete(key);
    this.#makeRoom(t);
    this.entries.set(key, { expires: t + lease, owner, response: null });
    return "ours";
  }

  complete(key, owner, response) {
    const t = now();
    if (!this.#heldBy(key, owner, t)) return false;
    // Re-inserted at the end: eviction of completed responses goes by age of the last write.
    this.entries.delete(key);
    this.entries.set(key, { expires: t + this.ttl, owner: null, response: StoredResponse.decode(response.encode()) });
    return true;
  }

  release(key, owner) {
    if (!this.#heldBy(key, owner, now())) return false;
    this.entries.delete(key);
    return true;
  }

  #heldBy(key, owner, t) {
    const entry = this.entries.get(key);
    return Boolean(entry && entry.expires > t && entry.owner === owner && !entry.response);
  }

  #expire(t) {
    for (const [key, entry] of this.entries) if (entry.expires <= t) this.entries.delete(key);
  }

  #makeRoom(t) {
    if (this.entries.size < this.maxEntries) return;
    this.#expire(t);
    for (const [key, entry] of this.entries) {
      if (this.entries.size < this.maxEntries) return;
      if (entry.response) this.entries.delete(key);
    }
    if (this.entries.size >= this.maxEntries) {
      throw new StoreError(`memory store full: ${this.entries.size} deliveries in flight`);
    }
  }
}

// One round trip each, atomic on the server. A claim is "P" + owner, a stored response "D" + encode();
// a claim that finds its own owner (a client retry of a claim that succeeded) is ours.
const CLAIM = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local found = redis.call('GET', KEYS[1])
if found == ARGV[1] then return false end
return found
`;
const COMPLETE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`;
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`;
// node-redis's RESP_TYPES.BLOB_STRING ('$'): replies mapped to Buffers, so stored bodies stay bytes.
const RESP_BLOB_STRING = 36;

/**
 * A store in Redis shared by every instance (and every face: Python, Go, Rust). client: a connected
 * node-redis client (`createClient()` from the redis package: 4.x through commandOptions, 5.x and later
 * through withTypeMapping) or an ioredis client (evalBuffer). Give it short timeouts (socket.connectTimeout, a small reconnect strategy): while Redis is
 * down every webhook waits for them before it is processed unguarded (or refused).
 */
class RedisStore {
  constructor(client, { ttl = DEFAULT_TTL, prefix = PREFIX } = {}) {
    if (!(ttl > 0)) throw new RangeError("ttl must be positive");
    this.ttl = ttl;
    this.prefix = prefix;
    if (typeof client.evalBuffer === "function") {
      // ioredis
      this.run = (script, key, args) => client.evalBuffer(script, 1, key, ...args);
    } else if (typeof client.withTypeMapping === "function") {
      const buffers = client.withTypeMapping({ [RESP_BLOB_STRING]: Buffer });
      this.run = (script, key, args) => buffers.eval(script, { keys: [key], arguments: args });
    } else if (typeof client.commandOptions === "function") {
      const options = client.commandOptions({ returnBuffers: true });
      this.run = (script, key, args) => client.eval(options, script, { keys: [key], arguments: args });
    } else {
      throw new TypeError("RedisStore takes a node-redis (4+) or ioredis client");
    }
  }

  async claim(key, owner, lease) {
    const found = await this.#call(CLAIM, key, [Buffer.from("P" + owner, "latin1"), String(ms(lease))]);
    if (found === null || found === undefined) return "ours";
    if (!Buffer.isBuffer(found)) throw new StoreError("the Redis client decodes replies to strings");
    if (found[0] === 0x44) return StoredResponse.decode(found.subarray(1));
    return "busy";
  }

  async complete(key, owner, response) {
    const value = Buffer.concat([Buffer.from("D"), response.encode()]);
    return Number(await this.#call(COMPLETE, key, [Buffer.from("P" + owner, "latin1"), value, String(ms(this.ttl))])) === 1;
  }

  async release(key, owner) {
    return Number(await this.#call(RELEASE, key, [Buffer.from("P" + owner, "latin1")])) === 1;
  }

  async #call(script, key, args) {
    try {
      return await this.run(script, this.prefix + key, args);
    } catch (error) {
      if (error instanceof StoreError) throw error;
      throw new StoreError(`Redis: ${error && error.name}: ${error && error.message}`);
    }
  }
}

const ms = (seconds) => Math.max(1, Math.floor(seconds * 1000));

const IN_PROGRESS = new StoredResponse(409, [["content-type", "text/plain; charset=utf-8"]], Buffer.from("this delivery is still being handled; retry later\n"), false);
const UNAVAILABLE = new StoredResponse(503, [["content-type", "text/plain; charset=utf-8"]], Buffer.from("retry store unavailable; retry later\n"), false);
const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

/** Runs a verified request's handler once per delivery (see the module comment). */
class Idempotency {
  constructor(store = new MemoryStore(), { wait = DEFAULT_WAIT, lease = DEFAULT_LEASE, maxBody = DEFAULT_MAX_BODY, onStoreError = "process", poll = 0.05, logger = console } = {}) {
    if (!["process", "refuse"].includes(onStoreError)) throw new TypeError('onStoreError must be "process" or "refuse"');
    if (!(wait >= 0) || !(lease > 0) || !(maxBody >= 0) || !(poll > 0)) throw new RangeError("wait, maxBody must be >= 0 and lease, poll > 0");
    Object.assign(this, { store, wait, lease, maxBody, onStoreError, poll, logger });
    this.unguarded = 0;
  }

  /** An Idempotency itself, or a driver over a store (what the helpers' idempotency option takes). */
  static of(value, logger) {
    if (value instanceof Idempotency) return value;
    if (value && typeof value.claim === "function" && typeof value.complete === "function" && typeof value.release === "function") {
      return new Idempotency(value, { logger });
    }
    throw new TypeError("idempotency takes a MemoryStore, a RedisStore (or an object with claim, complete and release) or an Idempotency");
  }

  async #guarded(what, call) {
    try {
      return { ok: true, value: await call() };
    } catch (error) {
      const action = what !== "claim" ? "the handler's response was sent but not stored" : this.onStoreError === "refuse" ? "answered 503" : "processed unguarded";
      this.logger.error(`twilio webhook retry store failed (${what}): ${error && error.name}: ${error && error.message}; ${action}`);
      return { ok: false };
    }
  }

  /** {answer} to send as it is, {key, owner} to run and finish, or {} to run unguarded. */
  async begin(replayKey, token) {
    if (!token) {
      this.unguarded++;
      return {};
    }
    const key = deliveryKey(replayKey, token);
    const owner = crypto.randomBytes(16).toString("hex");
    const deadline = now() + this.wait;
    for (;;) {
      const { ok, value } = await this.#guarded("claim", () => this.store.claim(key, owner, this.lease));
      if (!ok) return this.onStoreError === "refuse" ? { answer: UNAVAILABLE } : {};
      if (value === "ours") return { key, owner };
      if (value instanceof StoredResponse) {
        this.logger.info?.(`twilio webhook retry answered with the stored response; key=${key}`);
        return { answer: value };
      }
      if (now() >= deadline) {
        this.logger.warn(`twilio webhook retry refused: 409 the first delivery is still being handled; key=${key}`);
        return { answer: IN_PROGRESS };
      }
      await sleep(this.poll);
    }
  }

  /** Stores the handler's response (or releases the claim when it must not be stored). */
  async finish(ticket, response) {
    if (!ticket.key) return;
    if (response === null) {
      this.logger.warn(`twilio webhook response not stored (unreadable body); a retry runs the handler again; key=${ticket.key}`);
    } else if (response.status >= 500) {
      // a failure: Twilio's retry must run the handler again
    } else if (response.body.length > this.maxBody) {
      this.logger.warn(`twilio webhook response not stored: body of ${response.body.length} bytes is over maxBody=${this.maxBody}; a retry runs the handler again; key=${ticket.key}`);
    } else {
      const { ok, value } = await this.#guarded("complete", () => this.store.complete(ticket.key, ticket.owner, response));
      if (ok && !value) this.logger.warn(`twilio webhook response not stored: the claim expired (handler slower than lease=${this.lease}s); key=${ticket.key}`);
      if (ok) return;
    }
    await this.release(ticket);
  }

  async release(ticket) {
    if (ticket.key) await this.#guarded("release", () => this.store.release(ticket.key, ticket.owner));
  }

  /**
   * Fetch API (Hono, Next.js): the stored Response for a retry, or handler()'s Response, stored for the
   * retries of this delivery. `token` is the request's I-Twilio-Idempotency-Token.
   */
  async fetch(verified, token, handler) {
    const ticket = await this.begin(verified.replayKey, token);
    if (ticket.answer) return toFetchResponse(ticket.answer);
    if (!ticket.key) return handler();
    let response;
    let captured = null;
    try {
      response = await handler();
      const entries = [...response.headers].filter(([name]) => name !== "set-cookie");
      for (const cookie of response.headers.getSetCookie()) entries.push(["set-cookie", cookie]);
      captured = new StoredResponse(response.status, storableHeaders(entries), Buffer.from(await response.clone().arrayBuffer()));
    } catch (error) {
      await this.release(ticket);
      throw error;
    }
    await this.finish(ticket, captured);
    return response;
  }

  /** Fastify: the hooks that answer retries from the store and store first deliveries' replies. */
  fastifyHooks(fastify) {
    fastify.addHook("preHandler", async (request, reply) => {
      if (!request.twilio) return undefined;
      const ticket = await this.begin(request.twilio.replayKey, request.headers[TOKEN_HEADER.toLowerCase()]);
      if (ticket.answer) {
        const grouped = new Map();
        for (const [name, value] of ticket.answer.headers) grouped.set(name, [...(grouped.get(name) || []), value]);
        for (const [name, values] of grouped) reply.header(name, values.length === 1 ? values[0] : values);
        if (ticket.answer.replayed) reply.header(REPLAYED_HEADER, "true");
        return reply.code(ticket.answer.status).send(ticket.answer.body);
      }
      request.twilioTicket = ticket;
      return undefined;
    });
    fastify.addHook("onSend", async (request, reply, payload) => {
      const ticket = request.twilioTicket;
      if (ticket && ticket.key) {
        const body = typeof payload === "string" ? Buffer.from(payload) : Buffer.isBuffer(payload) ? payload : payload == null ? Buffer.alloc(0) : null;
        // A streamed payload is sent, not stored (null: the claim is released).
        request.twilioCaptured = body === null ? null : new StoredResponse(reply.statusCode, storableHeaders(reply.getHeaders()), body);
      }
      return payload;
    });
    fastify.addHook("onResponse", async (request) => {
      const ticket = request.twilioTicket;
      if (ticket && ticket.key) await this.finish(ticket, request.twilioCaptured);
    });
    fastify.addHook("onRequestAbort", async (request) => {
      const ticket = request.twilioTicket;
      if (ticket && ticket.key) await this.release(ticket);
    });
  }

  /** Express: answer a retry from the store, or run next() and store what the handler sends. */
  express(verified, req, res, next) {
    this.begin(verified.replayKey, req.headers[TOKEN_HEADER.toLowerCase()]).then(
      (ticket) => {
        if (ticket.answer) return sendStored(res, ticket.answer);
        if (ticket.key) captureResponse(res, (captured) => (captured ? this.finish(ticket, captured) : this.release(ticket)));
        next();
      },
      (error) => next(error)
    );
  }
}

/** Sends a stored (or the driver's own) response on a Node ServerResponse. */
function sendStored(res, stored) {
  res.statusCode = stored.status;
  const grouped = new Map();
  for (const [name, value] of stored.headers) grouped.set(name, [...(grouped.get(name) || []), value]);
  for (const [name, values] of grouped) res.setHeader(name, values.length === 1 ? values[0] : values);
  if (stored.replayed) res.setHeader(REPLAYED_HEADER, "true");
  res.setHeader("Content-Length", stored.body.length);
  res.end(stored.body);
}

/**
 * The header lines to store from a response's headers ({name: value | value[]}, or [name, value]
 * entries): every end-to-end header except hop-by-hop ones (and those its Connection header names),
 * Date, Content-Length and Idempotent-Replayed.
 */
function storableHeaders(entries) {
  const list = Array.isArray(entries) ? entries : Object.entries(entries);
  const connection = list.filter(([name]) => name.toLowerCase() === "connection").map(([, value]) => String(value)).join(",");
  const hop = new Set(connection.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean));
  const headers = [];
  for (const [rawName, value] of list) {
    const name = rawName.toLowerCase();
    if (NOT_STORED.has(name) || hop.has(name) || value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) headers.push([name, String(item)]);
  }
  return headers;
}

/** A StoredResponse as a Fetch-API Response (Idempotent-Replayed: true when replayed). */
function toFetchResponse(stored) {
  const headers = new Headers();
  for (const [name, value] of stored.headers) headers.append(name, value);
  if (stored.replayed) headers.set(REPLAYED_HEADER, "true");
  return new Response(stored.status === 204 || stored.status === 304 ? null : stored.body, { status: stored.status, headers });
}

/**
 * Watches a ServerResponse: done(StoredResponse) once it finished with everything written, done(null)
 * when the client went away first (the claim is released, never left busy until its lease ends).
 */
function captureResponse(res, done) {
  const chunks = [];
  const write = res.write;
  const end = res.end;
  const keep = (chunk, encoding) => {
    if (chunk === undefined || chunk === null || typeof chunk === "function") return;
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, typeof encoding === "string" ? encoding : "utf8"));
  };
  res.write = function (chunk, encoding, ...rest) {
    keep(chunk, encoding);
    return write.call(this, chunk, encoding, ...rest);
  };
  res.end = function (chunk, encoding, ...rest) {
    keep(chunk, encoding);
    return end.call(this, chunk, encoding, ...rest);
  };
  let settled = false;
  res.once("finish", () => {
    settled = true;
    done(new StoredResponse(res.statusCode, storableHeaders(res.getHeaders()), Buffer.concat(chunks)));
  });
  res.once("close", () => {
    if (!settled) done(null);
  });
}

module.exports = {
  TOKEN_HEADER,
  REPLAYED_HEADER,
  DEFAULT_TTL,
  DEFAULT_LEASE,
  DEFAULT_WAIT,
  DEFAULT_MAX_BODY,
  StoreError,
  StoredResponse,
  MemoryStore,
  RedisStore,
  Idempotency,
  deliveryKey,
  sendStored,
  captureResponse,
  storableHeaders,
  toFetchResponse,
};
