import { MAX_NESTING, MAX_TOUCHPOINT_BYTES, isBlankLine, ndjsonLines, parseTouchpoint, validateTouchpoint } from '@lifecycle/contracts';

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
    ['a type nested deeper than JSON.stringify can go', `{"type":${'['.repeat(20_000)}${']'.repeat(20_000)}}`, 'unknown_type', 'type'],
    ['occurredAt without offset', JSON.stringify({ ...purchase, occurredAt: '2024-05-01T10:00:00' }), 'invalid_field', 'occurredAt'],
    ['absurd occurredAt', JSON.stringify({ ...purchase, occurredAt: '2999-01-01T00:00:00Z' }), 'invalid_field', 'occurredAt'],
    ['negative amount', JSON.stringify({ ...purchase, properties: { orderId: 'o', amount: { amountMinor: -1, currency: 'EUR' } } }), 'invalid_field', 'properties.amount.amountMinor'],
    ['fractional amount', JSON.stringify({ ...purchase, properties: { orderId: 'o', amount: { amountMinor: 1.5, currency: 'EUR' } } }), 'invalid_field', 'properties.amount.amountMinor'],
    ['lower-case currency', JSON.stringify({ ...purchase, properties: { orderId: 'o', amount: { amountMinor: 1, currency: 'eur' } } }), 'invalid_field', 'properties.amount.currency'],
    ['missing customerId', JSON.stringify({ ...purchase, customerId: undefined }), 'invalid_field', 'customerId'],
    ['anonymous impression without anonymousId', JSON.stringify({ id: 'i', type: 'ad_impression', occurredAt: '2024-01-01T00:00:00Z', properties: { channel: 's' } }), 'invalid_field', 'customerId'],
    ['id too long', JSON.stringify({ ...purchase, id: 'x'.repeat(129) }), 'invalid_field', 'id'],
    ['oversized payload', JSON.stringify({ ...purchase, blob: 'x'.repeat(MAX_TOUCHPOINT_BYTES) }), 'payload_too_large', ''],
    ['NUL in customerId', JSON.stringify({ ...purchase, customerId: 'c-\u0000x' }), 'invalid_field', 'customerId'],
    ['unpaired surrogate in customerId', JSON.stringify({ ...purchase, customerId: 'c-\ud800x' }), 'invalid_field', 'customerId'],
    ['escape character in id', JSON.stringify({ ...purchase, id: 'p\u001b[31m' }), 'invalid_field', 'id'],
    ['C1 control in a channel', JSON.stringify({ ...purchase, type: 'registration', properties: { channel: 'e\u009b' } }), 'invalid_field', 'properties.channel'],
    ['bell in free text', JSON.stringify({ ...purchase, source: 'crm\u0007' }), 'invalid_field', 'source'],
    ['NUL in an unknown nested field', JSON.stringify({ ...purchase, extra: { list: ['ok', 'x\u0000'] } }), 'invalid_field', 'extra.list.1'],
    ['unpaired surrogate in a field name', `{"id":"p","type":"purchase","occurredAt":"2024-01-01T00:00:00Z","customerId":"c","\\udc00":1,"properties":{"orderId":"o","amount":{"amountMinor":1,"currency":"EUR"}}}`, 'invalid_field', '\udc00'],
    ['a __proto__ field', JSON.stringify(purchase).replace('{', '{"__proto__":{"x":1},'), 'invalid_field', '__proto__'],
    ['nesting deeper than the limit', JSON.stringify({ ...purchase, deep: JSON.parse('['.repeat(MAX_NESTING) + ']'.repeat(MAX_NESTING)) }), 'invalid_field', 'deep' + '.0'.repeat(MAX_NESTING - 1)],
  ])('rejects %s with a machine-readable reason', (_name, line, reason, path) => {
    const rejection = rejected(line);
    expect(rejection.reason).toBe(reason);
    expect(rejection.issues.map((i) => i.path)).toContain(path);
    expect(rejection.issues.every((i) => i.message.length > 0)).toBe(true);
  });

  test('a rejection names the type when it is one of the six, for the metric label, and nothing else', () => {
    expect(rejected(JSON.stringify({ ...purchase, customerId: undefined })).type).toBe('purchase');
    expect(rejected(JSON.stringify({ ...purchase, extra: 'a\u0000' })).type).toBe('purchase');
    expect(rejected(JSON.stringify({ ...purchase, type: 'c-42' })).type).toBeUndefined();
  });

  test('text that cannot be decoded as UTF-8 is malformed, not repaired', () => {
    const bytes = Buffer.concat([Buffer.from('{"id":"p","customerId":"c-'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    expect(parseTouchpoint(bytes)).toMatchObject({ ok: false, rejection: { reason: 'malformed_json', issues: [{ message: 'the text is not valid UTF-8' }] } });
  });

  test('a leading byte order mark is ignored; tab and line breaks in free text and any other Unicode are kept', () => {
    const line = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ ...purchase, customerId: 'c-\u{1F600}-ü', source: 'crm\texport\r\n' }))]);
    expect(parseTouchpoint(line)).toMatchObject({ ok: true, touchpoint: { customerId: 'c-\u{1F600}-ü', source: 'crm\texport\r\n' } });
    expect(parseTouchpoint('\uFEFF' + JSON.stringify(purchase)).ok).toBe(true);
  });

  test('the last nesting level allowed is accepted', () => {
    const deep = JSON.parse('['.repeat(MAX_NESTING - 1) + ']'.repeat(MAX_NESTING - 1));
    expect(validateTouchpoint({ ...purchase, deep }).ok).toBe(true);
  });
});

describe('NDJSON framing', () => {
  test('splits byte chunks into lines wherever the chunks are cut, dropping CR before LF', async () => {
    const text = Buffer.from('{"a":1}\r\n\n{"b":"ü"}\n{"c":3}');
    for (let cut = 0; cut <= text.length; cut += 1) {
      const lines: string[] = [];
      for await (const line of ndjsonLines([text.subarray(0, cut), text.subarray(cut)])) lines.push(line.toString('utf8'));
      expect(lines).toEqual(['{"a":1}', '', '{"b":"ü"}', '{"c":3}']);
    }
  });

  test('blank lines are whitespace only', () => {
    expect(isBlankLine(Buffer.from(' \t\r'))).toBe(true);
    expect(isBlankLine(Buffer.from(' x'))).toBe(false);
    expect(isBlankLine('  ')).toBe(true);
  });
});
