"use strict";
// verifyFetchRequest(request, options) for Fetch-API Requests: Next.js route handlers, Hono, Deno-style
// servers. Resolves {ok: true, verified, body (Uint8Array), form (URLSearchParams, for form bodies),
// url} or {ok: false, status, response} (a Response to return as it is; the refusal is logged).
//
// The URL verified: options.baseUrl + the request target; otherwise request.url. request.url is
// WHATWG-normalised (a ' in the query becomes %27...), so on Node pass options.incoming (the
// IncomingMessage: Hono's c.env.incoming on @hono/node-server) and the raw target and the peer address
// (for trustedProxies) are taken from it. options.remoteAddress gives the peer otherwise.
const { Guard, Refusal, nodeHeader, hostLines, isUpgrade, lastLine } = require("./web");

async function readLimited(request, guard, head) {
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > guard.maxBodyBytes) {
      await reader.cancel().catch(() => {});
      throw guard.tooLarge(head);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size);
}

const guards = new WeakMap();

function guardFor(options) {
  let guard = guards.get(options);
  if (!guard) {
    guard = new Guard(options);
    guards.set(options, guard);
  }
  return guard;
}

function fetchView(request, options) {
  const incoming = options.incoming;
  const header = (name) => {
    const value = request.headers.get(name);
    return value === null ? [] : [value];
  };
  const parsed = new URL(request.url);
  const upgrade = incoming ? isUpgrade(incoming) : request.method === "GET" && (request.headers.get("upgrade") || "").toLowerCase() === "websocket";
  const encrypted = incoming ? Boolean(incoming.socket && incoming.socket.encrypted) : parsed.protocol === "https:";
  return {
    target: incoming ? incoming.url : parsed.pathname + parsed.search,
    scheme: upgrade ? (encrypted ? "wss" : "ws") : encrypted ? "https" : "http",
    upgrade,
    host: incoming ? incoming.headers.host : request.headers.get("host") || parsed.host,
    // Without the IncomingMessage, repeated Host lines reach here joined by ", ": refused as not a host.
    hostLines: incoming ? hostLines(incoming) : undefined,
    remoteAddress: options.remoteAddress || (incoming && incoming.socket ? incoming.socket.remoteAddress : undefined),
    header: incoming ? nodeHeader(incoming.headers) : header,
  };
}

/**
 * Options: those of lib/web.js's Guard (authToken, baseUrl, trustedProxies, trustProxy, maxBodyBytes,
 * logger), plus incoming / remoteAddress (per request). Reuse one options object across requests (its
 * validator is cached for it): `{...shared, incoming}` per call works too, at the cost of a new cache.
 */
async function verifyFetchRequest(request, options = {}) {
  const guard = options.guard instanceof Guard ? options.guard : guardFor(options.shared || options);
  const view = fetchView(request, options);
  try {
    const head = guard.checkHead(view);
    const validator = guard.validator(head.url);
    guard.checkDeclaredLength(lastLine(view.header("Content-Length")), head);
    const body = await readLimited(request, guard, head);
    guard.checkContentType(head, body.length, view.header("Content-Type"));
    const verified = guard.verify(validator, head, body);
    const form = /[?&]bodySHA256=/.test(head.url) ? null : new URLSearchParams(Buffer.from(body).toString("utf8"));
    return { ok: true, verified, body, form, url: head.url };
  } catch (error) {
    if (!(error instanceof Refusal)) throw error;
    const response = new Response(error.reason, {
      status: error.status,
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    });
    return { ok: false, status: error.status, reason: error.reason, response };
  }
}

/** A Guard to share across verifyFetchRequest calls: verifyFetchRequest(request, {guard, incoming}). */
function fetchGuard(options) {
  return new Guard(options);
}

module.exports = { verifyFetchRequest, fetchGuard };
