/**
 * Collections: a trained model's embeddings of a user's items, kept for search (docs/design.md,
 * "Collections"). A collection folder holds
 *   collection.json  what it is: dimension, count, the model's manifest, the ANN index's state;
 *   model/           a copy of the model that embedded the items (queries are embedded with it);
 *   items.lance/     the items (LanceDB table `items`: id, vector, path, label);
 *   index.usearch    the HNSW index, once the collection reaches `annThreshold` items.
 * Search is by Euclidean distance between unit-length embeddings, exact or approximate.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { initBackend, type BackendChoice, type BackendInfo } from '../backend/tfjs.js';
import { UserError } from '../errors.js';
import { readLabelValues } from '../io/groundTruth.js';
import { writeFileAtomic } from '../io/atomic.js';
import { listImages } from '../io/images.js';
import { ensureOutputFolder } from '../io/paths.js';
import { readMatrix, type Matrix } from '../matrix.js';
import { loadModelFolder, MANIFEST_FILE, MODEL_FILE, readModelManifest, resolveModelFolder, WEIGHTS_FILE, type LoadedModel, type ModelManifest } from '../model/io.js';
import { embedDescriptors, embedImageList } from '../model/run.js';
import { exactSearch } from '../search/exact.js';
import { ANN_DEFAULTS, AnnIndex, type AnnParams } from './ann.js';
import { itemRows, ItemStore } from './store.js';

export const COLLECTION_FILE = 'collection.json';
const STORE_DIR = 'items.lance';
const INDEX_FILE = 'index.usearch';
const MODEL_DIR = 'model';
/** Below this many items exact search is fast enough (≈ 1 ms per query at 128-d) and no index is built. */
export const ANN_THRESHOLD = 10_000;

export interface CollectionManifest {
  readonly format: 'diffusion-distill-collection';
  readonly version: 1;
  readonly dimension: number;
  readonly count: number;
  readonly inputKind: ModelManifest['inputKind'];
  readonly model: { readonly folder: string; readonly from: string; readonly manifest: ModelManifest };
  readonly annThreshold: number;
  readonly index: { readonly kind: 'hnsw'; readonly library: 'usearch'; readonly file: string; readonly size: number; readonly params: AnnParams } | null;
  readonly created: string;
  readonly updated: string;
}

/** What `buildCollection` indexes: images, descriptors to embed, or embeddings already made. */
export interface CollectionInput {
  readonly images?: string;
  readonly db?: string;
  readonly embeddings?: string;
  /** One label per item (a file: one per line or a JSON array), stored with the items. */
  readonly labels?: string;
}

export interface BuildCollectionOptions extends CollectionInput {
  /** The trained (or exported) model; for --append, the collection's own model is used. */
  readonly model?: string;
  readonly out: string;
  /** Add to the collection at `out` instead of creating one. */
  readonly append?: boolean;
  readonly annThreshold?: number;
  readonly skipBad?: boolean;
  readonly backend?: BackendChoice;
  readonly onBackend?: (info: BackendInfo) => void;
  readonly onSkip?: (path: string, message: string) => void;
  readonly onProgress?: (done: number, total: number) => void;
}

export interface BuildSummary {
  readonly out: string;
  readonly added: number;
  readonly count: number;
  readonly dimension: number;
  readonly index: 'hnsw' | 'none';
  readonly skipped: readonly string[];
  readonly seconds: number;
}

function readManifest(dir: string): CollectionManifest {
  const file = join(dir, COLLECTION_FILE);
  if (!existsSync(file)) throw new UserError(`${dir}: not a collection (no ${COLLECTION_FILE}); build one with ddistill index --model RUN --out ${dir}`);
  const m = JSON.parse(readFileSync(file, 'utf8')) as CollectionManifest;
  if (m.format !== 'diffusion-distill-collection') throw new UserError(`${file}: not a diffusion-distill collection manifest`);
  return m;
}

