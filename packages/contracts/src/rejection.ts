import { z } from 'zod';
import { EARLIEST_INSTANT, LATEST_INSTANT, TOUCHPOINT_TYPES, TouchpointSchema, type Touchpoint } from './touchpoint.js';

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
}

export type ParseResult = { ok: true; touchpoint: Touchpoint } | { ok: false; rejection: Rejection };

const reject = (reason: RejectionReason, path: string, message: string): ParseResult => ({
  ok: false,
  rejection: { reason, issues: [{ path, message }] },
});

const knownTypes: ReadonlySet<string> = new Set(TOUCHPOINT_TYPES);

/** Validates an already-decoded JSON value against the touchpoint contract (SPEC §2). */
export function validateTouchpoint(value: unknown): ParseResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return reject('not_an_object', '', 'a touchpoint must be a JSON object');
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string' || !knownTypes.has(type)) {
    return reject('unknown_type', 'type', `must be one of ${TOUCHPOINT_TYPES.join(', ')}; got ${JSON.stringify(type) ?? 'nothing'}`);
  }
  const parsed = TouchpointSchema.safeParse(value);
  if (parsed.success) return { ok: true, touchpoint: parsed.data };
  return {
    ok: false,
    rejection: {
      reason: 'invalid_field',
      issues: parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message })),
    },
  };
}

/** Decodes and validates one touchpoint given as JSON text (one NDJSON line, one message). */
export function parseTouchpoint(text: string): ParseResult {
  if (Buffer.byteLength(text, 'utf8') > MAX_TOUCHPOINT_BYTES) {
    return reject('payload_too_large', '', `a touchpoint may have at most ${MAX_TOUCHPOINT_BYTES} bytes`);
  }
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
      `a touchpoint's JSON text may have at most ${MAX_TOUCHPOINT_BYTES} bytes. Unknown extra fields are kept.`,
    ...schema,
  };
}
