export { runProjector, type ProjectorOptions } from './run-projector.js';
