"use strict";
// The native API: a Validator over one or more secrets (rotation, SharedKey ids), on the Rust core.
const util = require("util");
const native = require("./native");
const { errorFor } = require("./errors");

const DEFAULT_MAX_PARAMS = 10000;

/** An unusable secret or option: refused when the validator is built, never carrying the secret. */
class ConfigurationError extends TypeError {
  constructor(message, code) {
    super(message);
    this.name = "ConfigurationError";
    this.code = code;
  }
}

function secretBuffer(secret) {
  if (typeof secret === "string") return Buffer.from(secret, "utf8");
  if (Buffer.isBuffer(secret)) return secret;
  if (secret instanceof Uint8Array) return Buffer.from(secret.buffer, secret.byteOffset, secret.byteLength);
  // Only the type is named: the value could be a secret in the wrong shape.
  throw new ConfigurationError(
    `a secret must be a string or a Buffer, not ${secret === null ? "null" : typeof secret}`,
    "ERR_INVALID_SECRET"
  );
}

/** string | Buffer | Uint8Array as the native layer takes it; undefined/null stays null. */
function bytesArg(value, what) {
  if (value === undefined || value === null) return null;
  if (typeof value === "string" || Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`${what} must be a string or a Buffer, not ${typeof value}`);
}

const wellFormed = (text) => (text.isWellFormed() ? text : text.toWellFormed());

/** A value of a parsed form as the strings it stands for (arrays: each element, nested arrays flattened). */
function pushValues(out, name, value) {
  if (Array.isArray(value)) {
    for (const item of value) pushValues(out, name, item);
  } else {
    out.push(name, wellFormed(String(value)));
  }
}

/**
 * `params` as the flat [name, value, ...] list the native layer takes: an object of name -> value or
 * array of values (what body parsers give), a Map, URLSearchParams, or an iterable of [name, value].
 */
function flatPairs(params) {
  const out = [];
  if (params === undefined || params === null) return out;
  if (typeof params === "string" || Buffer.isBuffer(params)) {
    throw new TypeError("params must be parsed pairs; give a raw body as `body` instead");
  }
  if (typeof params[Symbol.iterator] === "function") {
    for (const pair of params) {
      if (!Array.isArray(pair) || pair.length !== 2) throw new TypeError("params must hold [name, value] pairs");
      pushValues(out, wellFormed(String(pair[0])), pair[1]);
    }
    return out;
  }
  for (const name of Object.keys(params)) pushValues(out, wellFormed(name), params[name]);
  return out;
}

const CANDIDATES = ["as_given", "port_toggled", "without_userinfo", "without_userinfo_port_toggled"];
const ALGORITHMS = ["HMAC_SHA1", "HMAC_SHA256"];

// The hot calls go to plain functions by the validator's id (see bindings-node/src/lib.rs, Shared).
const { verify: nativeVerify, check: nativeCheck, checkPairs: nativeCheckPairs } = native;

// Replay keys are written by the addon into slots of a pool (one slot per verification, never reused:
// a full pool is replaced, and results keep theirs alive); a result makes its Buffer only when asked.
const POOL_SLOTS = 128;
let pool = new Uint8Array(32 * POOL_SLOTS);
let slot = 0;

/** What verify() returns: which secret and URL form matched, the algorithm, and the replay key. */
class Verification {
  #pool;
  #offset;
  #replayKey = null;

  constructor(secretIndex, keyId, candidate, algorithm, keys, offset) {
    this.secretIndex = secretIndex;
    this.keyId = keyId;
    this.candidate = candidate;
    this.algorithm = algorithm;
    this.#pool = keys;
    this.#offset = offset;
  }

  /** 32 bytes identifying the signed request (store them with an expiry to refuse a replay). */
  get replayKey() {
    if (this.#replayKey === null) this.#replayKey = Buffer.from(this.#pool.buffer, this.#pool.byteOffset + this.#offset, 32);
    return this.#replayKey;
  }

  toJSON() {
    return { secretIndex: this.secretIndex, keyId: this.keyId, candidate: this.candidate, algorithm: this.algorithm, replayKey: this.replayKey.toString("hex") };
  }

  [util.inspect.custom](depth, options, inspect) {
    return `Verification ${inspect({ ...this.toJSON() }, options)}`;
  }
}

class Validator {
  #native;
  #id;
  #keyIds;

