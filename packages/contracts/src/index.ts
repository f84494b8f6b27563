export * from './touchpoint.js';
export * from './rejection.js';
// The fast parseTouchpoint takes the name (an explicit export wins over `export *`); the zod-only
// one stays callable as the reference it must agree with.
export { parseTouchpoint } from './touchpoint-fast-path.js';
export { parseTouchpoint as parseTouchpointStrict } from './rejection.js';
export * from './config.js';
export * from './read-models.js';
export * from './lifecycle-events.js';
export * from './ndjson.js';
