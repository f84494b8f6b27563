import { z } from 'zod';

/** Event types of schema version 1, in canonical rank order (SPEC §2). */
export const TOUCHPOINT_TYPES = [
  'ad_impression',
  'registration',
  'purchase',
  'renewal',
  'payment_failure',
  'referral',
] as const;
export type TouchpointType = (typeof TOUCHPOINT_TYPES)[number];

// Instants outside this range are "absurd values" (SPEC §6.4): almost always a unit mistake
// (seconds vs milliseconds) or a placeholder date, never a real customer touchpoint.
export const EARLIEST_INSTANT = '1970-01-01T00:00:00Z';
export const LATEST_INSTANT = '2100-01-01T00:00:00Z';
const earliestMs = Date.parse(EARLIEST_INSTANT);
const latestMs = Date.parse(LATEST_INSTANT);

/** An instant as `occurredAt` takes it (also `--as-of` and `?asOf=`): ISO-8601 with Z or an offset, in range. */
export const InstantSchema = z
  .iso.datetime({ offset: true })
  .refine((s) => {
    const ms = Date.parse(s);
    return ms >= earliestMs && ms < latestMs;
  }, `must be between ${EARLIEST_INSTANT} and ${LATEST_INSTANT}`);

// What a store, a CSV cell or a terminal cannot take, decided per kind of string (SPEC §2):
// identifiers and channels (keys, labels, file names of exports) hold no control character
// (C0, DEL, C1) and no unpaired UTF-16 surrogate; free text may hold tab, line feed and
// carriage return, no other control character. Written as explicit ranges, not \p{Cc}, so that JSON
// Schema validators without Unicode property escapes read the same pattern; with the `u` flag
// (ajv's default) the surrogate range matches only unpaired surrogates.
const NO_CONTROL = /^[^\u0000-\u001F\u007F-\u009F\uD800-\uDFFF]*$/u;
const TEXT = /^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\uD800-\uDFFF]*$/u;

/** An id (`id`, `customerId`, …): 1–128 characters, no control character, no unpaired surrogate. */
export const IdentifierSchema = z.string().min(1).max(128).regex(NO_CONTROL, 'must not contain control characters or unpaired surrogates');
const identifier = IdentifierSchema;
const text = (max: number) => z.string().max(max).regex(TEXT, 'must not contain control characters other than tab and line breaks, nor unpaired surrogates');

// parseTouchpoint reads common lines by these rules without zod (touchpoint-fast-path.ts): a
// change here needs the same change there (its test compares the two on generated lines).

// Loose like every object of the contract: unknown extra fields are kept (SPEC §2).
export const MoneySchema = z.looseObject({
  amountMinor: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO-4217 code of 3 upper-case letters'),
});
export type Money = z.infer<typeof MoneySchema>;

const envelope = {
  id: identifier,
  occurredAt: InstantSchema,
  customerId: identifier,
  anonymousId: identifier.optional(),
  source: text(256).optional(),
};

const properties = <S extends z.ZodRawShape>(shape: S) => z.looseObject(shape);

export const AdImpressionSchema = z
  .looseObject({
    ...envelope,
    type: z.literal('ad_impression'),
    customerId: identifier.optional(),
    properties: properties({
      channel: identifier,
      campaign: text(256).optional(),
      cost: MoneySchema.optional(),
    }),
  })
  .refine((t) => t.customerId !== undefined || t.anonymousId !== undefined, {
    message: 'an ad_impression needs customerId or anonymousId',
    path: ['customerId'],
  });

export const RegistrationSchema = z.looseObject({
  ...envelope,
  type: z.literal('registration'),
  properties: properties({
    channel: identifier.optional(),
    campaign: text(256).optional(),
    referredBy: identifier.optional(),
  }).default({}),
});

export const PurchaseSchema = z.looseObject({
  ...envelope,
  type: z.literal('purchase'),
  properties: properties({ orderId: identifier, amount: MoneySchema }),
});

export const RenewalSchema = z.looseObject({
  ...envelope,
  type: z.literal('renewal'),
  properties: properties({
    subscriptionId: identifier,
    amount: MoneySchema,
    plan: text(128).optional(),
  }),
});

export const PaymentFailureSchema = z.looseObject({
  ...envelope,
  type: z.literal('payment_failure'),
  properties: properties({
    subscriptionId: identifier.optional(),
    amount: MoneySchema.optional(),
    reason: text(256).optional(),
  }).default({}),
});

export const ReferralSchema = z.looseObject({
  ...envelope,
  type: z.literal('referral'),
  properties: properties({
    referredCustomerId: identifier.optional(),
    code: text(128).optional(),
  }).default({}),
});

export const TouchpointSchema = z.discriminatedUnion('type', [
  AdImpressionSchema,
  RegistrationSchema,
  PurchaseSchema,
  RenewalSchema,
  PaymentFailureSchema,
  ReferralSchema,
]);

export type Touchpoint = z.infer<typeof TouchpointSchema>;
export type TouchpointOf<T extends TouchpointType> = Extract<Touchpoint, { type: T }>;
