import { Command, CommanderError } from 'commander';
import { UserError } from '../errors.js';
import { packageVersion } from '../version.js';
import { diffuseCommand } from './diffuse.js';
import { evalCommand } from './eval.js';
import { searchCommand } from './search.js';
import { indexCommand, queryCommand } from './collection.js';
import { tripletsCommand } from './triplets.js';
import { trainCommand } from './train.js';
import { bootstrapCommand } from './bootstrap.js';
import { demoCommand } from './demo.js';
import { embedCommand, exportCommand, featuresCommand } from './embed.js';


export function program(): Command {
  return new Command('ddistill')
    .description(
      'Distil a diffusion re-ranking (CAS, LCDP) into an embedding network, then\n' +
        'search by plain Euclidean distance. Each stage reads and writes plain files\n' +
        '(.npy, JSON). Start with `ddistill demo` (npm start).',
    )
    .version(packageVersion())
    .showHelpAfterError('(run with --help for usage)')
    .addCommand(searchCommand())
    .addCommand(diffuseCommand())
    .addCommand(tripletsCommand())
    .addCommand(featuresCommand())
    .addCommand(trainCommand())
    .addCommand(embedCommand())
    .addCommand(exportCommand())
    .addCommand(indexCommand())
    .addCommand(queryCommand())
    .addCommand(bootstrapCommand())
    .addCommand(demoCommand())
    .addCommand(evalCommand());
}

/** Runs the CLI; resolves to the process exit code. Bad input prints one line and exits 1. */
export async function main(argv: readonly string[]): Promise<number> {
  const prog = program().exitOverride();
  for (const c of prog.commands) c.exitOverride();
  try {
    await prog.parseAsync(argv as string[]);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (err instanceof UserError) {
      process.stderr.write(`ddistill: error: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}
