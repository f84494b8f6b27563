import { z } from 'zod';

export const GRANULARITIES = ['month', 'week', 'day'] as const;
export type Granularity = (typeof GRANULARITIES)[number];

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const days = z.number().positive().max(3650);

/** The lifecycle settings of SPEC §3, with their defaults. Unknown keys are errors (typos). */
export const LifecycleConfigSchema = z.strictObject({
  churn: z
    .strictObject({
      paymentGraceDays: days.default(14),
      inactivityDays: days.default(60),
    })
    .prefault({}),
  loyalty: z.strictObject({ minPayments: z.number().int().min(1).max(1000).default(4) }).prefault({}),
  cohort: z
    .strictObject({
      granularity: z.enum(GRANULARITIES).default('month'),
      timeZone: z
        .string()
        .refine(isTimeZone, { message: 'must be an IANA time zone such as "UTC" or "Europe/Berlin"' })
        .default('UTC'),
    })
    .prefault({}),
});

export type LifecycleConfig = z.infer<typeof LifecycleConfigSchema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Parses lifecycle settings; the error names every bad key, e.g. `churn.inactivityDays: …`. */
export function parseLifecycleConfig(value: unknown, origin = 'configuration'): LifecycleConfig {
  const parsed = LifecycleConfigSchema.safeParse(value ?? {});
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((issue) => {
    const path = issue.path.join('.');
    const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => (path ? `${path}.${k}` : k)).join(', ') : path;
    return `  ${keys || '(root)'}: ${issue.message}`;
  });
  throw new ConfigError(`invalid ${origin}:\n${lines.join('\n')}`);
}

export const DEFAULT_CONFIG: LifecycleConfig = parseLifecycleConfig({});
