import { eventStoreMigrations, sqlEventStore } from '@lifecycle/eventstore';
import { migrate, openPostgres, type SqlDatabase } from '@lifecycle/sql';
import { createTestDatabase } from '../../../test/support/postgres.js';
import { eventStoreContract } from './event-store-contract.js';
import { sqlEventStoreContract } from './sql-event-store-contract.js';

describe('PostgreSQL event store', () => {
  let db: SqlDatabase;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    const database = await createTestDatabase();
    drop = database.drop;
    db = await openPostgres(database.url);
    await migrate(db, eventStoreMigrations);
  });
  afterAll(async () => {
    await db.close();
    await drop();
  });
  eventStoreContract(async () => sqlEventStore(db));
  sqlEventStoreContract(async () => sqlEventStore(db));
});
