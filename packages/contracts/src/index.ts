export * from './touchpoint.js';
export * from './rejection.js';
export { parseTouchpoint } from './touchpoint-fast-path.js';
export * from './config.js';
export * from './read-models.js';
export * from './lifecycle-events.js';
export * from './ndjson.js';
