export { migrate, type Migration, type SqlDatabase, type SqlExecutor } from './database.js';
export { openPglite, type PgliteOptions } from './pglite.js';
export { DirectoryInUseError, LOCK_FILE, SUPERVISOR_PID_ENV, lockDirectory, type DirectoryLock, type LockHolder } from './directory-lock.js';
export { createScratchDatabase, openPostgres, type ScratchDatabase } from './postgres.js';
export { bulkInsert, copyRows, jsonLines, type ColumnTypes } from './bulk.js';
