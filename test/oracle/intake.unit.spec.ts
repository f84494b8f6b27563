import type { Touchpoint } from '@lifecycle/contracts';
import { generateTouchpoints } from '@lifecycle/generator';
import { oracleIntake, oracleParseLine, type LineOutcome } from './intake.js';
import { EDGES, FAULTS, Rng, asObj, jsonText, oracleNoisyLines, type Obj } from './noise.js';

// The oracle's own intake, checked against answers written out by hand from SPEC §2 and the
// README's "Input: touchpoints" table (never against the product).

const utf8 = (s: string) => Buffer.from(s, 'utf8');
const verdictOf = (line: Buffer | string): string => {
  const v = oracleParseLine(line);
  return v.verdict === 'rejected' ? `${v.reason} ${v.paths.join(',')}`.trim() : v.verdict;
};

const referral = (fields: object = {}): Obj => ({ id: 'r1', type: 'referral', occurredAt: '2024-01-01T00:00:00Z', customerId: 'c1', ...fields }) as Obj;
const purchase = (fields: object = {}, props: object = {}): Obj =>
  ({ id: 'p1', type: 'purchase', occurredAt: '2024-01-01T00:00:00Z', customerId: 'c1', properties: { orderId: 'o1', amount: { amountMinor: 1000, currency: 'USD' }, ...props }, ...fields }) as Obj;
const impression = (fields: object = {}, props: object = { channel: 'search' }): Obj =>
  ({ id: 'i1', type: 'ad_impression', occurredAt: '2024-01-01T00:00:00Z', anonymousId: 'v1', properties: props, ...fields }) as Obj;
const line = (o: Obj) => utf8(jsonText(o));

