export { migrate, type Migration, type SqlDatabase, type SqlExecutor } from './database.js';
export { openPglite } from './pglite.js';
export { createScratchDatabase, openPostgres, type ScratchDatabase } from './postgres.js';
export { bulkInsert, type ColumnTypes } from './bulk.js';
