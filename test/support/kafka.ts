import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const script = join(import.meta.dirname, '../../infra/kafka/kafka.sh');

/** A broker of a test's own: its ports and state directory (see infra/kafka/kafka.sh). */
export interface OwnBroker {
  port: number;
  controllerPort: number;
  state: string;
}

/** Runs infra/kafka/kafka.sh; its messages go to the test's stderr, where a failure is read. */
function kafkaSh(args: string[], broker?: OwnBroker): string {
  const env = broker === undefined
    ? process.env
    : { ...process.env, KAFKA_PORT: String(broker.port), KAFKA_CONTROLLER_PORT: String(broker.controllerPort), LIFECYCLE_KAFKA_STATE: broker.state };
  return execFileSync('bash', [script, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env, timeout: 300_000 }).trim();
}

/**
 * Starts the project's development broker, or with `broker` one of the test's own, if it is not
 * running (idempotent; the first start fetches the jars with Maven); returns its bootstrap address.
 */
export function ensureBroker(broker?: OwnBroker): string {
  return kafkaSh(['start'], broker);
}

/** Stops a broker `ensureBroker(broker)` started and deletes its state. */
export function stopBroker(broker: OwnBroker): void {
  kafkaSh(['stop'], broker);
}

/** Creates a topic on the development broker unless it exists. */
export function createTopic(topic: string, partitions: number): void {
  kafkaSh(['topic', topic, String(partitions)]);
}
