import { Command, Option } from 'commander';
import { BACKEND_CHOICES, type BackendChoice } from '../backend/tfjs.js';
import { embedFiles, exportModel } from '../model/run.js';
import { duration, note, print } from './common.js';

export function embedCommand(): Command {
  return new Command('embed')
    .summary('embed descriptors with a trained model')
    .description(
      'Runs a trained model (a `ddistill train` run folder or an exported model\n' +
        'folder) over database and/or query descriptors, with the preprocessing its\n' +
        'manifest records, and writes L2-normalised embeddings into --out:\n' +
        '  db.npy, queries.npy  float32 rows × embedding dimension\n' +
        '  embed.json           what was embedded, with which model\n' +
        'Search them by Euclidean distance (`ddistill search --metric euclidean`).',
    )
    .requiredOption('--model <dir>', 'train run folder or model folder')
    .option('--db <file.npy>', 'database descriptors')
    .option('--queries <file.npy>', 'query descriptors')
    .requiredOption('--out <dir>', 'output folder (created if needed)')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto'))
    .option('--json', 'print embed.json as one line')
    .addHelpText('after', '\nExample:\n  ddistill embed --model run/ --db db.npy --queries q.npy --out emb/ && ddistill eval --db emb/db.npy --query emb/queries.npy --metric euclidean --gnd gnd.pkl')
    .action(async (flags: { model: string; db?: string; queries?: string; out: string; backend: BackendChoice; json?: boolean }) => {
      const s = await embedFiles({ ...flags, onBackend: (b) => note(`backend: ${b.backend} (${b.source})`) });
      if (flags.json) {
        print(JSON.stringify(s));
        return;
      }
      for (const w of s.written) print(`embedded ${w.rows} rows of ${w.input} → ${w.output} (${s.embeddingDim}-d)`);
      print(`in ${duration(s.seconds)} with ${s.model}`);
    });
}

export function exportCommand(): Command {
  return new Command('export')
    .summary('write a trained model as a standalone tfjs model folder')
    .description(
      'Writes the model of a `ddistill train` run as a standard tfjs layers model\n' +
        '(model.json + weights.bin) plus manifest.json (input kind and dimension,\n' +
        'preprocessing, embedding dimension, training provenance). Any tfjs runtime\n' +
        'loads it with tf.loadLayersModel (tfjs-node: file://DIR/model.json; a\n' +
        'browser: its URL). Normalise each output row to unit length, as the\n' +
        'manifest\'s postprocess says, to get the embeddings `ddistill embed` writes.',
    )
    .requiredOption('--model <dir>', 'train run folder or model folder')
    .requiredOption('--out <dir>', 'destination folder')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES).default('auto'))
    .action(async (flags: { model: string; out: string; backend: BackendChoice }) => {
      const r = await exportModel(flags);
      print(`exported ${r.from} → ${r.out} (${r.manifest.inputDim}-d ${r.manifest.inputKind} → ${r.manifest.embeddingDim}-d embeddings)`);
    });
}
