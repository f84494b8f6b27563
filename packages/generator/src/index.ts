export { generateTouchpoints, type GenerateOptions } from './simulation.js';
export { withDeliveryNoise, type NoiseOptions } from './delivery-noise.js';