describe('oracle intake: one line (SPEC §2, README "Input: touchpoints")', () => {
  test.each<[string, Buffer | string, string]>([
    // lines as a whole
    ['an empty line is blank', '', 'blank'],
    ['spaces, tabs and a CR are blank', ' \t\r ', 'blank'],
    ['a BOM alone is no JSON', utf8('\uFEFF'), 'malformed_json'],
    ['a leading BOM is ignored', utf8(`\uFEFF${jsonText(referral())}`), 'valid'],
    ['only one BOM is ignored', utf8(`\uFEFF\uFEFF${jsonText(referral())}`), 'malformed_json'],
    ['a byte that is not UTF-8', Buffer.concat([utf8('{"id":"'), Buffer.from([0xff]), utf8('"}')]), 'malformed_json'],
    ['an overlong UTF-8 form', Buffer.concat([utf8('{"id":"'), Buffer.from([0xc0, 0xaf]), utf8('"}')]), 'malformed_json'],
    ['a surrogate encoded in UTF-8', Buffer.concat([utf8('{"id":"'), Buffer.from([0xed, 0xa0, 0x80]), utf8('"}')]), 'malformed_json'],
    ['a code point above U+10FFFF', Buffer.concat([utf8('{"id":"'), Buffer.from([0xf4, 0x90, 0x80, 0x80]), utf8('"}')]), 'malformed_json'],
    ['a UTF-8 sequence cut short at the end', Buffer.concat([utf8('{"id":"x"}'), Buffer.from([0xe2, 0x82])]), 'malformed_json'],
    ['4-byte UTF-8 is fine', utf8(jsonText(referral({ source: '\u{1F600}\u{10FFFF}' }))), 'valid'],
    ['not JSON', '{id: 1}', 'malformed_json'],
    ['an array', `[${jsonText(referral())}]`, 'not_an_object'],
    ['null', 'null', 'not_an_object'],
    ['no type', jsonText({ id: 'x', occurredAt: '2024-01-01T00:00:00Z', customerId: 'c' }), 'unknown_type type'],
    ['a type of another schema', jsonText(referral({ type: 'refund' })), 'unknown_type type'],
    ['a type in the wrong case', jsonText(referral({ type: 'Referral' })), 'unknown_type type'],
    // ids and identifiers
    ['an id of 128 code points (astral characters)', jsonText(referral({ id: '\u{1F600}'.repeat(128) })), 'valid'],
    ['an id of 129 code points', jsonText(referral({ id: '\u{1F600}'.repeat(129) })), 'invalid_field id'],
    ['an empty id', jsonText(referral({ id: '' })), 'invalid_field id'],
    ['a numeric id', jsonText(referral({ id: 7 })), 'invalid_field id'],
    ['a customerId of 129 code points', jsonText(referral({ customerId: 'c'.repeat(129) })), 'invalid_field customerId'],
    ['ESC in a customerId', jsonText(referral({ customerId: 'c\u001b[2J' })), 'invalid_field customerId'],
    ['DEL in an id', jsonText(referral({ id: 'r\u007f' })), 'invalid_field id'],
    ['a C1 control in an anonymousId', jsonText(referral({ anonymousId: 'v\u0085' })), 'invalid_field anonymousId'],
    ['a tab in a channel', jsonText(impression({}, { channel: 'a\tb' })), 'invalid_field properties.channel'],
    ['a C1 control (CSI) in a channel', jsonText(impression({}, { channel: 'a\u009bb' })), 'invalid_field properties.channel'],
    ['a control in orderId', jsonText(purchase({}, { orderId: 'o\u0001' })), 'invalid_field properties.orderId'],
    ['a no-break space and a BOM inside an id are not controls', jsonText(referral({ id: 'a\u00a0\uFEFFb' })), 'valid'],
    // free text
    ['tab, LF and CR in free text', jsonText(referral({ source: 'a\tb\nc\rd' })), 'valid'],
    ['BEL in free text', jsonText(referral({ source: 'a\u0007' })), 'invalid_field source'],
    ['DEL in free text', jsonText(referral({ source: 'a\u007f' })), 'invalid_field source'],
    ['a C1 control (CSI) in free text', jsonText(referral({ properties: { code: 'x\u009b2J' } })), 'invalid_field properties.code'],
    ['free text at its limits (README)', jsonText(referral({ source: '😀'.repeat(256), properties: { code: 'c'.repeat(128) } })), 'valid'],
    ['free text past its limits (README)', jsonText(referral({ source: 's'.repeat(257) })), 'invalid_field source'],
    ['a code past its limit (README)', jsonText(referral({ properties: { code: 'c'.repeat(129) } })), 'invalid_field properties.code'],
    // anywhere in the value
    ['NUL in an unknown field', jsonText(referral({ x_note: 'a\u0000' })), 'invalid_field x_note'],
    ['NUL in a field name', jsonText(referral({ 'x\u0000': 1 })), 'invalid_field x\u0000'],
    ['an unpaired surrogate in free text', jsonText(referral({ source: '\uD800' })), 'invalid_field source'],
    ['an unpaired low surrogate deep in an unknown field', jsonText(referral({ x: { y: [1, '\uDC00'] } })), 'invalid_field x.y.1'],
    ['a surrogate pair is fine', jsonText(referral({ x: '\uD83D\uDE00' })), 'valid'],
    ['other controls in unknown fields are kept', jsonText(referral({ x: '\u0001\u001b\u007f\u0085' })), 'valid'],
    ['a __proto__ field', '{"id":"r1","type":"referral","occurredAt":"2024-01-01T00:00:00Z","customerId":"c1","properties":{"__proto__":{}}}', 'invalid_field properties.__proto__'],
    ['constructor and prototype fields are fine', jsonText(referral({ constructor: { prototype: 1 } })), 'valid'],
    ['32 levels (the touchpoint is level 1)', jsonText(referral({ x: JSON.parse('['.repeat(31) + ']'.repeat(31)) })), 'valid'],
    ['33 levels', jsonText(referral({ x: JSON.parse('['.repeat(32) + ']'.repeat(32)) })), `invalid_field x${'.0'.repeat(31)}`],
    // occurredAt
    ['Z', jsonText(referral({ occurredAt: '2024-02-29T23:59:59.999Z' })), 'valid'],
    ['an offset', jsonText(referral({ occurredAt: '2024-03-01T05:29:59+05:30' })), 'valid'],
    ['-00:00', jsonText(referral({ occurredAt: '2024-03-01T05:29:59-00:00' })), 'valid'],
    ['no offset', jsonText(referral({ occurredAt: '2024-03-01T05:29:59' })), 'invalid_field occurredAt'],
    ['a date only', jsonText(referral({ occurredAt: '2024-03-01' })), 'invalid_field occurredAt'],
    ['February 29th of a common year', jsonText(referral({ occurredAt: '2023-02-29T00:00:00Z' })), 'invalid_field occurredAt'],
    ['hour 24', jsonText(referral({ occurredAt: '2024-03-01T24:00:00Z' })), 'invalid_field occurredAt'],
    ['an offset of 24 hours', jsonText(referral({ occurredAt: '2024-03-01T00:00:00+24:00' })), 'invalid_field occurredAt'],
    ['a number', jsonText(referral({ occurredAt: 1_700_000_000_000 })), 'invalid_field occurredAt'],
    ['1970-01-01T00:00:00Z is the first instant', jsonText(referral({ occurredAt: '1970-01-01T00:00:00Z' })), 'valid'],
    ['the same instant in +01:00', jsonText(referral({ occurredAt: '1970-01-01T01:00:00+01:00' })), 'valid'],
    ['a millisecond before 1970', jsonText(referral({ occurredAt: '1970-01-01T00:59:59.999+01:00' })), 'invalid_field occurredAt'],
    ['a year of two digits written with four', jsonText(referral({ occurredAt: '0050-01-01T00:00:00Z' })), 'invalid_field occurredAt'],
    ['the last millisecond before 2100', jsonText(referral({ occurredAt: '2099-12-31T23:59:59.999Z' })), 'valid'],
    ['2100 reached through an offset', jsonText(referral({ occurredAt: '2099-12-31T23:30:00-01:00' })), 'invalid_field occurredAt'],
    ['2100-01-01T00:00:00Z is out', jsonText(referral({ occurredAt: '2100-01-01T00:00:00Z' })), 'invalid_field occurredAt'],
    // per type
    ['an impression of a visitor', jsonText(impression()), 'valid'],
    ['an impression of nobody', jsonText(impression({ anonymousId: undefined })), 'invalid_field customerId'],
    ['an impression without channel', jsonText(impression({}, {})), 'invalid_field properties.channel'],
    ['an impression without properties', jsonText(impression({ properties: undefined })), 'invalid_field properties'],
    ['a referral without customerId', jsonText(referral({ customerId: undefined })), 'invalid_field customerId'],
    ['a referral without properties', jsonText(referral()), 'valid'],
    ['properties null', jsonText(referral({ properties: null })), 'invalid_field properties'],
    ['an optional field null', jsonText(referral({ source: null })), 'invalid_field source'],
    ['a purchase without orderId and amount', jsonText(purchase({ properties: {} })), 'invalid_field properties.orderId,properties.amount'],
    ['a renewal without subscriptionId', jsonText({ ...purchase(), type: 'renewal' }), 'invalid_field properties.subscriptionId'],
    ['a payment failure with nothing but its customer', jsonText({ id: 'f', type: 'payment_failure', occurredAt: '2024-01-01T00:00:00Z', customerId: 'c' }), 'valid'],
    ['unknown fields everywhere are kept', jsonText(purchase({ x: { y: [null] } }, { x: 1, amount: { amountMinor: 1, currency: 'EUR', note: 'kept' } })), 'valid'],
    // money
    ['amount 0', jsonText(purchase({}, { amount: { amountMinor: 0, currency: 'JPY' } })), 'valid'],
    ['amount 2^53 − 1', jsonText(purchase({}, { amount: { amountMinor: Number.MAX_SAFE_INTEGER, currency: 'JPY' } })), 'valid'],
    ['amount 1000.0 is the integer 1000', '{"id":"p","type":"purchase","occurredAt":"2024-01-01T00:00:00Z","customerId":"c","properties":{"orderId":"o","amount":{"amountMinor":1000.0,"currency":"USD"}}}', 'valid'],
    ['amount 2^53', jsonText(purchase({}, { amount: { amountMinor: 2 ** 53, currency: 'JPY' } })), 'invalid_field properties.amount.amountMinor'],
    ['a negative amount', jsonText(purchase({}, { amount: { amountMinor: -1, currency: 'USD' } })), 'invalid_field properties.amount.amountMinor'],
    ['a fractional amount', jsonText(purchase({}, { amount: { amountMinor: 9.99, currency: 'USD' } })), 'invalid_field properties.amount.amountMinor'],
    ['1e400', '{"id":"p","type":"purchase","occurredAt":"2024-01-01T00:00:00Z","customerId":"c","properties":{"orderId":"o","amount":{"amountMinor":1e400,"currency":"USD"}}}', 'invalid_field properties.amount.amountMinor'],
    ['a lower-case currency', jsonText(purchase({}, { amount: { amountMinor: 1, currency: 'usd' } })), 'invalid_field properties.amount.currency'],
    ['a cost with a bad currency', jsonText(impression({}, { channel: 'x', cost: { amountMinor: 1, currency: 'EURO' } })), 'invalid_field properties.cost.currency'],
  ])('%s', (_name, input, expected) => {
    expect(verdictOf(input)).toBe(expected);
  });

  test('the byte limit: 64 KiB of UTF-8 is fine, one byte more is payload_too_large, a BOM counts, size comes before UTF-8', () => {
    const padded = (bytes: number, pad: string) => {
      const empty = utf8(jsonText(referral({ x: '' }))).length;
      let filler = pad.repeat(Math.floor((bytes - empty) / utf8(pad).length));
      filler += 'a'.repeat(bytes - empty - utf8(filler).length);
      const b = utf8(jsonText(referral({ x: filler })));
      expect(b.length).toBe(bytes);
      return b;
    };
    for (const pad of ['a', 'é', '€', '\u{1F600}']) {
      expect(verdictOf(padded(65_536, pad))).toBe('valid');
      expect(verdictOf(padded(65_537, pad))).toBe('payload_too_large');
      // As a JS string, the same count of UTF-8 bytes.
      expect(verdictOf(padded(65_536, pad).toString('utf8'))).toBe('valid');
      expect(verdictOf(padded(65_537, pad).toString('utf8'))).toBe('payload_too_large');
    }
    expect(verdictOf(Buffer.concat([utf8('\uFEFF'), padded(65_533, 'a')]))).toBe('valid');
    expect(verdictOf(Buffer.concat([utf8('\uFEFF'), padded(65_534, 'a')]))).toBe('payload_too_large');
    const notUtf8 = padded(70_000, 'a');
    notUtf8[100] = 0xff;
    expect(verdictOf(notUtf8)).toBe('payload_too_large');
  });

  test('a valid line gives the touchpoint, optional properties defaulting to {}, and its instant', () => {
    const v = oracleParseLine(jsonText(referral({ occurredAt: '2024-03-01T05:30:00.1239+05:30', x: [1] })));
    expect(v).toEqual({
      verdict: 'valid',
      ms: Date.UTC(2024, 2, 1, 0, 0, 0, 123),
      touchpoint: { id: 'r1', type: 'referral', occurredAt: '2024-03-01T05:30:00.1239+05:30', customerId: 'c1', x: [1], properties: {} },
    });
  });
});

