// Type declarations for twilio-signature (hand-written; checked by `tsc --noEmit` on test/types/).
/// <reference types="node" />
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";

/** A secret (the Auth Token or a SharedKey secret), several (rotation: primary first), or {keyId: secret}. */
export type Secrets = string | Uint8Array | ReadonlyArray<string | Uint8Array> | { readonly [keyId: string]: string | Uint8Array };
export type Bytes = string | Uint8Array;
/** A form a framework parsed: name -> value (repeated names: arrays), or [name, value] pairs. */
export type Params = Record<string, unknown> | Iterable<readonly [string, unknown]>;
export type Candidate = "as_given" | "port_toggled" | "without_userinfo" | "without_userinfo_port_toggled";
export type Algorithm = "HMAC_SHA1" | "HMAC_SHA256";

export interface VerifyRequest {
  /** The full public URL Twilio requested (scheme, host, port, path and query), as sent. */
  url: Bytes;
  /** The raw body: a form, or a JSON body under a bodySHA256 URL; none (or "") for a GET. */
  body?: Bytes | null;
  /** A form a framework already parsed (instead of body). */
  params?: Params;
  /** X-Twilio-Signature; null or absent is a MissingSignatureError. */
  signature?: Bytes | null;
  /** X-Twilio-Webhooks-Signature-Settings. */
  settings?: Bytes | null;
}

export interface SignRequest {
  url: Bytes;
  body?: Bytes | null;
  params?: Params;
  settings?: Bytes | null;
}

export interface Verified {
  /** Index of the matching secret, in the order given. */
  secretIndex: number;
  /** The key id of the matching secret ({keyId: secret} validators), else null. */
  keyId: string | null;
  candidate: Candidate;
  algorithm: Algorithm;
  /** 32 bytes identifying the signed request (store them with an expiry to refuse a replay). */
  replayKey: Buffer;
}

export interface ValidatorOptions {
  /** The most form parameters a request may have (default 10000). */
  maxParams?: number;
}

export class Validator {
  constructor(secrets: Secrets, options?: ValidatorOptions);
  /** The key ids, one per secret (null where none). Never the secrets. */
  readonly keyIds: Array<string | null>;
  readonly maxParams: number;
  /** The verification, or throws a SignatureError subclass. */
  verify(request: VerifyRequest): Verified;
  isValid(request: VerifyRequest): boolean;
  /** The verdict and, on failure, the likely mistake and its fix. */
  explain(request: VerifyRequest): string;
  sign(request: SignRequest): string;
}

export const DEFAULT_MAX_PARAMS: number;
/** The lower-case hex SHA-256 of a body, as Twilio puts it in bodySHA256. */
export function bodySha256(body: Bytes): string;

/** An unusable secret or option (empty or whitespace secret, maxParams < 1); never carries the secret. */
export class ConfigurationError extends TypeError {
  readonly code: "ERR_INVALID_SECRET" | "ERR_INVALID_OPTION";
}

export type SignatureErrorCode =
  | "ERR_MISSING_SIGNATURE"
  | "ERR_MALFORMED_SIGNATURE"
  | "ERR_MALFORMED_SETTINGS"
  | "ERR_UNSUPPORTED_ALGORITHM"
  | "ERR_MALFORMED_BODY"
  | "ERR_BODY_TOO_LARGE"
  | "ERR_TOO_MANY_PARAMS"
  | "ERR_BODY_REQUIRED"
  | "ERR_NO_ELIGIBLE_SECRET"
  | "ERR_SIGNATURE_MISMATCH"
  | "ERR_BODY_HASH_MISMATCH"
  | "ERR_MALFORMED_REQUEST";

export class SignatureError extends Error {
  readonly code: SignatureErrorCode;
}
export class MalformedRequestError extends SignatureError {}
export class SignatureMismatchError extends SignatureError {}
export class BodyHashMismatchError extends SignatureMismatchError {}
export class MissingSignatureError extends MalformedRequestError {}
export class MalformedSignatureError extends MalformedRequestError {}
export class MalformedSettingsError extends MalformedRequestError {}
export class UnsupportedAlgorithmError extends MalformedRequestError {}
export class MalformedBodyError extends MalformedRequestError {}
export class BodyTooLargeError extends MalformedRequestError {}
export class TooManyParamsError extends MalformedRequestError {}
export class BodyRequiredError extends MalformedRequestError {}
export class NoEligibleSecretError extends MalformedRequestError {}

// --- the twilio-node 6.2 drop-in (require("twilio").validateRequest and friends) ---

export interface WebhookOptions {
  /** Validate requests (default true). */
  validate?: boolean;
  /** The host Twilio calls (overrides the Host header). */
  host?: string;
  /** The protocol Twilio calls ("https"). */
  protocol?: string;
  /** The full URL Twilio calls (overrides host and protocol). */
  url?: string;
}
export interface ExpressLikeRequest {
  protocol: string;
  headers: Record<string, string | string[] | undefined>;
  originalUrl: string;
  body?: unknown;
  rawBody?: string | Buffer;
  header?(name: string): string | undefined;
}
export function getExpectedTwilioSignature(authToken: string, url: string, params: Record<string, unknown> | null): string;
export function getExpectedBodyHash(body: string | Buffer): string;
export function validateRequest(authToken: string, twilioHeader: string, url: string, params: Record<string, unknown> | null | undefined): boolean;
export function validateBody(body: string | Buffer, bodyHash: string): boolean;
export function validateRequestWithBody(authToken: string, twilioHeader: string, url: string, body: string | Buffer): boolean;
export function validateIncomingRequest(request: ExpressLikeRequest, authToken: string, opts?: WebhookOptions): boolean;
export function validateExpressRequest(request: ExpressLikeRequest, authToken: string, opts?: WebhookOptions): boolean;
export function webhook(opts?: WebhookOptions | string, authToken?: string | WebhookOptions): (request: any, response: any, next: (error?: unknown) => void) => void;

