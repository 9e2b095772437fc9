/** `ddistill index` and `ddistill query`: a searchable collection of a trained model's embeddings. */
import { Command, Option } from 'commander';
import { BACKEND_CHOICES, type BackendChoice } from '../backend/tfjs.js';
import { buildCollection, openCollection, type QueryInput } from '../collection/collection.js';
import { readMatrix } from '../matrix.js';
import { backendLine, duration, imageProgress, note, print } from './common.js';
import { parsePositiveInt } from './flags/numbers.js';

interface IndexFlags {
  model?: string;
  images?: string;
  db?: string;
  embeddings?: string;
  labels?: string;
  out: string;
  append?: boolean;
  annThreshold?: number;
  skipBadImages?: boolean;
  backend: BackendChoice;
  json?: boolean;
}

export function indexCommand(): Command {
  return new Command('index')
    .summary('build a searchable collection (LanceDB table + ANN index) from a trained model')
    .description(
      'Embeds a collection with a trained (or exported) model and writes a folder\n' +
        'that `ddistill query` and the library\'s openCollection search:\n' +
        '  items.lance/    a LanceDB table: id, vector, path (images), label\n' +
        '  model/          the model, to embed queries the same way\n' +
        '  index.usearch   an HNSW index (usearch), built from --ann-threshold items\n' +
        '  collection.json dimension, count, the model manifest, the index state\n' +
        'The items are images (--images, with an image model), descriptors embedded\n' +
        'by a descriptor model (--db), or embeddings already made (--embeddings, e.g.\n' +
        'emb/images.npy from ddistill embed; paths come from embed.json beside it).\n' +
        '--append adds items to an existing collection: new rows go into the table and\n' +
        'into the index, nothing is rebuilt.',
    )
    .option('--model <dir>', 'train run folder or exported model (not needed with --append)')
    .option('--images <dir|list>', 'images: a folder (searched recursively) or a list file')
    .option('--db <file.npy>', 'descriptors to embed with a descriptor model')
    .option('--embeddings <file.npy>', 'embeddings made by ddistill embed with the same model')
    .option('--labels <file>', 'a label per item (one per line or a JSON array), stored with it')
    .requiredOption('--out <dir>', 'collection folder (new or empty; with --append, the collection)')
    .option('--append', 'add the items to the collection at --out')
    .option('--ann-threshold <n>', 'build the ANN index once the collection has this many items (default 10000)', parsePositiveInt)
    .option('--skip-bad-images', 'leave out unreadable images (listed at the end) instead of stopping')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto'))
    .option('--json', 'print one JSON line instead of text')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  ddistill index --model run/ --images photos/ --out collection/\n' +
        '  ddistill index --images new-photos/ --out collection/ --append\n' +
        '  ddistill index --model run/ --embeddings emb/images.npy --out collection/',
    )
    .action(async (flags: IndexFlags) => {
      const images = imageProgress('embedding');
      let s;
      try {
        s = await buildCollection({ ...flags, skipBad: flags.skipBadImages, onBackend: (b) => note(backendLine(b)), onSkip: images.onSkip, onProgress: images.onProgress });
      } finally {
        images.done();
      }
      if (flags.json) return print(JSON.stringify(s));
      print(`${flags.append ? 'added' : 'indexed'} ${s.added} items → ${s.out} (${s.count} in all, ${s.dimension}-d, ${s.index === 'hnsw' ? 'HNSW index' : 'exact search'}) in ${duration(s.seconds)}`);
      if (s.skipped.length > 0) print(`skipped ${s.skipped.length} unreadable images: ${s.skipped.join(', ')}`);
    });
}

interface QueryFlags {
  collection: string;
  image?: string[];
  vector?: string;
  embedding?: string;
  topK: number;
  exact?: boolean;
  backend: BackendChoice;
  json?: boolean;
}

export function queryCommand(): Command {
  return new Command('query')
    .summary('the nearest items of a collection to photos or vectors')
    .description(
      'Embeds each query with the collection\'s model and prints its nearest items\n' +
        '(Euclidean distance between the unit-length embeddings): through the HNSW\n' +
        'index when the collection has one, else (or with --exact) by exact search.',
    )
    .requiredOption('--collection <dir>', 'a folder written by ddistill index')
    .option('--image <files...>', 'query photos (collections of an image model)')
    .option('--vector <file.npy>', 'query descriptors, embedded by the model (descriptor collections)')
    .option('--embedding <file.npy>', 'query embeddings already made with the collection\'s model')
    .option('--top-k <n>', 'neighbours per query', parsePositiveInt, 10)
    .option('--exact', 'exact search even when the collection has an ANN index')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto'))
    .option('--json', 'print one JSON line per query instead of text')
    .addHelpText('after', '\nExamples:\n  ddistill query --collection collection/ --image photo.jpg --top-k 5\n  ddistill query --collection collection/ --vector q.npy --json')
    .action(async (flags: QueryFlags) => {
      const input: QueryInput = {
        ...(flags.image ? { images: flags.image } : {}),
        ...(flags.vector ? { descriptors: readMatrix(flags.vector) } : {}),
        ...(flags.embedding ? { embeddings: readMatrix(flags.embedding) } : {}),
      };
      const c = await openCollection(flags.collection, { backend: flags.backend });
      try {
        const results = await c.query(input, { k: flags.topK, exact: flags.exact });
        const names = flags.image ?? results.map((_, i) => `query ${i}`);
        results.forEach((hits, q) => {
          if (flags.json) return print(JSON.stringify({ query: names[q], neighbours: hits }));
          print(`${names[q]}${c.approximate && !flags.exact ? '' : ' (exact)'}:`);
          hits.forEach((h, r) => print(`  ${String(r + 1).padStart(3)}  ${h.distance.toFixed(4)}  #${h.id}${h.path ? `  ${h.path}` : ''}${h.label ? `  [${h.label}]` : ''}`));
        });
      } finally {
        c.close();
      }
    });
}
