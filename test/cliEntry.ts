/** Runs the CLI from the sources (for tests that need a separate process): node --import tsx test/cliEntry.ts … */
import { main } from '../src/cli/main.js';

process.exitCode = await main(process.argv);
