export { LifecycleMetrics, createRegistry, type MetricSources } from './metrics.js';
export { createLogger } from './logger.js';
export { serveMetrics, startOpsServer, untilSignal } from './ops-server.js';