  /**
   * @param secrets a secret (the Auth Token), an array of them (rotation: primary first), or an object
   *   {keyId: secret} (SharedKeys: a settings header naming a key id tries only that key).
   * @param options {maxParams}: the most form parameters a request may have (default 10000).
   */
  constructor(secrets, options = {}) {
    const maxParams = options.maxParams === undefined ? DEFAULT_MAX_PARAMS : options.maxParams;
    if (!Number.isSafeInteger(maxParams) || maxParams < 1 || maxParams > 0xffffffff) {
      throw new ConfigurationError("maxParams must be an integer >= 1", "ERR_INVALID_OPTION");
    }
    let list;
    let ids;
    if (typeof secrets === "string" || secrets instanceof Uint8Array) {
      list = [secretBuffer(secrets)];
      ids = [null];
    } else if (Array.isArray(secrets)) {
      list = secrets.map(secretBuffer);
      ids = secrets.map(() => null);
    } else if (secrets !== null && typeof secrets === "object") {
      ids = Object.keys(secrets);
      list = ids.map((id) => secretBuffer(secrets[id]));
    } else {
      throw new ConfigurationError(
        `secrets must be a string, a Buffer, an array of them or an object {keyId: secret}, not ${secrets === null ? "null" : typeof secrets}`,
        "ERR_INVALID_SECRET"
      );
    }
    try {
      this.#native = new native.NativeValidator(list, ids, maxParams);
      this.#id = this.#native.id;
      this.#keyIds = ids;
    } catch (error) {
      // The native message is static text (it never holds a secret); a fresh error, nothing chained.
      throw new ConfigurationError(`twilio-signature: ${error.message}`, "ERR_INVALID_SECRET");
    }
  }

  /** The key ids, one per secret (null where none). Never the secrets. */
  get keyIds() {
    return this.#keyIds.slice();
  }

  get maxParams() {
    return this.#native.maxParams;
  }

