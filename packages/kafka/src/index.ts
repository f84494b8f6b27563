export { createKafka, createProducer, ensureLifecycleTopics, topicsFor, type Topics } from './client.js';
export { publishLines, type LineResult, type PublishSummary } from './publish.js';
export { byteBounded, customerKey, deadLetterMessage, parseMessage, touchpointMessage } from './touchpoint-messages.js';
