import { isUtf8 } from 'node:buffer';
import { z } from 'zod';
import { EARLIEST_INSTANT, LATEST_INSTANT, TOUCHPOINT_TYPES, TouchpointSchema, type Touchpoint, type TouchpointType } from './touchpoint.js';

/** Largest accepted touchpoint, in UTF-8 bytes of its JSON text. */
export const MAX_TOUCHPOINT_BYTES = 64 * 1024;

/**
 * Why a touchpoint was rejected. A small fixed set: it is a metric label
 * (`lifecycle_touchpoints_rejected_total{reason}`) and the dead-letter record's `reason`.
 */
export const REJECTION_REASONS = [
  'malformed_json',
  'payload_too_large',
  'not_an_object',
  'unknown_type',
  'invalid_field',
  'id_conflict',
  // Valid by the contract, yet the store refused it again and again, alone (SPEC §6.4: it is
  // set aside so that the rest moves on). A bug of ours or of the store: worth a look each time.
  'store_rejected',
] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

export interface FieldIssue {
  /** Dotted path of the offending field, `""` for the whole touchpoint. */
  path: string;
  message: string;
}

export interface Rejection {
  reason: RejectionReason;
  issues: FieldIssue[];
  /** The touchpoint's type, when it is one of the six (a metric label: never anything else). */
  type?: TouchpointType;
}

export type ParseResult = { ok: true; touchpoint: Touchpoint } | { ok: false; rejection: Rejection };

const reject = (reason: RejectionReason, path: string, message: string): ParseResult => ({
  ok: false,
  rejection: { reason, issues: [{ path, message }] },
});

const knownTypes: ReadonlySet<string> = new Set(TOUCHPOINT_TYPES);

/** Deepest nesting of objects and arrays in a touchpoint (PostgreSQL's JSON parser recurses). */
export const MAX_NESTING = 32;

// No store can hold U+0000 (PostgreSQL text and jsonb refuse it) nor an unpaired surrogate
// (not encodable as UTF-8); `__proto__` would be dropped by any JavaScript object copy.
const UNSTORABLE = /[\u0000\uD800-\uDFFF]/u;

interface Unstorable {
  /** The path from the offending value up to the root (built only when something is found). */
  reversedPath: string[];
  message: string;
}

/**
 * The first place, anywhere in the value (unknown extra fields and keys included), that no store
 * can hold. Recursive: the byte limit and MAX_NESTING bound the work and the depth.
 */
function unstorable(value: unknown, depth: number): Unstorable | undefined {
  if (typeof value === 'string') {
    return UNSTORABLE.test(value) ? { reversedPath: [], message: 'must not contain U+0000 (NUL) or an unpaired UTF-16 surrogate: no store can hold them' } : undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  if (depth >= MAX_NESTING) return { reversedPath: [], message: `must not nest objects and arrays deeper than ${MAX_NESTING} levels` };
  for (const key in value) {
    if (key === '__proto__' || UNSTORABLE.test(key)) {
      return { reversedPath: [key], message: 'is not a usable field name (__proto__, U+0000 or an unpaired surrogate)' };
    }
    const found = unstorable((value as Record<string, unknown>)[key], depth + 1);
    if (found) {
      found.reversedPath.push(key);
      return found;
    }
  }
  return undefined;
}

/** A value in a message, bounded: never the whole of a huge or deeply nested value. */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
  if (Array.isArray(value)) return 'an array';
  if (value === null || typeof value !== 'object') return String(value);
  return 'an object';
}

/** Validates an already-decoded JSON value against the touchpoint contract (SPEC §2). */
export function validateTouchpoint(value: unknown): ParseResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return reject('not_an_object', '', 'a touchpoint must be a JSON object');
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string' || !knownTypes.has(type)) {
    return reject('unknown_type', 'type', `must be one of ${TOUCHPOINT_TYPES.join(', ')}; got ${describe(type)}`);
  }
  const known = type as TouchpointType;
  const found = unstorable(value, 0);
  if (found) return { ok: false, rejection: { reason: 'invalid_field', type: known, issues: [{ path: found.reversedPath.reverse().join('.'), message: found.message }] } };
  const parsed = TouchpointSchema.safeParse(value);
  if (parsed.success) return { ok: true, touchpoint: parsed.data };
  return {
    ok: false,
    rejection: {
      reason: 'invalid_field',
      type: known,
      issues: parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message })),
    },
  };
}

const BOM = '\uFEFF';

/**
 * Decodes and validates one touchpoint given as JSON text (one NDJSON line, one message). Bytes
 * are checked to be UTF-8 (JSON's encoding, RFC 8259 §8.1) instead of having bad sequences
 * silently replaced; a leading byte order mark, which that RFC lets a parser ignore, is ignored.
 * The definition of the contract: `parseTouchpoint` (touchpoint-fast-path.ts) answers the common
 * line faster and leaves every other line to this one.
 */
export function parseTouchpointStrict(input: string | Uint8Array): ParseResult {
  const bytes = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  if (bytes > MAX_TOUCHPOINT_BYTES) {
    return reject('payload_too_large', '', `a touchpoint may have at most ${MAX_TOUCHPOINT_BYTES} bytes`);
  }
  if (typeof input !== 'string' && !isUtf8(input)) return reject('malformed_json', '', 'the text is not valid UTF-8');
  let text = typeof input === 'string' ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('utf8');
  if (text.startsWith(BOM)) text = text.slice(1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return reject('malformed_json', '', (error as Error).message);
  }
  return validateTouchpoint(value);
}

/**
 * The touchpoint schema as JSON Schema (draft 2020-12), for producers outside TypeScript. What
 * JSON Schema cannot say (the instant range, the byte limit) is in the descriptions.
 */
export function touchpointJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(TouchpointSchema, { target: 'draft-2020-12', io: 'input' }) as unknown as {
    oneOf: { properties: { type: { const: string } }; anyOf?: unknown }[];
  };
  // The refinement on ad_impression, which zod cannot translate: customerId or anonymousId.
  const impression = schema.oneOf.find((branch) => branch.properties.type.const === 'ad_impression');
  if (impression) impression.anyOf = [{ required: ['customerId'] }, { required: ['anonymousId'] }];
  return {
    $id: 'https://github.com/customer-lifecycle/customer-lifecycle/touchpoint.v1.schema.json',
    title: 'Touchpoint, schema version 1',
    description:
      `One customer touchpoint (SPEC §2). occurredAt must lie in [${EARLIEST_INSTANT}, ${LATEST_INSTANT}); ` +
      `a touchpoint's JSON text may have at most ${MAX_TOUCHPOINT_BYTES} bytes, in UTF-8. Unknown extra fields are kept, ` +
      `but no string or field name anywhere may hold U+0000 or an unpaired surrogate, no field may be named __proto__, ` +
      `and objects and arrays nest at most ${MAX_NESTING} levels deep.`,
    ...schema,
  };
}
