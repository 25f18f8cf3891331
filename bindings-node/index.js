"use strict";
// twilio-signature: Twilio webhook signatures on the project's Rust core (CommonJS entry).
const errors = require("./lib/errors");
const validator = require("./lib/validator");
const webhooks = require("./lib/webhooks");
const { expressWebhook } = require("./lib/express");
const { twilioSignature } = require("./lib/fastify");
const { verifyFetchRequest, fetchGuard } = require("./lib/fetch");
const { verifyUpgrade, verifyHandshake } = require("./lib/ws");
const idempotency = require("./lib/idempotency");

module.exports = {
  Validator: validator.Validator,
  ConfigurationError: validator.ConfigurationError,
  DEFAULT_MAX_PARAMS: validator.DEFAULT_MAX_PARAMS,
  bodySha256: validator.bodySha256,
  SignatureError: errors.SignatureError,
  MalformedRequestError: errors.MalformedRequestError,
  SignatureMismatchError: errors.SignatureMismatchError,
  BodyHashMismatchError: errors.BodyHashMismatchError,
  MissingSignatureError: errors.MissingSignatureError,
  MalformedSignatureError: errors.MalformedSignatureError,
  MalformedSettingsError: errors.MalformedSettingsError,
  UnsupportedAlgorithmError: errors.UnsupportedAlgorithmError,
  MalformedBodyError: errors.MalformedBodyError,
  BodyTooLargeError: errors.BodyTooLargeError,
  TooManyParamsError: errors.TooManyParamsError,
  BodyRequiredError: errors.BodyRequiredError,
  NoEligibleSecretError: errors.NoEligibleSecretError,
  getExpectedTwilioSignature: webhooks.getExpectedTwilioSignature,
  getExpectedBodyHash: webhooks.getExpectedBodyHash,
  validateRequest: webhooks.validateRequest,
  validateBody: webhooks.validateBody,
  validateRequestWithBody: webhooks.validateRequestWithBody,
  validateIncomingRequest: webhooks.validateIncomingRequest,
  validateExpressRequest: webhooks.validateExpressRequest,
  webhook: webhooks.webhook,
  expressWebhook,
  twilioSignature,
  verifyFetchRequest,
  fetchGuard,
  verifyUpgrade,
  verifyHandshake,
  MemoryStore: idempotency.MemoryStore,
  RedisStore: idempotency.RedisStore,
  Idempotency: idempotency.Idempotency,
  StoredResponse: idempotency.StoredResponse,
  StoreError: idempotency.StoreError,
  deliveryKey: idempotency.deliveryKey,
  TOKEN_HEADER: idempotency.TOKEN_HEADER,
  REPLAYED_HEADER: idempotency.REPLAYED_HEADER,
};