/** What `plan` settles before any work: the model to embed with, and the collection to extend. */
interface Plan {
  readonly modelDir: string;
  readonly manifest: ModelManifest;
  readonly existing: CollectionManifest | null;
}

/** Checks the output folder and the input before any work. */
function plan(o: BuildCollectionOptions): Plan {
  const sources = [o.images, o.db, o.embeddings].filter((s) => s !== undefined).length;
  if (sources !== 1) throw new UserError('give exactly one of --images (photos), --db (descriptors to embed) or --embeddings (an embed output .npy)');
  ensureOutputFolder(o.out);
  const isCollection = existsSync(join(o.out, COLLECTION_FILE));
  if (o.append && !isCollection) throw new UserError(`--out ${o.out}: not a collection to append to; build it first (without --append)`);
  if (!o.append && isCollection) throw new UserError(`--out ${o.out}: already a collection; pass --append to add items to it, or choose another --out`);
  if (!o.append && existsSync(o.out) && readdirSync(o.out).length > 0) throw new UserError(`--out ${o.out}: the folder is not empty; choose a new or empty folder`);
  const existing = o.append ? readManifest(o.out) : null;
  if (!existing && !o.model) throw new UserError('give --model (a train run folder or an exported model) to build a collection');
  const modelDir = existing ? join(o.out, MODEL_DIR) : resolveModelFolder(o.model!);
  if (existing && o.model) {
    const given = readModelManifest(resolveModelFolder(o.model));
    if (JSON.stringify(given.provenance) !== JSON.stringify(existing.model.manifest.provenance) || given.embeddingDim !== existing.dimension) {
      throw new UserError(`--model ${o.model}: not the model this collection was built with (${existing.model.from}); leave --model out to use the collection's own`);
    }
  }
  const manifest = readModelManifest(modelDir);
  if (o.images && manifest.inputKind !== 'images') throw new UserError(`${modelDir}: this model embeds descriptors, not images; give --db descriptors (or an image model)`);
  if (o.db && manifest.inputKind !== 'descriptors') throw new UserError(`${modelDir}: this model embeds images; give --images (or --embeddings from ddistill embed)`);
  return { modelDir, manifest, existing };
}

/** The items to add, read before any work: image paths, descriptors, or embeddings (with their paths). */
interface Items {
  readonly count: number;
  readonly paths?: string[];
  readonly descriptors?: Matrix;
  readonly embeddings?: Matrix;
}

function readItems(o: BuildCollectionOptions, dimension: number): Items {
  if (o.images) {
    const paths = listImages(o.images);
    return { count: paths.length, paths };
  }
  if (o.db) {
    const descriptors = readMatrix(o.db);
    return { count: descriptors.rows, descriptors };
  }
  const embeddings = readMatrix(o.embeddings!);
  if (embeddings.cols !== dimension) throw new UserError(`${o.embeddings}: ${embeddings.cols}-d rows, but the model embeds to ${dimension}-d; give the output of ddistill embed with this model`);
  const list = join(o.embeddings!, '..', 'embed.json');
  const listed = existsSync(list) ? (JSON.parse(readFileSync(list, 'utf8')) as { images?: string[] }).images : undefined;
  return { count: embeddings.rows, embeddings, paths: listed?.length === embeddings.rows ? listed : undefined };
}

/** The embeddings of the items, with the paths of those kept and the images that could not be read. */
async function embedItems(o: BuildCollectionOptions, items: Items, modelDir: string): Promise<{ m: Matrix; paths?: string[]; skipped: string[] }> {
  if (items.embeddings) return { m: items.embeddings, paths: items.paths, skipped: [] };
  const info = await initBackend(o.backend ?? 'auto');
  o.onBackend?.(info);
  const loaded = await loadModelFolder(modelDir);
  try {
    if (items.descriptors) return { m: embedDescriptors(loaded.model, loaded.manifest, items.descriptors, o.db), skipped: [] };
    const r = await embedImageList(loaded, items.paths!, { skipBad: o.skipBad, onSkip: o.onSkip, onProgress: o.onProgress });
    if (r.kept.length === 0) throw new UserError(`${o.images}: no image could be read`);
    return { m: r.matrix, paths: r.kept, skipped: r.skipped };
  } finally {
    loaded.model.dispose();
  }
}

