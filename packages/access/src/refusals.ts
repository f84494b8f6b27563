import { Counter, type Registry } from 'prom-client';

/** Why a request was refused: a bounded set, the label of `lifecycle_http_refusals_total`. */
export const REFUSAL_REASONS = ['missing_key', 'unknown_key', 'missing_scope', 'rate_limited', 'busy', 'too_large', 'timeout'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** A request refused on purpose, answered `{error: code, message}` with its status. */
export class HttpRefusal extends Error {
  override readonly name = 'HttpRefusal';
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly reason?: RefusalReason,
    /** Sent with the answer, e.g. `retry-after`. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** 413 for a request body over `maxBytes`. */
export const bodyTooLarge = (maxBytes: number) =>
  new HttpRefusal(413, 'payload_too_large', `a request body may have at most ${maxBytes} bytes; send the touchpoints in several requests`, 'too_large');

/** 413 for a declared length over the limit, before a byte of the body is read. */
export function assertDeclaredLength(contentLength: string | undefined, limits: { maxBytes: number }): void {
  if (contentLength !== undefined && Number(contentLength) > limits.maxBytes) throw bodyTooLarge(limits.maxBytes);
}

/** Refused requests by route pattern (never the URL: it holds ids) and reason. */
export class RefusalMetrics {
  readonly refusals: Counter<'route' | 'reason'>;

  constructor(registry: Registry) {
    this.refusals = new Counter({
      name: 'lifecycle_http_refusals_total',
      help: 'HTTP requests refused: no key, an unknown key, a key without the scope, over the rate limit, too many computations at once, a body too large, too slow.',
      labelNames: ['route', 'reason'] as const,
      registers: [registry],
    });
  }

  record(route: string, reason: RefusalReason): void {
    this.refusals.inc({ route, reason });
  }
}
