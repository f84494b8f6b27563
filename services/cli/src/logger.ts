import { pino } from 'pino';

/** JSON lines on stderr: stdout carries the command's data (exports, generated touchpoints). */
export const logger = pino({ base: { service: 'cli' }, level: process.env['LOG_LEVEL'] ?? 'info' }, pino.destination(2));