/** Saves the index through a temporary file, so a crash never leaves half an index. */
function saveIndex(index: AnnIndex, dir: string): void {
  const tmp = join(dir, `${INDEX_FILE}.tmp`);
  index.save(tmp);
  renameSync(tmp, join(dir, INDEX_FILE));
}

/** `ddistill index`: embeds items with a model and writes (or extends) a collection. */
export async function buildCollection(o: BuildCollectionOptions): Promise<BuildSummary> {
  const started = performance.now();
  const { modelDir, manifest: modelManifest, existing } = plan(o);
  const dimension = modelManifest.embeddingDim;
  const items = readItems(o, dimension);
  const labels = o.labels ? readLabelValues(o.labels).map(String) : undefined;
  if (labels && labels.length !== items.count) throw new UserError(`${o.labels}: ${labels.length} labels for ${items.count} items; give one label per item, in order`);
  const { m, paths, skipped } = await embedItems(o, items, modelDir);
  const skippedSet = new Set(skipped);
  const keptLabels = labels && skipped.length > 0 ? labels.filter((_, i) => !skippedSet.has(items.paths![i]!)) : labels;

  mkdirSync(o.out, { recursive: true });
  if (!existing) {
    mkdirSync(join(o.out, MODEL_DIR), { recursive: true });
    for (const f of [MODEL_FILE, WEIGHTS_FILE, MANIFEST_FILE]) if (existsSync(join(modelDir, f))) copyFileSync(join(modelDir, f), join(o.out, MODEL_DIR, f));
  }
  const store = await ItemStore.open(join(o.out, STORE_DIR));
  const before = existing?.count ?? 0;
  await store.append(itemRows(m, before, paths, keptLabels));
  const count = before + m.rows;
  const threshold = o.annThreshold ?? existing?.annThreshold ?? ANN_THRESHOLD;
  let index = existing?.index ?? null;
  if (count >= threshold) {
    const threads = availableParallelism();
    if (index) {
      const ann = AnnIndex.load(join(o.out, INDEX_FILE), dimension, index.params);
      // One thread: concurrent insertion into a loaded usearch index (2.25) occasionally leaves a
      // new item unreachable (measured: 3 of 30 appends of 50 items on 2 threads, none on 1).
      ann.add(m, before, 1);
      saveIndex(ann, o.out);
    } else {
      const all = before === 0 ? m : (await store.all(dimension)).vectors;
      const ann = AnnIndex.empty(dimension, ANN_DEFAULTS);
      ann.add(all, 0, threads);
      saveIndex(ann, o.out);
    }
    index = { kind: 'hnsw', library: 'usearch', file: INDEX_FILE, size: count, params: index?.params ?? ANN_DEFAULTS };
  }
  store.close();
  const now = new Date().toISOString();
  const manifest: CollectionManifest = {
    format: 'diffusion-distill-collection', version: 1, dimension, count, inputKind: modelManifest.inputKind,
    model: { folder: MODEL_DIR, from: existing?.model.from ?? modelDir, manifest: modelManifest },
    annThreshold: threshold, index, created: existing?.created ?? now, updated: now,
  };
  writeFileAtomic(join(o.out, COLLECTION_FILE), JSON.stringify(manifest, null, 2) + '\n');
  return { out: o.out, added: m.rows, count, dimension, index: index ? 'hnsw' : 'none', skipped, seconds: (performance.now() - started) / 1000 };
}

/** One neighbour of a query. */
export interface Neighbour {
  readonly id: number;
  /** The image path, or '' for items indexed from descriptors. */
  readonly path: string;
  readonly label: string;
  /** Euclidean distance between the unit-length embeddings. */
  readonly distance: number;
}

