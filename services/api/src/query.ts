import { EARLIEST_INSTANT, IdentifierSchema, InstantSchema, LATEST_INSTANT } from '@lifecycle/contracts';

/** A mistake in the request: answered 400 `{error: 'bad_request', message}`. */
export class BadRequest extends Error {
  override readonly name = 'BadRequest';
}

/** Caller input inside a message: escaped (JSON.stringify leaves DEL and C1 controls raw), and cut short. */
export const quote = (text: string, max = 64): string =>
  JSON.stringify(text.slice(0, max)).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) +
  (text.length > max ? '…' : '');

/** Reads one parameter's text, or throws BadRequest with a message naming it. */
type ParamParser<T> = (text: string, name: string) => T;
type ParsedQuery<P> = { [K in keyof P]?: P[K] extends ParamParser<infer T> ? T : never };

/**
 * The one check of every query string: each parameter known, given once, with a valid value.
 * fastify's schema validation would drop an unknown (misspelled) parameter silently instead.
 */
export function queryParser<P extends Record<string, ParamParser<unknown>>>(params: P): (query: unknown) => ParsedQuery<P> {
  const known = Object.keys(params);
  return (query) => {
    const parsed: Record<string, unknown> = {};
    for (const [name, value] of Object.entries((query ?? {}) as Record<string, unknown>)) {
      const parse = Object.hasOwn(params, name) ? params[name] : undefined;
      if (parse === undefined) throw new BadRequest(`unknown query parameter ${quote(name)}; known: ${known.join(', ') || 'none'}`);
      if (typeof value !== 'string') throw new BadRequest(`query parameter ${name} is given more than once`);
      parsed[name] = parse(value, name);
    }
    return parsed as ParsedQuery<P>;
  };
}

export const oneOf =
  <const T extends string>(...values: T[]): ParamParser<T> =>
  (text, name) => {
    if ((values as string[]).includes(text)) return text as T;
    throw new BadRequest(`${name} must be one of ${values.join(', ')}; got ${quote(text)}`);
  };

/**
 * Milliseconds of an instant as `occurredAt` takes it: a far one is a mistake, and an instant in
 * year 9999 would make the API compute millennia of empty cohort periods.
 */
export const instant: ParamParser<number> = (text, name) => {
  if (InstantSchema.safeParse(text).success) return Date.parse(text);
  throw new BadRequest(
    `${name} must be an ISO-8601 instant with Z or an offset, from ${EARLIEST_INSTANT} to before ${LATEST_INSTANT}, e.g. 2024-06-30T23:59:59Z; got ${quote(text)}`,
  );
};

/** A whole number of days, 1 to 3 660 (a rolling window). */
export const days: ParamParser<number> = (text, name) => {
  const n = Number(text);
  if (/^[0-9]+$/.test(text) && n >= 1 && n <= 3660) return n;
  throw new BadRequest(`${name} must be a whole number of days from 1 to 3660; got ${quote(text)}`);
};

/** A page size: a whole number from 1 to `max`. */
export const pageSize =
  (max: number): ParamParser<number> =>
  (text, name) => {
    const n = Number(text);
    if (/^[0-9]+$/.test(text) && n >= 1 && n <= max) return n;
    throw new BadRequest(`${name} must be a whole number from 1 to ${max}; got ${quote(text)}`);
  };

/** Any text the contract takes as an id (a cursor is the last customerId of the page before). */
export const identifier: ParamParser<string> = (text, name) => {
  const parsed = IdentifierSchema.safeParse(text);
  if (parsed.success) return text;
  throw new BadRequest(`${name} must be a customer id (the last one of the page before, as the next link gives it); got ${quote(text)}`);
};
