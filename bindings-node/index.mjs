// twilio-signature: the ESM entry. The package is one CommonJS implementation (one native addon, one
// set of error classes); this re-exports it so `import` and `require` see the same objects.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const pkg = require("./index.js");

export default pkg;
export const {
  Validator,
  ConfigurationError,
  DEFAULT_MAX_PARAMS,
  bodySha256,
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
  getExpectedTwilioSignature,
  getExpectedBodyHash,
  validateRequest,
  validateBody,
  validateRequestWithBody,
  validateIncomingRequest,
  validateExpressRequest,
  webhook,
  expressWebhook,
  twilioSignature,
  verifyFetchRequest,
  fetchGuard,
  verifyUpgrade,
  verifyHandshake,
  MemoryStore,
  RedisStore,
  Idempotency,
  StoredResponse,
  StoreError,
  deliveryKey,
  TOKEN_HEADER,
  REPLAYED_HEADER,
} = pkg;
