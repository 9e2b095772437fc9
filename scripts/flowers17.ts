/**
 * The Flowers-17 benchmark split (`../shared/data/flowers17`): the queries are the 170 images that
 * `data/splits/flowers17-queries.txt` names (the first 10 of each class), the other 1,190 the
 * database. Writes the image and label lists into `dir` and returns the `bootstrap` arguments.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const QUERY_NAMES = new URL('../data/splits/flowers17-queries.txt', import.meta.url);

export function flowersSplit(data: string, dir: string): { args: string[]; queries: number; database: number } {
  const files = readFileSync(join(data, 'files.txt'), 'utf8').trim().split('\n');
  const labels = readFileSync(join(data, 'labels.txt'), 'utf8').trim().split('\n');
  const queryNames = new Set(readFileSync(QUERY_NAMES, 'utf8').trim().split('\n'));
  const split = { db: [] as number[], queries: [] as number[] };
  files.forEach((name, i) => (queryNames.has(name) ? split.queries : split.db).push(i));
  const write = (name: string, lines: string[]) => {
    writeFileSync(join(dir, name), lines.join('\n') + '\n');
    return join(dir, name);
  };
  const args = [
    '--images', write('db.txt', split.db.map((i) => join(data, 'images', files[i]!))),
    '--query-images', write('queries.txt', split.queries.map((i) => join(data, 'images', files[i]!))),
    '--labels', write('db-labels.txt', split.db.map((i) => labels[i]!)),
    '--query-labels', write('query-labels.txt', split.queries.map((i) => labels[i]!)),
  ];
  return { args, queries: split.queries.length, database: split.db.length };
}
