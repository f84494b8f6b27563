export { createKafka, createProducer, ensureLifecycleTopics, keyPartitioner, topicsFor, type Topics } from './client.js';
export { publishLines, type LineResult, type PublishSummary } from './publish.js';
export { byteBounded, customerKey, deadLetterMessage, parseMessage, touchpointMessage, visitorKey } from './touchpoint-messages.js';
