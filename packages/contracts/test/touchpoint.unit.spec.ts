import { parseTouchpoint, validateTouchpoint, MAX_TOUCHPOINT_BYTES } from '@lifecycle/contracts';

const purchase = {
  id: 'p-1',
  type: 'purchase',
  occurredAt: '2024-05-01T10:00:00.123+02:00',
  customerId: 'c-1',
  properties: { orderId: 'o-1', amount: { amountMinor: 1999, currency: 'EUR' } },
};

const rejected = (value: unknown) => {
  const result = typeof value === 'string' ? parseTouchpoint(value) : validateTouchpoint(value);
  if (result.ok) throw new Error('expected a rejection');
  return result.rejection;
};

describe('touchpoint contract (SPEC §2)', () => {
  test('accepts every type with its properties, and keeps unknown extra fields', () => {
    const result = validateTouchpoint({ ...purchase, extra: 1, properties: { ...purchase.properties, coupon: 'X' } });
    expect(result.ok && result.touchpoint).toMatchObject({ extra: 1, properties: { coupon: 'X' } });
    for (const t of [
      { id: 'a', type: 'ad_impression', occurredAt: '2024-01-01T00:00:00Z', anonymousId: 'v', properties: { channel: 'search', cost: { amountMinor: 3, currency: 'USD' } } },
      { id: 'b', type: 'registration', occurredAt: '2024-01-01T00:00:00Z', customerId: 'c' },
      { id: 'c', type: 'renewal', occurredAt: '2024-01-01T00:00:00Z', customerId: 'c', properties: { subscriptionId: 's', amount: { amountMinor: 0, currency: 'USD' } } },
      { id: 'd', type: 'payment_failure', occurredAt: '2024-01-01T00:00:00-05:00', customerId: 'c', properties: { reason: 'card_declined' } },
      { id: 'e', type: 'referral', occurredAt: '2024-01-01T00:00:00Z', customerId: 'c', properties: { referredCustomerId: 'd' } },
    ]) {
      expect(validateTouchpoint(t)).toMatchObject({ ok: true });
    }
  });

  test.each([
    ['malformed JSON', '{"id": "x",', 'malformed_json', ''],
    ['not an object', '[1, 2]', 'not_an_object', ''],
    ['unknown type', JSON.stringify({ ...purchase, type: 'refund' }), 'unknown_type', 'type'],
    ['occurredAt without offset', JSON.stringify({ ...purchase, occurredAt: '2024-05-01T10:00:00' }), 'invalid_field', 'occurredAt'],
    ['absurd occurredAt', JSON.stringify({ ...purchase, occurredAt: '2999-01-01T00:00:00Z' }), 'invalid_field', 'occurredAt'],
    ['negative amount', JSON.stringify({ ...purchase, properties: { orderId: 'o', amount: { amountMinor: -1, currency: 'EUR' } } }), 'invalid_field', 'properties.amount.amountMinor'],
    ['fractional amount', JSON.stringify({ ...purchase, properties: { orderId: 'o', amount: { amountMinor: 1.5, currency: 'EUR' } } }), 'invalid_field', 'properties.amount.amountMinor'],
    ['lower-case currency', JSON.stringify({ ...purchase, properties: { orderId: 'o', amount: { amountMinor: 1, currency: 'eur' } } }), 'invalid_field', 'properties.amount.currency'],
    ['missing customerId', JSON.stringify({ ...purchase, customerId: undefined }), 'invalid_field', 'customerId'],
    ['anonymous impression without anonymousId', JSON.stringify({ id: 'i', type: 'ad_impression', occurredAt: '2024-01-01T00:00:00Z', properties: { channel: 's' } }), 'invalid_field', 'customerId'],
    ['id too long', JSON.stringify({ ...purchase, id: 'x'.repeat(129) }), 'invalid_field', 'id'],
    ['oversized payload', JSON.stringify({ ...purchase, blob: 'x'.repeat(MAX_TOUCHPOINT_BYTES) }), 'payload_too_large', ''],
  ])('rejects %s with a machine-readable reason', (_name, line, reason, path) => {
    const rejection = rejected(line);
    expect(rejection.reason).toBe(reason);
    expect(rejection.issues.map((i) => i.path)).toContain(path);
    expect(rejection.issues.every((i) => i.message.length > 0)).toBe(true);
  });
});
