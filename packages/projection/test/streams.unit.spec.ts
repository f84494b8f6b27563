import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { deterministicUuid } from '@lifecycle/projection';

/**
 * The ids as every store recorded them so far (sha1 of the name, hex, with the version and
 * variant digits set): a retried append, and deduplication, are recognised by these exact ids.
 */
function asRecorded(name: string): string {
  const h = createHash('sha1').update(name, 'utf8').digest('hex');
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return [h.slice(0, 8), h.slice(8, 12), `5${h.slice(13, 16)}`, `${variant}${h.slice(17, 20)}`, h.slice(20, 32)].join('-');
}

describe('deterministicUuid', () => {
  test('gives the ids stores already hold, for any name', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (name) => {
        expect(deterministicUuid(name)).toBe(asRecorded(name));
      }),
      { numRuns: 2000 },
    );
    for (const name of ['', 'touchpoint:tp-1-1', 'customer-é中😀:3:CustomerAcquired']) expect(deterministicUuid(name)).toBe(asRecorded(name));
  });

  test('has the layout of a version 5 UUID, and each call its own string', () => {
    const first = deterministicUuid('touchpoint:a');
    const second = deterministicUuid('touchpoint:b');
    expect(first).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(second).not.toBe(first);
    expect(deterministicUuid('touchpoint:a')).toBe(first);
  });
});
