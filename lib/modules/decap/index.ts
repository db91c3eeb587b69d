export * from './types.js';
export { Decapsulator } from './decapsulator.js';
