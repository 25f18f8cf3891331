"use strict";
// What the Express, Fastify, Fetch and ws helpers share (docs/contract.md, web helpers; the shared rules
// R1-R5): the token, the public URL, the body limit, the order of the checks, the refusal log line and
// the HTTP status. Every helper runs the same steps, each in its framework's idiom:
//
// 1. no X-Twilio-Signature -> 400, before the body is read;
// 2. more than one Host line, or a Host (or believed X-Forwarded-Host) with / ? # @ \, a comma, whitespace
//    or a control character -> 400; a believed X-Forwarded-Proto other than http/https -> 400;
// 3. no usable token -> 500, logged (never a pass);
// 4. a declared Content-Length over maxBodyBytes -> 413 unread; a streamed body is read to at most
//    maxBodyBytes + 1 bytes -> 413 past the limit;
// 5. a non-empty body verified as a form (no bodySHA256 in the URL) whose Content-Type is not
//    application/x-www-form-urlencoded -> 415 (a multipart re-encoding would hand the app unsigned fields);
// 6. verify: 403 on a bad signature.
//
// Each refusal is one line through `logger.warn` (console by default):
// `twilio webhook refused: <status> <reason>; url=<url>; <diagnosis>[; <forwarding headers ignored>]`.
const net = require("net");
const { Validator } = require("./validator");
const { MissingSignatureError, SignatureError } = require("./errors");