// --- web helpers (shared rules: 400, Host / proxies, 413, 415, 403, 500; refusal lines) ---

export interface Logger {
  warn(line: string): void;
  error(line: string): void;
  info?(line: string): void;
}

export interface GuardOptions {
  /** The Auth Token (or secrets); default process.env.TWILIO_AUTH_TOKEN at request time. */
  authToken?: Secrets;
  /** The public origin Twilio calls (plus a mount prefix the app does not see). */
  baseUrl?: string;
  /** Addresses / CIDR ranges of proxies whose X-Forwarded-Proto / X-Forwarded-Host are believed. */
  trustedProxies?: string | readonly string[];
  /** Believe forwarded headers from any peer. */
  trustProxy?: boolean;
  /** The largest body read (default 1 MiB): 413 beyond it. */
  maxBodyBytes?: number;
  /** Where refusal lines go (default console). */
  logger?: Logger;
}

export interface ExpressWebhookOptions extends GuardOptions {
  /** Answer Twilio's retries once: a MemoryStore, a RedisStore, or an Idempotency. */
  idempotency?: IdempotencyStore | Idempotency;
}

/** Express middleware; on success req.twilio (Verified), req.rawBody and req.body (the form). */
export function expressWebhook(options?: ExpressWebhookOptions): (req: any, res: any, next: (error?: unknown) => void) => void;

/** Fastify plugin: app.register(twilioSignature, options); request.twilio, request.rawBody. */
export function twilioSignature(fastify: any, options: ExpressWebhookOptions, done: (error?: Error) => void): void;

/** A shared guard for verifyFetchRequest (reuses its validators). */
export interface Guard {
  readonly maxBodyBytes: number;
}
export function fetchGuard(options?: GuardOptions): Guard;

export interface FetchOptions extends GuardOptions {
  guard?: Guard;
  /** On Node: the IncomingMessage (Hono: c.env.incoming), for the raw target and the peer address. */
  incoming?: IncomingMessage;
  remoteAddress?: string;
}
export type FetchResult =
  | { ok: true; verified: Verified; body: Uint8Array; form: URLSearchParams | null; url: string }
  | { ok: false; status: number; reason: string; response: Response };
export function verifyFetchRequest(request: Request, options?: FetchOptions): Promise<FetchResult>;

export interface WebSocketServerLike {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, callback: (ws: any) => void): void;
  emit(event: "connection", ws: any, req: IncomingMessage): boolean;
}
/** An 'upgrade' listener for a ws server made with {noServer: true}: verified handshakes reach 'connection'. */
export function verifyUpgrade(wss: WebSocketServerLike, options?: GuardOptions): (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
export function verifyHandshake(guard: Guard, req: IncomingMessage): Promise<Verified>;

// --- retries ---

export const TOKEN_HEADER: "I-Twilio-Idempotency-Token";
export const REPLAYED_HEADER: "Idempotent-Replayed";
export function deliveryKey(replayKey: Uint8Array, token: string | Uint8Array): string;
export class StoreError extends Error {}
export class StoredResponse {
  constructor(status: number, headers: Array<[string, string]>, body: Uint8Array | string, replayed?: boolean);
  readonly status: number;
  readonly headers: Array<[string, string]>;
  readonly body: Buffer;
  readonly replayed: boolean;
  encode(): Buffer;
  static decode(data: Buffer): StoredResponse;
}
export type ClaimResult = "ours" | "busy" | StoredResponse;
export interface IdempotencyStore {
  claim(key: string, owner: string, lease: number): ClaimResult | Promise<ClaimResult>;
  complete(key: string, owner: string, response: StoredResponse): boolean | Promise<boolean>;
  release(key: string, owner: string): boolean | Promise<boolean>;
}
export class MemoryStore implements IdempotencyStore {
  constructor(options?: { ttl?: number; maxEntries?: number });
  readonly size: number;
  claim(key: string, owner: string, lease: number): ClaimResult;
  complete(key: string, owner: string, response: StoredResponse): boolean;
  release(key: string, owner: string): boolean;
}
export class RedisStore implements IdempotencyStore {
  /** client: a connected node-redis (4+) or ioredis client. */
  constructor(client: unknown, options?: { ttl?: number; prefix?: string });
  claim(key: string, owner: string, lease: number): Promise<ClaimResult>;
  complete(key: string, owner: string, response: StoredResponse): Promise<boolean>;
  release(key: string, owner: string): Promise<boolean>;
}
export interface IdempotencyOptions {
  wait?: number;
  lease?: number;
  maxBody?: number;
  onStoreError?: "process" | "refuse";
  poll?: number;
  logger?: Logger;
}
export class Idempotency {
  constructor(store?: IdempotencyStore, options?: IdempotencyOptions);
  static of(value: IdempotencyStore | Idempotency, logger?: Logger): Idempotency;
  readonly unguarded: number;
  begin(replayKey: Uint8Array, token: string | undefined | null): Promise<{ answer?: StoredResponse; key?: string; owner?: string }>;
  finish(ticket: { key?: string; owner?: string }, response: StoredResponse | null): Promise<void>;
  release(ticket: { key?: string; owner?: string }): Promise<void>;
  /** Fetch API: the stored Response for a retry, or handler()'s Response (stored for its retries). */
  fetch(verified: Verified, token: string | null | undefined, handler: () => Response | Promise<Response>): Promise<Response>;
}
