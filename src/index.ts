/**
 * diffusion-distill: the library behind the `ddistill` command. Its public API, by name: what the
 * README ("Library", "Search your collection") and docs/ document. Importing the package also
 * registers the custom layers of exported image models (GeM, L2Normalize, CaffePreprocess), so
 * that `tf.loadLayersModel` reads them.
 */
export { UserError } from './errors.js';

// Files and matrices.
export { readMatrix, writeMatrix, type Matrix } from './matrix.js';
export { readNpy, writeNpy, type NdArray } from './io/npy.js';
export { loadRevisitedGroundTruth, type RevisitedGroundTruth } from './io/groundTruth.js';

// Search and evaluation.
export { exactSearch, METRICS, type Metric, type SearchOptions, type SearchResult } from './search/exact.js';
export { fullRanking } from './eval/fullRanking.js';
export { revisitedMap, type RevisitedResult } from './eval/revisited.js';
export { evaluateFiles, type EvalFilesOptions, type EvalReport } from './eval/run.js';

// Diffusion.
export { diffuse, DIFFUSION_METHODS, type DiffusionMethod } from './diffusion/index.js';
export { diffuseFiles } from './diffusion/run.js';
export { cas, CAS_DEFAULTS, CAS_SMALL_PRESET, type CasParams } from './diffusion/cas.js';
export { lcdp, LCDP_DEFAULTS, type LcdpParams } from './diffusion/lcdp.js';
export { iscen, ISCEN_DEFAULTS, type IscenParams } from './diffusion/iscen.js';
export type { DiffusionResult } from './diffusion/common.js';

// Networks and training.
export { initBackend, BACKEND_CHOICES, tf, type BackendChoice, type BackendInfo } from './backend/tfjs.js';
export { buildHead } from './model/head.js';
export { learnPca } from './model/pca.js';
export { buildResNet } from './model/resnet.js';
export { embedFiles, exportModel, featureFiles } from './model/run.js';
export { HEAD_DEFAULTS, MNIST_DEMO_RECIPE, MNIST_RECIPE, PHOTO_HEAD_RECIPE, resolveTraining, TRAIN_DEFAULTS, type HeadOptions, type PartialTrainOptions, type TrainOptions } from './train/options.js';
export { train } from './train/loop.js';
export type { EpochRecord, TrainState } from './train/records.js';
export { sgdStep } from './train/step.js';
export { trainFiles, type TrainFilesOptions, type TrainSummary } from './train/descriptors.js';
export { trainImages, type ImageTrainOptions, type ImageTrainSummary } from './train/images.js';

// The whole distillation, and its record.
export { bootstrap } from './pipeline/bootstrap.js';
export type { BootstrapOptions } from './pipeline/plan.js';
export type { RunManifest } from './report/manifest.js';

// Collections.
export { openCollection, buildCollection, ANN_THRESHOLD, type Collection, type CollectionManifest, type Neighbour, type QueryInput } from './collection/collection.js';
