/** diffusion-distill: the library behind the `ddistill` command. */
export { UserError } from './errors.js';
export * from './matrix.js';
export * from './io/npy.js';
export * from './io/pickle.js';
export * from './io/groundTruth.js';
export * from './backend/dense.js';
export * from './search/exact.js';
export * from './search/topk.js';
export * from './search/run.js';
export * from './eval/ap.js';
export * from './eval/ranking.js';
export * from './eval/revisited.js';
export * from './eval/classLevel.js';
export * from './eval/run.js';
