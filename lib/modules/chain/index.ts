export { ServiceChainer } from './chainer.js';
export * from './types.js';
