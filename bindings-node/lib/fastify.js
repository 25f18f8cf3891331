"use strict";
// Fastify 5 plugin: `app.register(twilioSignature, options)` verifies every route of the scope it is
// registered in (it skips Fastify's encapsulation, as fastify-plugin does, so its hooks reach the
// routes registered beside it). onRequest: no X-Twilio-Signature -> 400 before the body is read;
// preParsing: the raw body read (at most maxBodyBytes + 1 bytes), the shared rules applied (lib/web.js),
// verified, then handed on to Fastify's parsers unchanged. A parser for
// application/x-www-form-urlencoded is added when the scope has none (request.body: name -> value,
// repeated names as arrays). request.twilio is the verification, request.rawBody the body.
const { Readable } = require("stream");
const { Guard, Refusal, checkNodeRequest, formObject, nodeRequest, FORM_TYPE } = require("./web");

function twilioSignature(fastify, options, done) {
  const guard = new Guard(options);
  if (!fastify.hasContentTypeParser(FORM_TYPE)) {
    fastify.addContentTypeParser(FORM_TYPE, { parseAs: "buffer", bodyLimit: guard.maxBodyBytes }, (request, body, callback) => {
      callback(null, formObject(body));
    });
  }
  const refuse = (reply, error) => {
    if (!(error instanceof Refusal)) throw error;
    reply.code(error.status).header("Content-Type", "text/plain; charset=utf-8").header("Connection", "close").send(error.reason);
    return reply;
  };
  fastify.decorateRequest("twilio", null);
  fastify.decorateRequest("rawBody", null);
  // options.idempotency: answer Twilio's retries once (a MemoryStore, RedisStore or Idempotency).
  if (options.idempotency) {
    fastify.decorateRequest("twilioTicket", null);
    fastify.decorateRequest("twilioCaptured", null);
    require("./idempotency").Idempotency.of(options.idempotency, guard.logger).fastifyHooks(fastify);
  }
  fastify.addHook("onRequest", async (request, reply) => {
    try {
      // Steps 1-3 before anything is read (repeated, unlogged twice: the check passes or refuses here).
      const head = guard.checkHead(nodeRequest(request.raw, request.raw.url));
      guard.validator(head.url);
      // A request Fastify will not parse (GET, or no body): verified here, with its empty body.
      if (!hasBody(request.raw)) {
        const { verified } = await checkNodeRequest(guard, request.raw, { target: request.raw.url, body: Buffer.alloc(0) });
        request.twilio = verified;
        request.rawBody = Buffer.alloc(0);
      }
    } catch (error) {
      return refuse(reply, error);
    }
  });
  fastify.addHook("preParsing", async (request, reply, payload) => {
    if (request.twilio) return payload;
    try {
      const { verified, body } = await checkNodeRequest(guard, request.raw, { target: request.raw.url, stream: payload });
      request.twilio = verified;
      request.rawBody = body;
      const replay = Readable.from([body]);
      replay.receivedEncodedLength = body.length;
      return replay;
    } catch (error) {
      return refuse(reply, error);
    }
  });
  done();
}

/** Whether Fastify will run preParsing with a body (a Content-Length or chunked Transfer-Encoding). */
function hasBody(req) {
  return req.headers["transfer-encoding"] !== undefined || (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0");
}

twilioSignature[Symbol.for("skip-override")] = true;
twilioSignature[Symbol.for("fastify.display-name")] = "twilio-signature";

module.exports = { twilioSignature };
