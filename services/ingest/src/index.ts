export { buildIngestApi, type IngestApiOptions } from './app.js';
