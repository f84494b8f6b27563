import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { touchpointJsonSchema, validateTouchpoint } from '@lifecycle/contracts';

const file = new URL('../schema/touchpoint.v1.schema.json', import.meta.url);

describe('published JSON Schema', () => {
  test('the checked-in file is what the zod contract generates (regenerate: npm run schema)', () => {
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(touchpointJsonSchema());
  });

  test('agrees with the zod contract on valid and invalid touchpoints', () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    (addFormats as unknown as (a: Ajv2020) => void)(ajv);
    const validate = ajv.compile(touchpointJsonSchema());
    const base = { id: 't', occurredAt: '2024-01-01T00:00:00+01:00', customerId: 'c' };
    const samples: unknown[] = [
      { ...base, type: 'purchase', properties: { orderId: 'o', amount: { amountMinor: 5, currency: 'USD' } } },
      { ...base, type: 'purchase', properties: { orderId: 'o', amount: { amountMinor: 5, currency: 'usd' } } },
      { ...base, type: 'registration', properties: { channel: 'email' }, extra: true },
      { ...base, type: 'registration', occurredAt: '2024-01-01T00:00:00' },
      { id: 'i', type: 'ad_impression', occurredAt: '2024-01-01T00:00:00Z', properties: { channel: 'x' } },
      { id: 'i', type: 'ad_impression', occurredAt: '2024-01-01T00:00:00Z', anonymousId: 'v', properties: { channel: 'x' } },
      { ...base, type: 'renewal', properties: { subscriptionId: 's' } },
      { ...base, type: 'unknown' },
      { ...base, type: 'registration', customerId: 'c\u0000' },
      { ...base, type: 'registration', customerId: 'c\ud800' },
      { ...base, type: 'registration', customerId: 'c\u001b' },
      { ...base, type: 'registration', customerId: 'c-\u{1F600}-é' },
      { ...base, type: 'registration', properties: { channel: 'e\u0085' } },
      { ...base, type: 'registration', properties: { campaign: 'spring\tsale\n' } },
      { ...base, type: 'registration', properties: { campaign: 'spring\u0007' } },
    ];
    for (const sample of samples) expect([sample, validate(sample)]).toEqual([sample, validateTouchpoint(sample).ok]);
  });
});
