// A typed example: checked with `tsc --noEmit -p test/types` (make test-node). Never run.
import {
  Validator,
  SignatureError,
  SignatureMismatchError,
  validateRequest,
  getExpectedTwilioSignature,
  expressWebhook,
  verifyFetchRequest,
  fetchGuard,
  verifyUpgrade,
  MemoryStore,
  Idempotency,
  type Verified,
  type FetchResult,
} from "twilio-signature";

const validator = new Validator({ KS1: "secret-one", KS2: "secret-two" }, { maxParams: 1000 });
const rotated = new Validator(["primary", "secondary"]);

export function check(url: string, body: Buffer, signature: string | undefined): Verified | null {
  try {
    const verified: Verified = validator.verify({ url, body, signature, settings: "key=KS1,algorithm=HMAC_SHA256" });
    const index: number = verified.secretIndex;
    const key: string | null = verified.keyId;
    return index >= 0 && key !== "" ? verified : null;
  } catch (error) {
    if (error instanceof SignatureMismatchError) return null;
    if (error instanceof SignatureError) throw new Error(error.code);
    throw error;
  }
}

export const ok: boolean = rotated.isValid({ url: "https://example.com/sms", params: { From: "+1555" }, signature: "x" });
export const text: string = rotated.explain({ url: "https://example.com/sms", body: "a=1", signature: null });
export const signature: string = getExpectedTwilioSignature("token", "https://example.com/sms", { Body: "hi" });
export const dropIn: boolean = validateRequest("token", signature, "https://example.com/sms", { Body: "hi" });

export const middleware = expressWebhook({ baseUrl: "https://example.com", trustedProxies: ["10.0.0.0/8"], idempotency: new MemoryStore() });
const guard = fetchGuard({ authToken: "token" });
const retries = new Idempotency(new MemoryStore(), { wait: 2, onStoreError: "refuse" });

export async function handler(request: Request): Promise<Response> {
  const result: FetchResult = await verifyFetchRequest(request, { guard });
  if (!result.ok) return result.response;
  if (request.headers.has("I-Twilio-Idempotency-Token")) {
    return retries.fetch(result.verified, request.headers.get("I-Twilio-Idempotency-Token"), () => new Response("<Response/>"));
  }
  return new Response(`<Response><Message>${result.form?.get("Body") ?? ""}</Message></Response>`, { headers: { "Content-Type": "text/xml" } });
}

export const onUpgrade = verifyUpgrade({ handleUpgrade: () => undefined, emit: () => true }, { baseUrl: "https://example.com" });