const TOKEN_SETTING = "TWILIO_AUTH_TOKEN";
const DEFAULT_MAX_BODY_BYTES = 1 << 20;
const FORM_TYPE = "application/x-www-form-urlencoded";
const FORWARDING_HEADERS = ["X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "Forwarded"];
const ASCII_WS = /^[ \t\n\r\f]+|[ \t\n\r\f]+$/g;
const FORM_DIAGNOSIS =
  "Twilio sends form webhooks as application/x-www-form-urlencoded; a body verified as a form must carry that type";

/** A refused request: the helper turns it into its framework's response with `status`. */
class Refusal extends Error {
  constructor(status, reason) {
    super(reason);
    this.name = "Refusal";
    this.status = status;
    this.reason = reason;
  }
}

/**
 * Whether `host` could move the verified URL: empty, or any of / ? # @ \, whitespace or a control; or is
 * several hosts: a comma, which no host has, is what Fetch's Headers make of repeated Host lines.
 */
function badHost(host) {
  return !host || /[\x00-\x20\x7f/?#@\\,]/.test(host);
}

/** How many Host lines a Node IncomingMessage came with (req.headers.host keeps only the first). */
function hostLines(req) {
  const raw = req.rawHeaders;
  if (!Array.isArray(raw)) return undefined;
  let lines = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === 4 && raw[i].toLowerCase() === "host") lines += 1;
  return lines;
}

/** Control characters and line separators escaped, so a hostile header cannot forge log lines. */
function printable(text) {
  return String(text).replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

/** The media type of a Content-Type value: before the first `;`, ASCII-whitespace-trimmed, lower-cased. */
function mediaType(value) {
  return value.split(";", 1)[0].replace(ASCII_WS, "").replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** Whether the URL's query has a bodySHA256 parameter (then the body is opaque, covered by its hash). */
function hasBodySha256(url) {
  const q = url.indexOf("?");
  if (q === -1) return false;
  const end = url.indexOf("#", q);
  const query = url.slice(q + 1, end === -1 ? undefined : end);
  return query.split("&").some((part) => part.split("=", 1)[0] === "bodySHA256");
}

/** The entry the nearest proxy added to a forwarding header: the last item of the last line. */
function lastValue(lines) {
  if (!lines || lines.length === 0) return null;
  const items = lines[lines.length - 1].split(",");
  return items[items.length - 1].replace(ASCII_WS, "") || null;
}

/** trustedProxies as a net.BlockList: "10.0.0.0/8", "::1/128" or a bare address. Malformed: an error now. */
function parseNetworks(entries) {
  if (entries === undefined || entries === null) return null;
  const list = typeof entries === "string" ? [entries] : Array.from(entries);
  if (list.length === 0) return null;
  const blocks = new net.BlockList();
  for (const raw of list) {
    const entry = String(raw).trim();
    const [address, prefix] = entry.split("/");
    const type = net.isIPv4(address) ? "ipv4" : net.isIPv6(address) ? "ipv6" : null;
    const bits = prefix === undefined ? (type === "ipv4" ? 32 : 128) : Number(prefix);
    if (type === null || !Number.isInteger(bits) || bits < 0 || bits > (type === "ipv4" ? 32 : 128) || (prefix !== undefined && !/^\d+$/.test(prefix))) {
      throw new TypeError(`trustedProxies: ${JSON.stringify(entry)} is not an address or CIDR range`);
    }
    blocks.addSubnet(address, bits, type);
  }
  return blocks;
}

/** The peer address as an IPv4 or IPv6 string (IPv4-mapped IPv6 as IPv4), or null. */
function peerAddress(remote) {
  if (!remote) return null;
  let address = String(remote).replace(/^\[|\]$/g, "").split("%", 1)[0];
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) address = mapped[1];
  return net.isIP(address) ? address : null;
}

function checkBaseUrl(baseUrl) {
  if (!baseUrl) return null;
  let parts;
  try {
    parts = new URL(baseUrl);
  } catch {
    parts = null;
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(baseUrl);
  if (!parts || !scheme || !["http", "https"].includes(scheme[1].toLowerCase()) || baseUrl.includes("?") || baseUrl.includes("#")) {
    throw new TypeError(
      "baseUrl must be the public origin (and mount prefix) Twilio calls, such as 'https://example.com' or 'https://example.com/app', with no query or fragment"
    );
  }
  const authority = baseUrl.slice(scheme[0].length).split("/", 1)[0];
  if (badHost(authority.slice(authority.lastIndexOf("@") + 1))) throw new TypeError("baseUrl has a malformed host");
  return baseUrl.replace(/\/+$/, "");
}

function diagnosis(explanation) {
  const lines = explanation.split("\n").map((l) => l.trim()).filter(Boolean);
  const rest = lines.length && lines[0].startsWith("invalid:") ? lines.slice(1) : lines;
  return rest.join(" ") || "no common mistake explains it: check the token and the URL Twilio calls";
}

/** 400 when the request carries no signature at all, 403 when it carries a bad one. */
function statusFor(error) {
  return error instanceof MissingSignatureError ? 400 : 403;
}

/**
 * The options of one middleware, plugin or helper, and the validators it built.
 *
 * authToken: the Auth Token (a string, an array for rotation, or {keyId: secret}); default the
 *   environment variable TWILIO_AUTH_TOKEN, read at request time.
 * baseUrl: the public origin Twilio calls (https://example.com, or with a mount prefix the app does
 *   not see): replaces the scheme and host the server sees.
 * trustedProxies: addresses / CIDR ranges of reverse proxies whose X-Forwarded-Proto and
 *   X-Forwarded-Host are believed (the last value: the nearest proxy's). trustProxy: believe them from
 *   any peer (the app is reachable only through the proxy).
 * maxBodyBytes: the largest body read (default 1 MiB): 413 beyond it.
 * logger: where refusals go ({warn, error}; default console).
 */
class Guard {
  // The token never sits in a public property: a Guard may be logged (util.inspect, JSON).
  #authToken;
  // Validators by token (keys are secrets: private too).
  #validators = new Map();

  constructor(options = {}) {
    const maxBodyBytes = options.maxBodyBytes === undefined ? DEFAULT_MAX_BODY_BYTES : options.maxBodyBytes;
    if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 0) throw new TypeError("maxBodyBytes must be a non-negative integer");
    this.#authToken = options.authToken;
    this.baseUrl = checkBaseUrl(options.baseUrl);
    this.basePath = this.baseUrl ? this.baseUrl.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, "") : "";
    this.trustedProxies = parseNetworks(options.trustedProxies);
    this.trustProxy = Boolean(options.trustProxy);
    this.maxBodyBytes = maxBodyBytes;
    this.logger = options.logger || console;
    this.routeWarned = false;
  }

  /** The validator for the configured token; a Refusal 500 (logged at error) without a usable one. */
  validator(url) {
    const token = this.#authToken !== undefined && this.#authToken !== null ? this.#authToken : process.env[TOKEN_SETTING];
    const key = token;
    let validator = this.#validators.get(key);
    if (validator) return validator;
    let problem;
    if (token === undefined || token === null || token === "") {
      problem = `${TOKEN_SETTING} is not set`;
    } else {
      try {
        validator = new Validator(token);
      } catch (error) {
        problem = `${TOKEN_SETTING} is not usable (${error.message})`;
      }
    }
    if (!validator) {
      this.logger.error(`twilio webhook refused: 500 ${problem}; url=${printable(url)}; set ${TOKEN_SETTING} to the account's Auth Token`);
      throw new Refusal(500, `${problem}: set it (or the authToken option) to verify Twilio webhooks`);
    }
    if (this.#validators.size > 16) this.#validators.clear();
    this.#validators.set(key, validator);
    return validator;
  }

  [require("util").inspect.custom]() {
    return `Guard { baseUrl: ${JSON.stringify(this.baseUrl)}, trustProxy: ${this.trustProxy}, maxBodyBytes: ${this.maxBodyBytes}, authToken: [redacted] }`;
  }

  toJSON() {
    return { baseUrl: this.baseUrl, trustProxy: this.trustProxy, maxBodyBytes: this.maxBodyBytes, authToken: "[redacted]" };
  }

  /**
   * The public URL of a request, and the R3 note on forwarding headers that were not believed.
   * req: {target (raw path and query), scheme ("http"/"https", or "ws"/"wss" for an upgrade), host,
   * remoteAddress, header(name) -> string[]}.
   */
  publicUrl(req) {
    const peer = peerAddress(req.remoteAddress);
    const believed = this.trustProxy || (this.trustedProxies !== null && peer !== null && this.trustedProxies.check(peer, net.isIPv4(peer) ? "ipv4" : "ipv6"));
    let scheme = req.scheme;
    let forwardedProto = null;
    let forwardedHost = null;
    if (believed) {
      forwardedProto = lastValue(req.header("X-Forwarded-Proto"));
      forwardedHost = lastValue(req.header("X-Forwarded-Host"));
      if (forwardedProto) scheme = req.upgrade ? (forwardedProto.toLowerCase() === "https" ? "wss" : forwardedProto.toLowerCase() === "http" ? "ws" : forwardedProto) : forwardedProto;
    }
    let url;
    if (this.baseUrl !== null) {
      let base = this.baseUrl;
      // R5: a WebSocket handshake is signed over ws(s)://, the public scheme's WebSocket twin.
      if (req.upgrade) base = base.replace(/^https:/i, "wss:").replace(/^http:/i, "ws:");
      url = base + req.target;
    } else {
      url = `${scheme}://${forwardedHost || req.host || ""}${req.target}`;
    }
    const ignored = believed ? "" : this.ignoredNote(req, peer);
    return { url, forwardedProto, forwardedHost, ignored };
  }

  ignoredNote(req, peer) {
    const present = FORWARDING_HEADERS.filter((name) => {
      const lines = req.header(name);
      return lines && lines.length > 0;
    });
    if (present.length === 0) return "";
    const names = present.join(", ");
    if (this.trustedProxies === null && !this.trustProxy) return `${names} ignored: no trustedProxies configured`;
    return `${names} ignored: from ${printable(peer || req.remoteAddress || "an unknown peer")}, not in trustedProxies`;
  }

  /** Steps 1 and 2: the signature header and the host; returns {url, ignored} or throws a Refusal. */
  checkHead(req) {
    const { url, forwardedProto, forwardedHost, ignored } = this.publicUrl(req);
    if (this.baseUrl !== null) this.warnRouteInBaseUrl(req.target, url);
    const refuse = (status, reason, diag) => this.refuse(status, reason, url, diag, ignored);
    const signature = req.header("X-Twilio-Signature");
    if (!signature || signature.length === 0) {
      throw refuse(400, "the X-Twilio-Signature header is missing", "the request was not sent by Twilio (or a proxy dropped the header)");
    }
    // A second Host line: the URL would take one and the app could read another (RFC 9112 section 3.2).
    if (req.hostLines > 1) {
      throw refuse(400, "the request has more than one Host header", "a request has one Host; Twilio sends one");
    }
    if (this.baseUrl === null && !forwardedHost && !req.host) {
      throw refuse(400, "the Host header is missing", "without baseUrl the URL verified is built from the Host header");
    }
    for (const [name, value] of [
      ["Host", req.host],
      ["X-Forwarded-Host", forwardedHost],
    ]) {
      if (value !== undefined && value !== null && badHost(value)) {
        throw refuse(400, `the ${name} header ${JSON.stringify(printable(value))} is not a host`, "a host with / ? # @ \\, whitespace or control characters could move the URL, and a comma is what servers make of several Host lines");
      }
    }
    if (this.baseUrl === null && forwardedProto !== null && !/^https?$/i.test(forwardedProto)) {
      throw refuse(400, "the X-Forwarded-Proto header is not http or https", "check what the trusted proxy sends");
    }
    return { url, ignored, signature: signature[signature.length - 1], settings: lastLine(req.header("X-Twilio-Webhooks-Signature-Settings")) };
  }

  /** Step 4 before reading: the declared Content-Length (null if absent); 400 malformed, 413 too large. */
  checkDeclaredLength(value, head) {
    if (value === undefined || value === null || value === "") return null;
    if (!/^\d+$/.test(value)) throw this.refuse(400, "the Content-Length header is not a number", head.url, "", head.ignored);
    const digits = value.replace(/^0+/, "");
    if (digits.length > 15 || Number(digits || "0") > this.maxBodyBytes) throw this.tooLarge(head);
    return Number(digits || "0");
  }

  tooLarge(head) {
    return this.refuse(
      413,
      `the body is larger than maxBodyBytes (${this.maxBodyBytes})`,
      head.url,
      "Twilio's webhooks are small; raise maxBodyBytes if yours really are larger",
      head.ignored
    );
  }

  /** Reads a Node stream to its end, at most maxBodyBytes + 1 bytes (413 past the limit). */
  readStream(stream, head) {
    return new Promise((resolve, reject) => {
      const chunks = [];
      let size = 0;
      const cleanup = () => {
        stream.off("data", onData);
        stream.off("end", onEnd);
        stream.off("error", onError);
      };
      const onData = (chunk) => {
        size += chunk.length;
        if (size > this.maxBodyBytes) {
          cleanup();
          stream.pause();
          reject(this.tooLarge(head));
          return;
        }
        chunks.push(chunk);
      };
      const onEnd = () => {
        cleanup();
        resolve(Buffer.concat(chunks, size));
      };
      const onError = (error) => {
        cleanup();
        reject(error);
      };
      stream.on("data", onData);
      stream.on("end", onEnd);
      stream.on("error", onError);
    });
  }

  /** Step 5 (rule R1): 415 unless the body is empty, covered by bodySHA256, or sent as a form. */
  checkContentType(head, bodyLength, contentTypes) {
    if (bodyLength === 0 || hasBodySha256(head.url)) return;
    const types = (contentTypes || []).filter((v) => v.replace(ASCII_WS, "") !== "");
    const received = types.length === 1 ? types[0] : null;
    if (received !== null && mediaType(received) === FORM_TYPE) return;
    let what;
    if (types.length === 0) what = "no content type";
    else if (received === null) what = `${types.length} Content-Type headers`;
    else what = `unsupported content type ${JSON.stringify(printable(mediaType(received)))}`;
    throw this.refuse(415, `${what} for a form body`, head.url, FORM_DIAGNOSIS, head.ignored);
  }

  /** Step 6: the verified request or a Refusal (logged with explain's diagnosis). */
  verify(validator, head, body) {
    const request = { url: head.url, body, signature: head.signature, settings: head.settings };
    try {
      return validator.verify(request);
    } catch (error) {
      if (!(error instanceof SignatureError)) throw error;
      throw this.refuse(statusFor(error), error.message, head.url, diagnosis(validator.explain(request)), head.ignored);
    }
  }

  /** verify() for a form a framework already parsed (pairs [[name, value], ...]). */
  verifyPairs(validator, head, pairs) {
    try {
      return validator.verify({ url: head.url, params: pairs, signature: head.signature, settings: head.settings });
    } catch (error) {
      if (!(error instanceof SignatureError)) throw error;
      const body = new URLSearchParams(pairs).toString();
      const why = diagnosis(validator.explain({ url: head.url, body, signature: head.signature, settings: head.settings }));
      throw this.refuse(statusFor(error), error.message, head.url, why, head.ignored);
    }
  }

  /** Logs one refusal (never the token, never the expected signature) and returns it to throw. */
  refuse(status, reason, url, diag, ignored) {
    let line = `twilio webhook refused: ${status} ${reason.replace(/\.$/, "")}; url=${printable(url)}; ${printable(diag)}`;
    if (ignored) line += `; ${ignored}`;
    this.logger.warn(line);
    return new Refusal(status, reason);
  }

  /** R4: warns once when baseUrl's path overlaps the request path (its last k segments are the path's first k). */
  warnRouteInBaseUrl(target, url) {
    if (this.routeWarned || !this.basePath.replace(/\//g, "")) return;
    const requestPath = target.split("?", 1)[0];
    const base = this.basePath.split("/").filter(Boolean);
    const route = requestPath.split("/").filter(Boolean);
    let overlap = 0;
    for (let k = Math.min(base.length, route.length); k > 0; k--) {
      if (base.slice(-k).join("/") === route.slice(0, k).join("/")) {
        overlap = k;
        break;
      }
    }
    if (!overlap) return;
    this.routeWarned = true;
    this.logger.warn(
      `baseUrl "${printable(this.baseUrl)}" ends with "${printable("/" + base.slice(-overlap).join("/"))}", which the request path "${printable(requestPath)}" starts with: ` +
        `the URL verified is "${printable(url)}". Give baseUrl as the public origin plus only the mount prefix the app does not see (usually just the origin).`
    );
  }
}

function lastLine(lines) {
  return lines && lines.length ? lines[lines.length - 1] : null;
}

/** header(name) -> string[] over Node's IncomingMessage headers (lower-cased; repeated as arrays or joined). */
function nodeHeader(headers) {
  return (name) => {
    const value = headers[name.toLowerCase()];
    if (value === undefined) return [];
    return Array.isArray(value) ? value : [value];
  };
}

/** Whether a Node request is a WebSocket handshake (R5): GET, Upgrade: websocket, Connection has "upgrade". */
function isUpgrade(req) {
  const upgrade = req.headers.upgrade;
  const connection = req.headers.connection;
  // HTTP/1.1 only (RFC 6455): an HTTP/1.0 GET is never a handshake, so a ws:// signature cannot pass
  // as a plain GET's.
  return (
    req.method === "GET" &&
    req.httpVersion === "1.1" &&
    typeof upgrade === "string" &&
    upgrade.replace(ASCII_WS, "").toLowerCase() === "websocket" &&
    typeof connection === "string" &&
    connection.split(",").some((token) => token.replace(ASCII_WS, "").toLowerCase() === "upgrade")
  );
}

/** The request as Guard reads it, from a Node IncomingMessage (raw target: req.originalUrl || req.url). */
function nodeRequest(req, target) {
  const upgrade = isUpgrade(req);
  const encrypted = Boolean(req.socket && req.socket.encrypted);
  return {
    target: target !== undefined ? target : req.originalUrl || req.url,
    scheme: upgrade ? (encrypted ? "wss" : "ws") : encrypted ? "https" : "http",
    upgrade,
    host: req.headers.host,
    hostLines: hostLines(req),
    remoteAddress: req.socket && req.socket.remoteAddress,
    header: nodeHeader(req.headers),
  };
}

/**
 * The whole check for a Node request whose body is still unread: resolves {verified, body, url} or
 * rejects with a Refusal (already logged). Used by Express, Fastify's preParsing and ws.
 */
async function checkNodeRequest(guard, req, options = {}) {
  const view = nodeRequest(req, options.target);
  const head = guard.checkHead(view);
  const validator = guard.validator(head.url);
  if (options.pairs) {
    const length = guard.checkDeclaredLength(req.headers["content-length"], head);
    guard.checkContentType(head, options.pairs.length > 0 || (length || 0) > 0 ? 1 : 0, view.header("Content-Type"));
    return { verified: guard.verifyPairs(validator, head, options.pairs), body: null, url: head.url };
  }
  let body;
  if (options.body !== undefined) {
    body = options.body;
    if (body.length > guard.maxBodyBytes) throw guard.tooLarge(head);
  } else {
    guard.checkDeclaredLength(req.headers["content-length"], head);
    body = await guard.readStream(options.stream || req, head);
  }
  guard.checkContentType(head, body.length, view.header("Content-Type"));
  return { verified: guard.verify(validator, head, body), body, url: head.url };
}

/** A verified form body as an object of name -> value (repeated names: arrays), as express.urlencoded gives. */
function formObject(body) {
  const out = Object.create(null);
  for (const [name, value] of new URLSearchParams(Buffer.isBuffer(body) ? body.toString("utf8") : body)) {
    if (!(name in out)) out[name] = value;
    else if (Array.isArray(out[name])) out[name].push(value);
    else out[name] = [out[name], value];
  }
  return out;
}

module.exports = {
  Guard,
  Refusal,
  DEFAULT_MAX_BODY_BYTES,
  FORM_TYPE,
  checkNodeRequest,
  nodeRequest,
  nodeHeader,
  hostLines,
  isUpgrade,
  hasBodySha256,
  formObject,
  printable,
  mediaType,
  diagnosis,
  statusFor,
  lastLine,
};
