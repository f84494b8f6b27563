import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const script = join(import.meta.dirname, '../../infra/kafka/kafka.sh');

/**
 * Starts the project's development broker if it is not running (idempotent; the first start
 * fetches the jars with Maven) and returns its bootstrap address.
 */
export function ensureBroker(): string {
  return execFileSync('bash', [script, 'start'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 300_000 }).trim();
}
