"use strict";
// The errors of verification: one class per cause, two groups (malformed input, mismatch), each with
// a stable `code`. The native layer returns a number; `errorFor` turns it into the class, here only.
const native = require("./native");

/** A webhook request failed verification. Subclasses say why; `code` names the cause. */
class SignatureError extends Error {
  constructor(message, code) {
    super(message);
    this.name = new.target.name;
    this.code = code || "ERR_TWILIO_SIGNATURE";
  }
}
/** The request (or the call) is not something a correct signature could ever cover. */
class MalformedRequestError extends SignatureError {}
/** The request is well formed but was not signed by any of the validator's secrets. */
class SignatureMismatchError extends SignatureError {}
/** The URL's bodySHA256 is not the SHA-256 of the body: the body was altered. */
class BodyHashMismatchError extends SignatureMismatchError {}
class MissingSignatureError extends MalformedRequestError {}
class MalformedSignatureError extends MalformedRequestError {}
class MalformedSettingsError extends MalformedRequestError {}
class UnsupportedAlgorithmError extends MalformedRequestError {}
class MalformedBodyError extends MalformedRequestError {}
class BodyTooLargeError extends MalformedRequestError {}
class TooManyParamsError extends MalformedRequestError {}
class BodyRequiredError extends MalformedRequestError {}
class NoEligibleSecretError extends MalformedRequestError {}

// Index = the native code (bindings-node/src/lib.rs error_code); 12 is a cause this version does not name.
const TABLE = [
  null,
  [MissingSignatureError, "ERR_MISSING_SIGNATURE"],
  [MalformedSignatureError, "ERR_MALFORMED_SIGNATURE"],
  [MalformedSettingsError, "ERR_MALFORMED_SETTINGS"],
  [UnsupportedAlgorithmError, "ERR_UNSUPPORTED_ALGORITHM"],
  [MalformedBodyError, "ERR_MALFORMED_BODY"],
  [BodyTooLargeError, "ERR_BODY_TOO_LARGE"],
  [TooManyParamsError, "ERR_TOO_MANY_PARAMS"],
  [BodyRequiredError, "ERR_BODY_REQUIRED"],
  [NoEligibleSecretError, "ERR_NO_ELIGIBLE_SECRET"],
  [SignatureMismatchError, "ERR_SIGNATURE_MISMATCH"],
  [BodyHashMismatchError, "ERR_BODY_HASH_MISMATCH"],
  [MalformedRequestError, "ERR_MALFORMED_REQUEST"],
];

function errorFor(code) {
  const [Class, name] = TABLE[code] || TABLE[12];
  return new Class(native.errorMessage(code), name);
}

module.exports = {
  SignatureError,
  MalformedRequestError,
  SignatureMismatchError,
  BodyHashMismatchError,
  MissingSignatureError,
  MalformedSignatureError,
  MalformedSettingsError,
  UnsupportedAlgorithmError,
  MalformedBodyError,
  BodyTooLargeError,
  TooManyParamsError,
  BodyRequiredError,
  NoEligibleSecretError,
  errorFor,
};
