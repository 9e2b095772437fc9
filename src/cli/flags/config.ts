/** Options from a JSON file (--config), and the flags every long-running command shares (--resume, --json). */
import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { UserError } from '../../errors.js';


/** Reads a JSON config file of train options (the CLI's flags, camelCased). */
export function readConfig(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new UserError(`${path}: config file not found`);
  try {
    const c = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new Error('not an object');
    return c as Record<string, unknown>;
  } catch (err) {
    throw new UserError(`${path}: not a JSON object of options (${(err as Error).message}); see ddistill train --help`);
  }
}

/** Applies a config file: its values replace defaults, never flags given on the command line. */
export function applyConfig(cmd: Command, path: string): void {
  const config = readConfig(path);
  const keys = cmd.options.map((o) => o.attributeName()).filter((k) => !['config', 'resume', 'json'].includes(k));
  for (const [key, value] of Object.entries(config)) {
    if (!keys.includes(key)) {
      throw new UserError(`${path}: unknown option '${key}'; use the long flag names in camelCase (${keys.join(', ')})`);
    }
    const source = cmd.getOptionValueSource(key);
    if (source === 'cli') continue;
    const option = cmd.options.find((o) => o.attributeName() === key)!;
    const takesValue = option.required || option.optional;
    let parsed: unknown = value;
    if (!takesValue) {
      if (typeof value !== 'boolean') throw new UserError(`${path}: option '${key}' must be true or false, got ${JSON.stringify(value)}`);
    } else if (typeof value !== 'string' && typeof value !== 'number') {
      throw new UserError(`${path}: option '${key}' needs a value, got ${JSON.stringify(value)}`);
    } else if (option.parseArg) {
      try {
        parsed = option.parseArg(String(value), undefined);
      } catch (err) {
        throw new UserError(`${path}: option '${key}': ${(err as Error).message}`);
      }
    } else {
      parsed = String(value);
    }
    cmd.setOptionValueWithSource(key, parsed, 'config');
  }
}

/** --resume, --config (applied before the action) and --json. */
export function addRunOptions(cmd: Command, resumeHelp: string): Command {
  return cmd
    .option('--resume', resumeHelp)
    .option('--config <file.json>', 'options from a JSON file (flags given here win)')
    .option('--json', 'print the summary as one JSON line')
    .hook('preAction', (c) => {
      const path = c.getOptionValue('config') as string | undefined;
      if (path) applyConfig(c, path);
    });
}
