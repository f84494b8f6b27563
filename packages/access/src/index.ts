export { AccessConfigError, ApiKeyFileSchema, SCOPES, newApiKey, parseKeyRequest, readApiKeyFile, sha256Hex, type ApiKey, type Scope } from './api-keys.js';
export { KeyRing, reloadKeysOnSighup } from './key-ring.js';
export { isLoopbackHost, resolveAccess, type Access, type AccessSettings } from './access-policy.js';
export { readTlsFiles, type TlsFiles } from './tls.js';
export { HttpRefusal, REFUSAL_REASONS, RefusalMetrics, type RefusalReason } from './refusals.js';
export {
  DEFAULT_RATE_LIMIT,
  OPEN_UNLIMITED,
  asRefusal,
  boundedServerOptions,
  guardHttp,
  needs,
  sendRefusal,
  type CspDirectives,
  type HttpGuardOptions,
  type RateLimit,
} from './http-guard.js';
