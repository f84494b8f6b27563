import { DEFAULT_CONFIG, parseLifecycleConfig, type LifecycleConfig, type Touchpoint } from '@lifecycle/contracts';
import { foldCustomer, groupByCustomer, projectAsOf } from '@lifecycle/domain';

let sequence = 0;
const nextId = () => `t${String((sequence += 1)).padStart(4, '0')}`;
const usd = (amountMinor: number, currency = 'USD') => ({ amountMinor, currency });

/** Touchpoint builders for specifications: `c` is the customer, `at` an ISO instant. */
export const tp = {
  impression: (at: string, who: { customerId?: string; anonymousId?: string }, channel = 'search', id = nextId()): Touchpoint =>
    ({ id, type: 'ad_impression', occurredAt: at, ...who, properties: { channel } }) as Touchpoint,
  registration: (c: string, at: string, properties: Record<string, string> = {}, extra: { anonymousId?: string; id?: string } = {}): Touchpoint =>
    ({ id: extra.id ?? nextId(), type: 'registration', occurredAt: at, customerId: c, anonymousId: extra.anonymousId, properties }) as Touchpoint,
  purchase: (c: string, at: string, amountMinor = 1000, currency = 'USD', id = nextId()): Touchpoint =>
    ({ id, type: 'purchase', occurredAt: at, customerId: c, properties: { orderId: `o-${id}`, amount: usd(amountMinor, currency) } }) as Touchpoint,
  renewal: (c: string, at: string, amountMinor = 1000, currency = 'USD', id = nextId()): Touchpoint =>
    ({ id, type: 'renewal', occurredAt: at, customerId: c, properties: { subscriptionId: 's1', amount: usd(amountMinor, currency) } }) as Touchpoint,
  failure: (c: string, at: string, id = nextId()): Touchpoint =>
    ({ id, type: 'payment_failure', occurredAt: at, customerId: c, properties: {} }) as Touchpoint,
  referral: (c: string, at: string, id = nextId()): Touchpoint =>
    ({ id, type: 'referral', occurredAt: at, customerId: c, properties: {} }) as Touchpoint,
};

export const config = (overrides: unknown = {}): LifecycleConfig => parseLifecycleConfig(overrides);

/** given(touchpoints).asOf(T): the projection SPEC §3–§5 defines, through the domain's batch path. */
export function given(touchpoints: Touchpoint[], settings: LifecycleConfig = DEFAULT_CONFIG) {
  const { inputs, latest } = groupByCustomer(touchpoints);
  const at = (iso?: string) => (iso === undefined ? latest : Date.parse(iso));
  return {
    asOf: (iso?: string) => projectAsOf(inputs, at(iso), settings),
    customer: (customerId: string, iso?: string) => {
      const row = projectAsOf(inputs, at(iso), settings).customers.find((c) => c.customerId === customerId);
      if (!row) throw new Error(`no row for ${customerId}`);
      return row;
    },
    timeline: (customerId: string, iso?: string) => {
      const input = inputs.find((i) => i.customerId === customerId)!;
      return foldCustomer(input, at(iso), settings).timeline.map((e) => `${e.at.slice(0, 10)} ${e.type} ${e.from}→${e.to}`);
    },
  };
}
