export { AccessConfigError, newApiKey, parseKeyRequest, readApiKeyFile, sha256Hex, type ApiKey, type Scope } from './api-keys.js';
export { KeyRing } from './key-ring.js';
export { isLoopbackHost, resolveAccess, type Access, type AccessSettings } from './access-policy.js';
export { readTlsFiles, type TlsFiles } from './tls.js';
export { HttpRefusal, RefusalMetrics, assertDeclaredLength, bodyTooLarge, type RefusalReason } from './refusals.js';
export { OPEN_UNLIMITED, asRefusal, boundedServerOptions, guardHttp, needs, sendRefusal, type CspDirectives, type HttpGuardOptions, type RateLimit } from './http-guard.js';
