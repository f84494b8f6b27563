import type { LifecycleEvent } from '@lifecycle/contracts';
import { foldCustomer, groupByCustomer, historyChange } from '@lifecycle/domain';
import { DEFAULT_CONFIG } from '@lifecycle/contracts';
import { tp } from './builders.js';

const timelineOf = (touchpoints: Parameters<typeof groupByCustomer>[0], asOf: string): LifecycleEvent[] =>
  [...foldCustomer(groupByCustomer(touchpoints).inputs[0]!, Date.parse(asOf), DEFAULT_CONFIG).timeline];

describe('history corrections (SPEC §6.3)', () => {
  const history = [tp.registration('c', '2024-01-01T00:00:00Z'), tp.purchase('c', '2024-01-02T00:00:00Z')];

  test('new stage changes extend the recorded history', () => {
    const before = timelineOf(history, '2024-01-03T00:00:00Z');
    const after = timelineOf(history, '2024-04-01T00:00:00Z');
    const recorded = before.map((event, i) => ({ revision: 10 + i, event }));
    expect(historyChange(recorded, after)).toEqual({ retract: [], append: [after[2]] });
    expect(after[2]).toMatchObject({ type: 'CustomerChurned', reason: 'inactivity', cause: { kind: 'deadline', deadline: 'inactivity' } });
  });

  test('a late payment retracts the churn it prevents and appends what happened instead', () => {
    const churned = timelineOf(history, '2024-04-01T00:00:00Z');
    const late = tp.renewal('c', '2024-02-20T00:00:00Z');
    const corrected = timelineOf([...history, late], '2024-04-01T00:00:00Z');
    const recorded = churned.map((event, i) => ({ revision: i, event }));
    const change = historyChange(recorded, corrected);
    expect(change.retract).toEqual([2]);
    expect(change.append.map((e) => [e.type, e.at])).toEqual([['CustomerRetained', '2024-02-20T00:00:00.000Z']]);
    expect(change.append[0]!.cause).toEqual({ kind: 'touchpoint', touchpointId: late.id, touchpointType: 'renewal' });
  });

  test('an unchanged history appends nothing', () => {
    const timeline = timelineOf(history, '2024-01-03T00:00:00Z');
    expect(historyChange(timeline.map((event, revision) => ({ revision, event })), timeline)).toEqual({ retract: [], append: [] });
  });
});
