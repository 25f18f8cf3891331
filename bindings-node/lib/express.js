"use strict";
// Express 5 (and 4) middleware: verifies the raw body (read here, at most maxBodyBytes + 1 bytes), or,
// when express.urlencoded() already parsed the form, the parsed pairs (the signature covers the decoded
// pairs, so both give the same verdict); applies every shared rule (lib/web.js). On success req.twilio
// is the verification ({secretIndex, keyId, candidate, algorithm, replayKey}), req.rawBody the body and
// req.body the form (an object, repeated names as arrays) unless a parser had set it.
const { Guard, Refusal, checkNodeRequest, formObject, hasBodySha256, mediaType, FORM_TYPE } = require("./web");

/** [[name, value], ...] from a form object (express.urlencoded's: values strings or arrays of them). */
function pairsOf(body) {
  const pairs = [];
  for (const name of Object.keys(body)) {
    const value = body[name];
    if (Array.isArray(value)) for (const item of value) pairs.push([name, String(item)]);
    else pairs.push([name, String(value)]);
  }
  return pairs;
}

/** What a body parser that ran first left: {body} (raw bytes), {pairs} (a parsed form), or a problem. */
function alreadyRead(req) {
  if (!req.readableEnded) return {};
  if (Buffer.isBuffer(req.rawBody)) return { body: req.rawBody };
  if (Buffer.isBuffer(req.body)) return { body: req.body };
  const type = mediaType(String(req.headers["content-type"] || ""));
  if (req.body !== null && typeof req.body === "object" && type === FORM_TYPE) return { pairs: pairsOf(req.body) };
  // Read by something that kept nothing we can verify: fine only when there was no body at all.
  const declared = req.headers["content-length"];
  const noBody = req.headers["transfer-encoding"] === undefined && (declared === undefined || /^0+$/.test(declared));
  if (noBody && (req.body === undefined || (req.body !== null && typeof req.body === "object" && Object.keys(req.body).length === 0))) {
    return { body: Buffer.alloc(0) };
  }
  return { problem: `the body was read (as ${type || "an unknown type"}) before the signature was checked` };
}

function send(res, status, text) {
  res.status(status);
  res.set("Content-Type", "text/plain; charset=utf-8");
  // The body may be unread (400, 413): the connection is not reused for a next request.
  if (!res.req.readableEnded) res.set("Connection", "close");
  res.send(text);
}

/**
 * expressWebhook(options): options as lib/web.js's Guard (authToken, baseUrl, trustedProxies,
 * trustProxy, maxBodyBytes, logger) plus idempotency (a MemoryStore, RedisStore or Idempotency).
 */
function expressWebhook(options = {}) {
  const guard = new Guard(options);
  const idempotency = options.idempotency ? require("./idempotency").Idempotency.of(options.idempotency, guard.logger) : null;
  return function twilioSignature(req, res, next) {
    const found = alreadyRead(req);
    if (found.problem) {
      guard.logger.error(`twilio webhook refused: 500 ${found.problem}; mount the Twilio middleware before express.json()/express.text(), or keep req.rawBody`);
      send(res, 500, "the request body was parsed before its signature was checked");
      return;
    }
    checkNodeRequest(guard, req, found).then(
      ({ verified, body, url }) => {
        req.twilio = verified;
        if (body !== null) {
          req.rawBody = body;
          if (req.body === undefined) {
            if (!hasBodySha256(url)) req.body = formObject(body);
            else if (mediaType(String(req.headers["content-type"] || "")) === "application/json") {
              try {
                req.body = JSON.parse(body.toString("utf8"));
              } catch {
                req.body = body;
              }
            } else req.body = body;
          }
        }
        if (idempotency) idempotency.express(verified, req, res, next);
        else next();
      },
      (error) => {
        if (error instanceof Refusal) send(res, error.status, error.reason);
        else next(error);
      }
    );
  };
}

module.exports = { expressWebhook, pairsOf };
