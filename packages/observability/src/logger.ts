import { pino, type Logger } from 'pino';

/** JSON lines (SPEC §8). Services log to stdout; the CLI to stderr, its stdout carries data. */
export function createLogger(service: string, destination: 1 | 2 = 1, level = 'info'): Logger {
  return pino({ base: { service }, level }, pino.destination(destination));
}
