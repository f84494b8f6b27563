import { inMemoryEventStore } from '@lifecycle/eventstore';
import { eventStoreContract } from './event-store-contract.js';

describe('in-memory event store', () => eventStoreContract(async () => inMemoryEventStore()));