describe('oracle intake: deduplication in arrival order', () => {
  const outcomes = (lines: readonly (Buffer | string)[]) =>
    oracleIntake(lines).lines.map((o: LineOutcome) => (o.outcome === 'rejected' ? o.reason : o.outcome));

  test('same id and same content is a duplicate however it is written; other content is an id_conflict; the first copy stays', () => {
    const p = purchase();
    const other = purchase({}, { amount: { amountMinor: 1001, currency: 'USD' } });
    const lines = [
      jsonText(p),
      jsonText(p, { reversed: true, spaced: true, decimalPoint: true }),
      `\uFEFF${jsonText(p)}`,
      ` \t${jsonText(p)} \r`,
      jsonText(other),
      jsonText(other),
      '',
    ];
    expect(outcomes(lines)).toEqual(['accepted', 'duplicate', 'duplicate', 'duplicate', 'id_conflict', 'id_conflict', 'blank']);
    expect(oracleIntake(lines).accepted).toEqual([p]);
    // The other order: the other content is first, so it stays.
    expect(outcomes([jsonText(other), jsonText(p), jsonText(other)])).toEqual(['accepted', 'id_conflict', 'duplicate']);
    expect(oracleIntake([jsonText(other), jsonText(p)]).accepted).toEqual([other]);
  });

  test('an absent optional properties is the same content as {}; unknown fields are content', () => {
    const bare = referral();
    expect(outcomes([jsonText(bare), jsonText({ ...bare, properties: {} }), jsonText({ ...bare, properties: { code: 'x' } })])).toEqual(['accepted', 'duplicate', 'id_conflict']);
    const money = (note: string) => purchase({}, { amount: { amountMinor: 1, currency: 'EUR', note } });
    expect(outcomes([jsonText(money('a')), jsonText(money('b'))])).toEqual(['accepted', 'id_conflict']);
    expect(outcomes([jsonText(referral({ x: 1 })), jsonText(referral({ x: 1.0 })), jsonText(referral({ x: 2 }))])).toEqual(['accepted', 'duplicate', 'id_conflict']);
  });

  test('an invalid line records nothing: the next valid line with its id is new', () => {
    const p = purchase();
    expect(outcomes([jsonText(purchase({}, { amount: { amountMinor: -1, currency: 'USD' } })), jsonText(p), jsonText(p)])).toEqual(['invalid_field', 'accepted', 'duplicate']);
  });
});

