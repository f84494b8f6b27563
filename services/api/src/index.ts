export { buildApi, type ApiOptions } from './app.js';
export { toCsv } from './csv.js';
