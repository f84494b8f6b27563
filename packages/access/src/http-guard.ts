import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import type { Access } from './access-policy.js';
import type { Scope } from './api-keys.js';
import { HttpRefusal, type RefusalMetrics, type RefusalReason } from './refusals.js';
import type { TlsFiles } from './tls.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope a key needs for this route; a route without one is open (the page's files, /health, /metrics). */
    scope?: Scope;
  }
  interface FastifyRequest {
    /** The id of the key that authenticated the request (logged; never its secret). */
    keyId: string | undefined;
    /** Why the request was refused, for the refusal metric. */
    refusal: RefusalReason | undefined;
  }
}

/** Requests per time window for each key (or each client address when it sends no key). */
export interface RateLimit {
  max: number;
  timeWindowMs: number;
}

export const DEFAULT_RATE_LIMIT: RateLimit = { max: 600, timeWindowMs: 60_000 };

/** Content security policy directives, as helmet takes them (camelCase names). */
export type CspDirectives = Record<string, string[]>;

// An API answers data, never a document to render: nothing may load, nobody may frame it.
const API_ONLY_CSP: CspDirectives = { defaultSrc: ["'none'"], frameAncestors: ["'none'"] };

export interface HttpGuardOptions {
  access: Access;
  refusals: RefusalMetrics;
  rateLimit?: RateLimit;
  /** Served over TLS: browsers are then told to keep to HTTPS (HSTS). */
  tls?: boolean;
  /** The page's policy where a service serves one; an API-only policy otherwise. */
  contentSecurityPolicy?: CspDirectives;
  /** One line per request (key id, route, status, time); none when absent. */
  logger?: Logger;
}

/** The same answer to a missing, unknown or insufficient key: nothing says which part was wrong (SPEC §9). */
const REFUSED_BODY = { error: 'unauthorized', message: 'this needs an API key that allows it, sent as: Authorization: Bearer <key>' } as const;

/** The secret of `Authorization: Bearer <secret>`, or undefined. */
function bearerSecret(header: string | undefined): string | undefined {
  const match = /^Bearer[ ]+([^\s]+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

/** Answers a refusal `{error, message}` and keeps its reason for the metric. */
export function sendRefusal(request: FastifyRequest, reply: FastifyReply, refusal: HttpRefusal): FastifyReply {
  request.refusal = refusal.reason;
  return reply.code(refusal.statusCode).headers(refusal.headers).send({ error: refusal.code, message: refusal.message });
}

/** fastify's own refusals (a body over the limit) as ours; undefined for any other error. */
export function asRefusal(error: FastifyError | Error): HttpRefusal | undefined {
  if (error instanceof HttpRefusal) return error;
  if ((error as FastifyError).code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new HttpRefusal(413, 'payload_too_large', error.message, 'too_large');
  return undefined;
}

/**
 * fastify's server options that bound every request in time (SPEC §9), and TLS when given. The
 * idle timeout outlasts the longest computation a route may run (its own deadline is shorter).
 */
export function boundedServerOptions(options: { tls?: TlsFiles | undefined; requestTimeoutMs?: number }): Pick<FastifyServerOptions, 'connectionTimeout' | 'requestTimeout' | 'keepAliveTimeout'> & {
  https?: TlsFiles;
} {
  return {
    // A socket with nothing sent or received for this long is closed (slow-loris, stuck clients).
    connectionTimeout: 120_000,
    // The whole request, body included, must have arrived by then.
    requestTimeout: options.requestTimeoutMs ?? 300_000,
    keepAliveTimeout: 10_000,
    ...(options.tls !== undefined ? { https: options.tls } : {}),
  };
}

/**
 * Access control and bounds for a service's routes (SPEC §9): security headers, the key check of
 * each route that names a scope (401 without a valid key, 403 with one that lacks the scope, the
 * same body), a rate limit per key (per address without one), a log line per request, and the
 * refusal metric. Register it before the routes: the rate limit sees only routes declared after.
 */
export async function guardHttp(app: FastifyInstance, options: HttpGuardOptions): Promise<void> {
  const { access, refusals, logger } = options;
  const limit = options.rateLimit ?? DEFAULT_RATE_LIMIT;
  app.decorateRequest('keyId', undefined);
  app.decorateRequest('refusal', undefined);

  await app.register(helmet, {
    contentSecurityPolicy: { useDefaults: false, directives: options.contentSecurityPolicy ?? API_ONLY_CSP },
    // Only over TLS: HSTS sent over plain HTTP is ignored, and on localhost would outlive the test.
    strictTransportSecurity: options.tls ? { maxAge: 31_536_000, includeSubDomains: false } : false,
  });

  app.addHook('onRequest', async (request, reply) => {
    const scope = request.routeOptions.config.scope;
    if (scope === undefined || access.kind === 'open') return;
    const secret = bearerSecret(request.headers.authorization);
    const key = secret === undefined ? undefined : access.ring.authenticate(secret);
    if (key === undefined) {
      request.refusal = secret === undefined ? 'missing_key' : 'unknown_key';
      return reply.code(401).header('www-authenticate', 'Bearer realm="lifecycle"').send(REFUSED_BODY);
    }
    request.keyId = key.id;
    if (!key.scopes.includes(scope)) {
      request.refusal = 'missing_scope';
      return reply.code(403).send(REFUSED_BODY);
    }
  });

  // Route-level hooks run after the hook above, so the key is known when the limit is counted.
  await app.register(rateLimit, {
    max: limit.max,
    timeWindow: limit.timeWindowMs,
    keyGenerator: (request) => (request.keyId !== undefined ? `key:${request.keyId}` : `address:${request.ip}`),
    errorResponseBuilder: (_request, context) =>
      new HttpRefusal(429, 'rate_limited', `more than ${context.max} requests in ${limit.timeWindowMs / 1000} s: retry in ${context.after}`, 'rate_limited'),
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    if (request.refusal !== undefined) refusals.record(route, request.refusal);
    if (logger === undefined) return;
    const line = {
      method: request.method,
      route,
      path: request.url.split('?')[0],
      status: reply.statusCode,
      keyId: request.keyId ?? null,
      ...(request.refusal !== undefined ? { refused: request.refusal } : {}),
      ms: Math.round(reply.elapsedTime),
      address: request.ip,
    };
    // Probes and scrapes come every few seconds: not worth a line each unless asked.
    if (request.routeOptions.config.scope === undefined && reply.statusCode < 400) logger.debug(line, 'request');
    else logger.info(line, 'request');
  });
}

/** Route options of a route that needs a key with `scope`. */
export const needs = (scope: Scope) => ({ config: { scope } });

/** Route options of a route that stays open and is not rate limited (probes, Prometheus). */
export const OPEN_UNLIMITED = { config: { rateLimit: false as const } };
