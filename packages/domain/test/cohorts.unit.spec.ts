import { PeriodCalendar } from '@lifecycle/domain';
import { config, given, tp } from './builders.js';

describe('periods (SPEC §4)', () => {
  const label = (granularity: 'month' | 'week' | 'day', zone: string, iso: string) => {
    const calendar = PeriodCalendar.of(granularity, zone);
    return calendar.label(calendar.indexOf(Date.parse(iso)));
  };

  test('ISO weeks use the ISO week-year across year boundaries', () => {
    expect(label('week', 'UTC', '2020-12-31T12:00:00Z')).toBe('2020-W53');
    expect(label('week', 'UTC', '2021-01-03T23:59:59Z')).toBe('2020-W53');
    expect(label('week', 'UTC', '2024-12-30T00:00:00Z')).toBe('2025-W01');
  });

  test('periods are cut in the configured zone', () => {
    expect(label('month', 'UTC', '2024-03-01T03:00:00Z')).toBe('2024-03');
    expect(label('month', 'America/New_York', '2024-03-01T03:00:00Z')).toBe('2024-02');
    expect(label('day', 'Asia/Tokyo', '2024-12-31T15:00:00Z')).toBe('2025-01-01');
    expect(label('week', 'Pacific/Auckland', '2024-12-29T12:00:00Z')).toBe('2025-W01');
  });

  test('days across a DST change are 23 and 25 hours long in that zone', () => {
    const calendar = PeriodCalendar.of('day', 'Europe/Berlin');
    const spring = calendar.indexOf(Date.parse('2024-03-31T12:00:00Z'));
    expect(calendar.indexOf(Date.parse('2024-03-31T21:59:59Z'))).toBe(spring);
    expect(calendar.indexOf(Date.parse('2024-03-31T22:00:00Z'))).toBe(spring + 1);
    const autumn = calendar.indexOf(Date.parse('2024-10-27T12:00:00Z'));
    expect(calendar.indexOf(Date.parse('2024-10-26T22:00:00Z'))).toBe(autumn);
    expect(calendar.indexOf(Date.parse('2024-10-27T22:59:59Z'))).toBe(autumn);
    expect(calendar.label(autumn)).toBe('2024-10-27');
    expect(calendar.bounds(spring)).toEqual([Date.parse('2024-03-30T23:00:00Z'), Date.parse('2024-03-31T22:00:00Z')]);
    expect(calendar.bounds(autumn)).toEqual([Date.parse('2024-10-26T22:00:00Z'), Date.parse('2024-10-27T23:00:00Z')]);
  });

  test('bounds: a period ends where the next starts, and holds exactly its instants', () => {
    const calendar = PeriodCalendar.of('week', 'America/New_York');
    const first = calendar.indexOf(Date.parse('2024-02-26T12:00:00Z'));
    for (let period = first - 60; period < first + 60; period += 1) {
      const [start, end] = calendar.bounds(period);
      expect(calendar.bounds(period + 1)[0]).toBe(end);
      expect([calendar.indexOf(start), calendar.indexOf(end - 1), calendar.indexOf(end)]).toEqual([period, period, period + 1]);
    }
  });

  test('a period years away from every instant seen so far still has its label', () => {
    // A zone no other test uses: the calendar starts out knowing only one instant.
    const calendar = PeriodCalendar.of('month', 'Atlantic/Reykjavik');
    const late = calendar.indexOf(Date.parse('2026-11-23T00:00:00Z'));
    expect(calendar.label(late - 22)).toBe('2025-01');
    expect(calendar.label(late + 30)).toBe('2029-05');
    expect(calendar.indexOf(Date.parse('2025-01-15T00:00:00Z'))).toBe(late - 22);
  });
});

describe('cohort table (SPEC §4)', () => {
  test('every period of every cohort up to T has a row; converted is cumulative', () => {
    const { cohorts } = given([
      tp.registration('a', '2024-01-10T00:00:00Z'),
      tp.purchase('a', '2024-02-10T00:00:00Z', 1000, 'USD'),
      tp.renewal('a', '2024-03-05T00:00:00Z', 700, 'EUR'),
      tp.renewal('a', '2024-03-06T00:00:00Z', 300, 'EUR'),
      tp.registration('b', '2024-01-20T00:00:00Z'),
      tp.registration('c', '2024-03-01T00:00:00Z'),
    ]).asOf('2024-05-15T00:00:00Z');
    const rows = cohorts.map(({ cohort, periodIndex, period, size, converted, active, churned, revenue }) => [cohort, periodIndex, period, size, converted, active, churned, revenue]);
    expect(rows).toEqual([
      ['2024-01', 0, '2024-01', 2, 0, 0, 0, {}],
      ['2024-01', 1, '2024-02', 2, 1, 1, 0, { USD: 1000 }],
      ['2024-01', 2, '2024-03', 2, 1, 1, 0, { EUR: 1000 }],
      ['2024-01', 3, '2024-04', 2, 1, 0, 0, {}],
      ['2024-01', 4, '2024-05', 2, 1, 0, 1, {}],
      ['2024-03', 0, '2024-03', 1, 0, 0, 0, {}],
      ['2024-03', 1, '2024-04', 1, 0, 0, 0, {}],
      ['2024-03', 2, '2024-05', 1, 0, 0, 0, {}],
    ]);
  });

  test('a conversion before the cohort period counts from period 0; churn and reactivation count per period', () => {
    const { cohorts } = given([
      tp.purchase('a', '2024-01-10T00:00:00Z'),
      tp.registration('a', '2024-02-01T00:00:00Z'),
      tp.purchase('a', '2024-05-01T00:00:00Z'),
    ]).asOf('2024-05-02T00:00:00Z');
    expect(cohorts.map((r) => [r.period, r.converted, r.active, r.churned, r.reactivated])).toEqual([
      ['2024-02', 1, 0, 0, 0],
      ['2024-03', 1, 0, 1, 0],
      ['2024-04', 1, 0, 0, 0],
      ['2024-05', 1, 1, 0, 1],
    ]);
  });

  test('week cohorts in a non-UTC zone', () => {
    const settings = config({ cohort: { granularity: 'week', timeZone: 'America/New_York' } });
    const { cohorts, customers } = given([
      tp.registration('a', '2021-01-04T03:00:00Z'), // Sunday 22:00 in New York: week 2020-W53
      tp.purchase('a', '2021-01-05T00:00:00Z'),
    ], settings).asOf('2021-01-12T00:00:00Z');
    expect(customers[0]!.cohort).toBe('2020-W53');
    expect(cohorts.map((r) => [r.cohort, r.periodIndex, r.period, r.active])).toEqual([
      ['2020-W53', 0, '2020-W53', 0],
      ['2020-W53', 1, '2021-W01', 1],
      ['2020-W53', 2, '2021-W02', 0],
    ]);
  });
});
