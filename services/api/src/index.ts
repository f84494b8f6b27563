export { buildApi, type ApiOptions } from './app.js';
export { toCsv } from './csv.js';
export { compareCodePoints } from './customer-pages.js';
export { ExportSlots, inProcessExports, type ExportRunner } from './export-runner.js';
export { workerExports, type WorkerExportOptions } from './worker-exports.js';
export { boundedNdjson, type BodyLimits } from './bounded-body.js';
