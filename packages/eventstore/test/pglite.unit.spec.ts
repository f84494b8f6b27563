import { eventStoreMigrations, sqlEventStore } from '@lifecycle/eventstore';
import { migrate, openPglite, type SqlDatabase } from '@lifecycle/sql';
import { eventStoreContract } from './event-store-contract.js';
import { sqlEventStoreContract } from './sql-event-store-contract.js';

describe('PGlite event store', () => {
  let db: SqlDatabase;
  beforeAll(async () => {
    db = await openPglite();
    await migrate(db, eventStoreMigrations);
  });
  afterAll(() => db.close());
  eventStoreContract(async () => sqlEventStore(db));
  sqlEventStoreContract(async () => sqlEventStore(db));
});
