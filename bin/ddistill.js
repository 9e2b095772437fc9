#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

// `ddistill … | head` closes the pipe early: stop quietly, as Unix tools do.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`ddistill: internal error: ${err?.stack ?? err}\n`);
    process.exitCode = 2;
  },
);
