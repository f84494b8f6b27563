import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

/** Adds `GET /metrics` (Prometheus text format) to an app. */
export function serveMetrics(app: FastifyInstance, registry: Registry): void {
  app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
}

/** `GET /metrics` and `GET /health` for a service without an API of its own. */
export async function startOpsServer(options: { port: number; host: string; registry: Registry; health: () => Promise<object> }): Promise<{ address: string; close: () => Promise<void> }> {
  const app = Fastify({ logger: false });
  serveMetrics(app, options.registry);
  app.get('/health', async () => ({ status: 'ok', ...(await options.health()) }));
  const address = await app.listen({ port: options.port, host: options.host });
  return { address, close: () => app.close() };
}

/** Resolves on SIGINT or SIGTERM: what a service waits for before it shuts down. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}