describe('oracle noise: faults, edges and deliveries', () => {
  const base: Touchpoint[] = [...generateTouchpoints({ customers: 40, seed: 3, months: 4 })];
  const oneOfEachType = ['ad_impression', 'registration', 'purchase', 'renewal', 'payment_failure', 'referral'].flatMap((type) =>
    base.filter((t) => t.type === type && (type !== 'ad_impression' || t.customerId === undefined)).slice(0, 2),
  );
  // A visitor's impression, a customer's impression, and every other type.
  oneOfEachType.push(base.find((t) => t.type === 'ad_impression' && t.customerId !== undefined)!);

  test('the sample has every type', () => {
    expect(new Set(oneOfEachType.map((t) => t.type)).size).toBe(6);
  });

  test.each(FAULTS.map((f) => [f.kind, f] as const))('fault %s gets the reason (and path) it is labelled with, from any type', (_kind, fault) => {
    for (const t of oneOfEachType) {
      const v = oracleParseLine(fault.line(asObj(t), new Rng(1)));
      expect([t.type, v.verdict === 'rejected' ? v.reason : v.verdict]).toEqual([t.type, fault.intent]);
      if (fault.path && v.verdict === 'rejected') expect([t.type, v.paths]).toEqual([t.type, [fault.path(asObj(t))]]);
    }
  });

  test.each(EDGES.map((e) => [e.kind, e] as const))('edge %s stays valid', (_kind, edge) => {
    const applicable = base.filter((t) => edge.applies(asObj(t)));
    expect(applicable.length).toBeGreaterThan(0);
    for (const t of applicable.slice(0, 10)) expect(verdictOf(utf8(jsonText(edge.apply(asObj(t)))))).toBe('valid');
  });

  const options = { seed: 7, redeliveryRate: 0.1, lateRate: 0.05, invalidRate: 0.2, conflictRate: 0.05, edgeRate: 0.2, blankRate: 0.02, redeliverConflicting: true };

  test('same seed, same bytes; another seed, other bytes', () => {
    const a = oracleNoisyLines(base, options);
    expect(oracleNoisyLines(base, options)).toEqual(a);
    expect(oracleNoisyLines(base, { ...options, seed: 8 })).not.toEqual(a);
  });

  test('every line gets what its kind says; each touchpoint is recorded once, in the version that arrived first', () => {
    const noisy = oracleNoisyLines(base, options);
    const intake = oracleIntake(noisy.map((l) => l.bytes));
    const faultIntent = new Map(FAULTS.map((f) => [`fault:${f.kind}`, f.intent]));
    // By the labels alone: which version of each id (the original or its conflicting one) came first.
    const firstVersion = new Map<string, 'original' | 'conflict'>();
    const won = { original: 0, conflict: 0 };
    noisy.forEach((line, i) => {
      const o = intake.lines[i]!;
      const got = o.outcome === 'rejected' ? o.reason : o.outcome;
      let expected: string;
      if (line.kind === 'blank') expected = 'blank';
      else if (line.kind.startsWith('fault:')) expected = faultIntent.get(line.kind)!;
      else {
        const v = oracleParseLine(line.bytes);
        if (v.verdict !== 'valid') throw new Error(`line ${i} (${line.kind}) is not valid`);
        const version = /^(redelivery:)?conflict:/.test(line.kind) ? 'conflict' : 'original';
        const first = firstVersion.get(v.touchpoint.id);
        if (first === undefined) firstVersion.set(v.touchpoint.id, version);
        expected = first === undefined ? 'accepted' : first === version ? 'duplicate' : 'id_conflict';
        if (first === undefined && version === 'conflict') won.conflict++;
        if (first !== undefined && first === 'original' && version === 'conflict') won.original++;
      }
      expect([i, line.kind, got]).toEqual([i, line.kind, expected]);
    });
    expect(intake.accepted).toHaveLength(base.length);
    // Conflicts both ways: the conflicting version first (it stays), and after the original.
    expect(won.conflict).toBeGreaterThan(0);
    expect(won.original).toBeGreaterThan(0);
    const kinds = new Set(noisy.map((l) => l.kind.replace(/^late /, '')));
    for (const f of FAULTS) expect(kinds).toContain(`fault:${f.kind}`);
    for (const e of EDGES) expect(kinds).toContain(`edge:${e.kind}`);
    for (const k of ['blank', 'redelivery:same-bytes', 'redelivery:reformatted', 'redelivery:bom', 'redelivery:blanks-around']) expect(kinds).toContain(k);
    expect(noisy.some((l) => l.kind.startsWith('late '))).toBe(true);
    expect(noisy.some((l) => l.kind.startsWith('redelivery:conflict:'))).toBe(true);
  });

  test('without redeliverConflicting, a touchpoint with an id conflict arrives exactly twice: once in each version', () => {
    const noisy = oracleNoisyLines(base, { ...options, redeliverConflicting: false });
    const intake = oracleIntake(noisy.map((l) => l.bytes));
    const conflicted = new Set<string>();
    const copies = new Map<string, number>();
    noisy.forEach((l, i) => {
      const v = oracleParseLine(l.bytes);
      if (v.verdict !== 'valid') return;
      copies.set(v.touchpoint.id, (copies.get(v.touchpoint.id) ?? 0) + 1);
      const o = intake.lines[i]!;
      if (o.outcome === 'rejected' && o.reason === 'id_conflict') conflicted.add(v.touchpoint.id);
    });
    expect(conflicted.size).toBeGreaterThan(0);
    for (const id of conflicted) expect([id, copies.get(id)]).toEqual([id, 2]);
  });
});