  /**
   * Verifies one request: {url, body} (the raw body: a form, or a JSON body under a bodySHA256 URL; none
   * for a GET) or {url, params} (a form a framework parsed), {signature} (X-Twilio-Signature) and
   * {settings} (X-Twilio-Webhooks-Signature-Settings). Returns {secretIndex, keyId, candidate, algorithm,
   * replayKey}; throws a SignatureError subclass.
   */
  verify(request) {
    if (slot >= POOL_SLOTS) {
      pool = new Uint8Array(32 * POOL_SLOTS);
      slot = 0;
    }
    const code = this.#run(request, true);
    if (code < 0x80) throw errorFor(code);
    const secretIndex = code >>> 8;
    return new Verification(secretIndex, this.#keyIds[secretIndex], CANDIDATES[(code >> 4) & 3], ALGORITHMS[code & 1], pool, 32 * slot++);
  }

  /** verify() as a boolean. */
  isValid(request) {
    return this.#run(request, false) === 0;
  }

  /** The verdict and, when verification fails, the likely mistake and its fix (text, for logs). */
  explain(request) {
    const { url, signature, settings } = request;
    const body = request.params !== undefined ? new URLSearchParams(flatEntries(flatPairs(request.params))).toString() : request.body;
    return this.#native.explain(bytesArg(url, "url"), bytesArg(body, "body") ?? "", bytesArg(signature, "signature"), bytesArg(settings, "settings"));
  }

  /** The signature Twilio would send for {url, body | params, settings}. */
  sign(request) {
    const url = bytesArg(request.url, "url");
    const settings = bytesArg(request.settings, "settings");
    const result =
      request.params !== undefined
        ? this.#native.signParams(url, flatPairs(request.params), settings)
        : this.#native.sign(url, bytesArg(request.body, "body") ?? "", settings);
    if (typeof result === "number") throw errorFor(result);
    return result;
  }

  #run(request, full) {
    if (request === null || typeof request !== "object") throw new TypeError("verify() takes {url, body, signature, settings}");
    const { url, signature = null, settings = null } = request;
    if (url === undefined || url === null) throw new TypeError("url is required");
    if (request.params !== undefined) {
      if (typeof url !== "string" && !(url instanceof Uint8Array)) throw new TypeError("url must be a string or a Buffer");
      if (full) return this.#native.verifyParams(url, flatPairs(request.params), signature, settings, pool, 32 * slot);
      const joined = joinParams(request.params);
      return nativeCheckPairs(this.#id, url, joined, lengths, count, signature, settings);
    }
    // The addon checks the types (a string, Buffer or Uint8Array; null for none) and throws TypeErrors.
    const body = request.body ?? "";
    return full
      ? nativeVerify(this.#id, url, body, signature, settings, pool, 32 * slot)
      : nativeCheck(this.#id, url, body, signature, settings);
  }

  [util.inspect.custom]() {
    return `Validator { secrets: ${this.#keyIds.length} (redacted), keyIds: ${util.inspect(this.#keyIds)}, maxParams: ${this.#native.maxParams} }`;
  }

  toJSON() {
    return { secrets: "[redacted]", keyIds: this.#keyIds, maxParams: this.#native.maxParams };
  }
}

// Parsed params as one string (names and values concatenated) and the UTF-16 length of each piece in
// `lengths` (see NativeValidator.checkPairs): one string crosses into the addon instead of one per name
// and value. `lengths` is reused between calls; joinParams returns the string and sets `count`.
let lengths = new Uint32Array(256);
let count = 0;

function grow() {
  const grown = new Uint32Array(lengths.length * 2);
  grown.set(lengths);
  lengths = grown;
}

function joinValues(joined, name, value) {
  if (Array.isArray(value)) {
    for (const item of value) joined = joinValues(joined, name, item);
    return joined;
  }
  // twilio-node concatenates name + value: a number or boolean counts as its string.
  const text = typeof value === "string" ? value : String(value);
  if (count + 2 > lengths.length) grow();
  lengths[count++] = name.length;
  lengths[count++] = text.length;
  return joined + name + text;
}

function joinParams(params) {
  count = 0;
  let joined = "";
  if (params === undefined || params === null) return joined;
  if (typeof params === "string" || Buffer.isBuffer(params)) {
    throw new TypeError("params must be parsed pairs; give a raw body as `body` instead");
  }
  if (typeof params[Symbol.iterator] === "function") {
    for (const pair of params) {
      if (!Array.isArray(pair) || pair.length !== 2) throw new TypeError("params must hold [name, value] pairs");
      joined = joinValues(joined, String(pair[0]), pair[1]);
    }
    return joined;
  }
  // A plain object (what body parsers give) is walked with for-in, the fastest way V8 has; for-in would
  // also visit enumerable inherited names, so anything else (or a polluted Object.prototype) goes
  // through Object.keys: own names only, as twilio-node's Object.keys.
  const proto = Object.getPrototypeOf(params);
  if ((proto === Object.prototype || proto === null) && !hasEnumerable(Object.prototype)) {
    for (const name in params) joined = joinValues(joined, name, params[name]);
    return joined;
  }
  const names = Object.keys(params);
  for (let i = 0; i < names.length; i++) joined = joinValues(joined, names[i], params[names[i]]);
  return joined;
}

function hasEnumerable(object) {
  for (const name in object) return name !== undefined;
  return false;
}

function flatEntries(flat) {
  const entries = [];
  for (let i = 0; i < flat.length; i += 2) entries.push([flat[i], flat[i + 1]]);
  return entries;
}

/** The lower-case hex SHA-256 of a body, as Twilio puts it in bodySHA256. */
function bodySha256(body) {
  return native.bodySha256(bytesArg(body, "body") ?? "");
}

module.exports = { Validator, Verification, ConfigurationError, DEFAULT_MAX_PARAMS, bodySha256, flatPairs, bytesArg };
