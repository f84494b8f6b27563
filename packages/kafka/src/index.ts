export { createKafka, createProducer, ensureLifecycleTopics, topicsFor, type Topics } from './client.js';
export { publishLines, type LineResult, type PublishSummary } from './publish.js';
export { ProjectorService, type PartitionLag, type ProjectorServiceOptions } from './projector-service.js';
export { customerKey } from './touchpoint-messages.js';