/** What to search with: images, descriptors (embedded by the model), or embeddings as they are. */
export interface QueryInput {
  readonly images?: readonly string[];
  readonly descriptors?: Matrix;
  readonly embeddings?: Matrix;
}

export interface QueryOptions {
  readonly k?: number;
  /** Exact search even when the collection has an ANN index. */
  readonly exact?: boolean;
}

export interface Collection {
  readonly dir: string;
  readonly manifest: CollectionManifest;
  readonly count: number;
  readonly dimension: number;
  /** Whether queries use the ANN index (else exact search). */
  readonly approximate: boolean;
  /** The neighbours of each query, nearest first. */
  query(input: QueryInput, o?: QueryOptions): Promise<Neighbour[][]>;
  /** The embeddings of images or descriptors, as the collection's model makes them. */
  embed(input: QueryInput): Promise<Matrix>;
  close(): void;
}

/** Opens a collection folder for search. */
export async function openCollection(dir: string, o: { backend?: BackendChoice } = {}): Promise<Collection> {
  const manifest = readManifest(dir);
  const store = await ItemStore.open(join(dir, STORE_DIR));
  const items = await store.all(manifest.dimension);
  store.close();
  if (items.vectors.rows === 0) throw new UserError(`${dir}: the collection is empty; add items with ddistill index --append --out ${dir}`);
  const ann = manifest.index ? AnnIndex.load(join(dir, manifest.index.file), manifest.dimension, manifest.index.params) : null;
  let loaded: Promise<LoadedModel> | null = null;
  const model = () => (loaded ??= initBackend(o.backend ?? 'auto').then(() => loadModelFolder(join(dir, manifest.model.folder))));

  const embed = async (input: QueryInput): Promise<Matrix> => {
    const given = [input.images, input.descriptors, input.embeddings].filter((x) => x !== undefined).length;
    if (given !== 1) throw new UserError('give exactly one of images, descriptors or embeddings to query with');
    if (input.embeddings) {
      if (input.embeddings.cols !== manifest.dimension) throw new UserError(`query embeddings are ${input.embeddings.cols}-d but the collection holds ${manifest.dimension}-d embeddings; embed them with the collection's model`);
      return input.embeddings;
    }
    if (input.images && manifest.inputKind !== 'images') throw new UserError(`${dir}: this collection's model embeds descriptors, not images; query with --vector descriptors`);
    if (input.descriptors) {
      if (manifest.inputKind !== 'descriptors') throw new UserError(`${dir}: this collection's model embeds images; query with --image, or --embedding for vectors already embedded`);
      const dim = manifest.model.manifest.inputDim;
      if (input.descriptors.cols !== dim) throw new UserError(`query descriptors are ${input.descriptors.cols}-d but the collection's model takes ${dim}-d descriptors`);
    }
    const m = await model();
    if (input.descriptors) return embedDescriptors(m.model, m.manifest, input.descriptors);
    const r = await embedImageList(m, input.images!, {});
    return r.matrix;
  };

  return {
    dir, manifest, count: items.vectors.rows, dimension: manifest.dimension, approximate: ann !== null,
    embed,
    async query(input, q = {}) {
      const e = await embed(input);
      const k = Math.min(q.k ?? 10, items.vectors.rows);
      const neighbour = (id: number, distance: number): Neighbour => ({ id, path: items.paths[id] ?? '', label: items.labels[id] ?? '', distance });
      if (ann && !q.exact) {
        return Array.from({ length: e.rows }, (_, r) => {
          const hit = ann.search(e.data.subarray(r * e.cols, (r + 1) * e.cols), k);
          return Array.from(hit.ids, (id, t) => neighbour(id, Math.sqrt(Math.max(0, hit.distances[t]!))));
        });
      }
      const res = await exactSearch(items.vectors, e, { k, metric: 'euclidean' });
      return Array.from({ length: e.rows }, (_, r) => Array.from({ length: k }, (_, t) => neighbour(res.indices[r * k + t]!, res.distances[r * k + t]!)));
    },
    close() {
      void loaded?.then((m) => m.model.dispose());
    },
  };
}
