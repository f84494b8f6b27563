import { ConfigError, DEFAULT_CONFIG, parseLifecycleConfig } from '@lifecycle/contracts';

describe('lifecycle settings (SPEC §3)', () => {
  test('defaults', () => {
    expect(DEFAULT_CONFIG).toEqual({
      churn: { paymentGraceDays: 14, inactivityDays: 60 },
      loyalty: { minPayments: 4 },
      cohort: { granularity: 'month', timeZone: 'UTC' },
    });
  });

  test('partial settings keep the other defaults', () => {
    expect(parseLifecycleConfig({ cohort: { timeZone: 'Europe/Berlin' } }).cohort).toEqual({ granularity: 'month', timeZone: 'Europe/Berlin' });
  });

  test.each([
    [{ churn: { inactivityDays: -1 } }, 'churn.inactivityDays'],
    [{ churn: { inactivtyDays: 30 } }, 'churn.inactivtyDays'],
    [{ cohort: { timeZone: 'Mars/Olympus' } }, 'cohort.timeZone'],
    [{ cohort: { granularity: 'year' } }, 'cohort.granularity'],
    [{ loyalty: { minPayments: 2.5 } }, 'loyalty.minPayments'],
  ])('an error names the bad key: %j', (value, key) => {
    expect(() => parseLifecycleConfig(value, 'config.json')).toThrow(ConfigError);
    expect(() => parseLifecycleConfig(value, 'config.json')).toThrow(new RegExp(`config\\.json[\\s\\S]*${key.replace('.', '\\.')}`));
  });
});
