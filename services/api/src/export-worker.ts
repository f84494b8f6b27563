/**
 * An export worker thread: computes the jobs it is given (export-jobs.ts, the projection
 * package's code) away from the API's event loop, so that `/health`, `/metrics` and the other
 * requests are answered while a long as-of computation runs. Started by worker-exports.ts.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { openPostgres, type SqlDatabase } from '@lifecycle/sql';
import type { FromWorker, JobMessage, ToWorker, WorkerSettings } from './export-protocol.js';
import { runExportJob } from './export-jobs.js';

const settings = workerData as WorkerSettings;
const ownDatabase: Promise<SqlDatabase> | undefined = settings.databaseUrl === undefined ? undefined : openPostgres(settings.databaseUrl);
// A database away at start fails each job that awaits it (a 500, logged), not the whole worker.
ownDatabase?.catch(() => undefined);
const encoder = new TextEncoder();

/** One job's conversation with the main thread. */
class Conversation {
  #nextQuery = 0;
  readonly #queries = new Map<number, { resolve: (rows: unknown[]) => void; reject: (error: Error) => void }>();
  #pull: ((message: 'pull' | 'cancel') => void) | undefined;
  #pending: 'pull' | 'cancel' | undefined;

  constructor(private readonly port: MessagePort) {
    port.on('message', (message: ToWorker) => {
      if (message.type === 'rows' || message.type === 'query-error') {
        const query = this.#queries.get(message.id);
        this.#queries.delete(message.id);
        if (message.type === 'rows') query?.resolve(message.rows);
        else query?.reject(new Error(message.message));
        return;
      }
      // A cancel overrides a pull not taken yet.
      if (this.#pull !== undefined) {
        const pull = this.#pull;
        this.#pull = undefined;
        pull(message.type);
      } else if (this.#pending !== 'cancel') this.#pending = message.type;
    });
  }

  send(message: FromWorker, transfer: ArrayBuffer[] = []): void {
    this.port.postMessage(message, transfer);
  }

  /** The store through the main thread: reads only. */
  database(): SqlDatabase {
    const refuse = async (): Promise<never> => {
      throw new Error('an export only reads the store');
    };
    return {
      query: <Row>(sql: string, params: readonly unknown[] = []) =>
        new Promise<Row[]>((resolve, reject) => {
          const id = this.#nextQuery++;
          this.#queries.set(id, { resolve: resolve as (rows: unknown[]) => void, reject });
          this.send({ type: 'query', id, sql, params: [...params] });
        }),
      exec: refuse,
      copyIn: refuse,
      transaction: refuse,
      close: async () => undefined,
      description: 'the API’s store, through its main thread',
    };
  }

  /** Waits until the main thread wants the next piece, or gave up on the answer. */
  next(): Promise<'pull' | 'cancel'> {
    if (this.#pending !== undefined) {
      const message = this.#pending;
      this.#pending = undefined;
      return Promise.resolve(message);
    }
    return new Promise((resolve) => (this.#pull = resolve));
  }
}

async function run(message: JobMessage & { port: MessagePort }): Promise<void> {
  const conversation = new Conversation(message.port);
  try {
    const db = ownDatabase !== undefined ? await ownDatabase : conversation.database();
    const answer = await runExportJob(db, settings.config, message.job);
    conversation.send({ type: 'head', contentType: answer.contentType, headers: answer.headers });
    for await (const piece of answer.body) {
      if ((await conversation.next()) === 'cancel') break;
      const bytes = encoder.encode(piece);
      conversation.send({ type: 'chunk', bytes }, [bytes.buffer as ArrayBuffer]);
    }
    conversation.send({ type: 'end' });
  } catch (error) {
    conversation.send({ type: 'error', message: (error as Error).message });
  } finally {
    message.port.close();
  }
}

parentPort!.on('message', (message: JobMessage & { port: MessagePort }) => void run(message));
