"use strict";
// A drop-in for twilio-node 6.2's webhooks module (require("twilio").validateRequest and friends): the
// same names, arguments and answers, on the core. Where twilio-node is wrong the contract's answer
// stands (README, "Compatibility with twilio-node"):
//   - the URL is verified as given (and port-toggled, and without user:pass@): twilio-node also
//     accepts signatures over its WHATWG `new URL()` / querystring re-encodings of the URL;
//   - names and repeated values sort by code point (UTF-8 bytes), twilio-node by UTF-16 unit: they
//     differ only around characters beyond U+FFFF;
//   - an empty or whitespace auth token validates nothing (twilio-node keys the HMAC with it);
//   - a URL that does not parse is refused (false), never a thrown TypeError;
//   - validateRequest with a bodySHA256 URL returns false: parsed params cannot prove the body
//     (validateRequestWithBody, or validateIncomingRequest with request.rawBody, can).
const crypto = require("crypto");
const url = require("url");
const { Validator } = require("./validator");
const native = require("./native");

// Validators by auth token: building one per call would cost as much as the check. Bounded, so an
// app that passes many tokens (one per subaccount) cannot grow it without limit.
const CACHE_LIMIT = 64;
const cache = new Map();

/** The validator for `authToken`, or null for a token that can sign nothing (empty, whitespace). */
function validatorFor(authToken) {
  let validator = cache.get(authToken);
  if (validator !== undefined) return validator;
  try {
    validator = new Validator(authToken);
  } catch {
    validator = null;
  }
  if (typeof authToken === "string") {
    if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value);
    cache.set(authToken, validator);
  }
  return validator;
}

function getExpectedTwilioSignature(authToken, webhookUrl, params) {
  const validator = validatorFor(authToken);
  if (validator === null) {
    throw new TypeError("twilio-signature: the auth token is empty or whitespace: it signs nothing");
  }
  if (params === null || params === undefined) params = {};
  if (webhookUrl.indexOf("bodySHA256") !== -1) {
    // Under bodySHA256 twilio-node signs the URL (plus any params given, a request that cannot exist:
    // such a body is JSON) without the body, which it does not have here; the core signs only a
    // request whose body it holds. Computed here, as twilio-node does.
    let data = webhookUrl;
    for (const key of Object.keys(params).sort()) {
      const value = params[key];
      if (Array.isArray(value)) for (const v of Array.from(new Set(value)).sort()) data += key + v;
      else data += key + value;
    }
    return crypto.createHmac("sha1", authToken).update(Buffer.from(data, "utf-8")).digest("base64");
  }
  return validator.sign({ url: webhookUrl, params });
}

function getExpectedBodyHash(body) {
  return native.bodySha256(typeof body === "string" || Buffer.isBuffer(body) ? body : String(body));
}

function validateBody(body, bodyHash) {
  const expected = Buffer.from(getExpectedBodyHash(body));
  const given = Buffer.from(String(bodyHash));
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

function validateRequest(authToken, twilioHeader, webhookUrl, params) {
  const validator = validatorFor(authToken);
  if (validator === null || typeof webhookUrl !== "string") return false;
  return validator.isValid({ url: webhookUrl, params: params === undefined || params === null ? {} : params, signature: twilioHeader || "" });
}

function validateRequestWithBody(authToken, twilioHeader, webhookUrl, body) {
  const validator = validatorFor(authToken);
  if (validator === null || typeof webhookUrl !== "string") return false;
  // Without bodySHA256 in the URL twilio-node compares the body's hash with "" (false): so do we,
  // rather than verifying the body as a form.
  if (!/[?&]bodySHA256=/.test(webhookUrl)) return false;
  return validator.isValid({ url: webhookUrl, body: body === undefined || body === null ? "" : body, signature: twilioHeader || "" });
}

function header(request, name) {
  if (typeof request.header === "function") return request.header(name);
  const value = request.headers && request.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** The webhook URL as twilio-node builds it from an Express request (options url, host, protocol). */
function requestUrl(request, options) {
  if (options.url) return options.url;
  const protocol = options.protocol || request.protocol;
  const host = options.host || request.headers.host;
  let webhookUrl = url.format({ protocol, host, pathname: request.originalUrl });
  if (request.originalUrl.search(/\?/) >= 0) webhookUrl = webhookUrl.replace(/%3F/g, "?");
  return webhookUrl;
}

function validateIncomingRequest(request, authToken, opts) {
  const options = opts || {};
  const webhookUrl = requestUrl(request, options);
  const signature = header(request, "X-Twilio-Signature") || "";
  if (webhookUrl.indexOf("bodySHA256") > 0) {
    return validateRequestWithBody(authToken, signature, webhookUrl, request.rawBody || "{}");
  }
  return validateRequest(authToken, signature, webhookUrl, request.body || {});
}

function validateExpressRequest(request, authToken, opts) {
  return validateIncomingRequest(request, authToken, opts);
}

/**
 * twilio-node's Express middleware: webhook(), webhook(authToken), webhook(options),
 * webhook(authToken, options) or webhook(options, authToken); options validate (default true), host,
 * protocol, url. Needs express.urlencoded() first, as twilio-node's does; the helper
 * `expressWebhook` (./express) verifies the raw body and applies every shared rule instead.
 */
function webhook(...args) {
  let token;
  const options = {};
  for (const arg of args) {
    if (typeof arg === "string") token = arg;
    else if (arg && typeof arg === "object") Object.assign(options, arg);
  }
  if (options.validate === undefined) options.validate = true;
  const authToken = token || process.env.TWILIO_AUTH_TOKEN;
  return function hook(request, response, next) {
    if (!options.validate) return next();
    if (!header(request, "X-Twilio-Signature")) {
      return response
        .type("text/plain")
        .status(400)
        .send("No signature header error - X-Twilio-Signature header does not exist, maybe this request is not coming from Twilio.");
    }
    // A token that signs nothing (unset, empty, whitespace) is a configuration error, never a pass.
    if (!authToken || validatorFor(authToken) === null) {
      console.error("[Twilio]: Error - Twilio auth token is required for webhook request validation.");
      return response
        .type("text/plain")
        .status(500)
        .send("Webhook Error - we attempted to validate this request without first configuring our auth token.");
    }
    const valid = validateExpressRequest(request, authToken, { url: options.url, host: options.host, protocol: options.protocol });
    if (valid) return next();
    return response.type("text/plain").status(403).send("Twilio Request Validation Failed.");
  };
}

module.exports = {
  getExpectedTwilioSignature,
  getExpectedBodyHash,
  validateRequest,
  validateBody,
  validateRequestWithBody,
  validateIncomingRequest,
  validateExpressRequest,
  webhook,
  validatorFor,
};
