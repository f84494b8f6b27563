export { runProjector, type ProjectorOptions } from './run-projector.js';
export { ProjectorService, type PartitionLag, type ProjectorServiceOptions } from './projector-service.js';
