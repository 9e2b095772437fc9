/**
 * The house rules, checked by `npm test` (`npm run check:layers`): no import circles, and layers
 * that only look down. A layer may import the layers below it and its own folder, never a layer
 * above it nor a sibling folder of its own layer. docs/design.md describes the layers.
 */
const LAYERS = [
  ['errors.ts', 'version.ts'],
  ['io'],
  ['matrix.ts'],
  ['backend'],
  ['search', 'graph', 'triplets'],
  ['eval', 'diffusion', 'model'],
  ['collection', 'train'],
  ['report'],
  ['pipeline'],
  ['cli', 'index.ts'],
];

/** A path pattern for one folder or top-level file of src/. */
const place = (name) => (name.endsWith('.ts') ? `^src/${name.replace('.', '\\.')}$` : `^src/${name}/`);

const layerRules = LAYERS.flatMap((layer, i) =>
  layer.map((name) => ({
    name: `layer-${name.replace('.ts', '')}`,
    comment: `${name} (layer ${i}) may import only layers 0–${i - 1} and itself: not ${[...LAYERS.slice(i + 1).flat(), ...layer.filter((n) => n !== name)].join(', ')}`,
    severity: 'error',
    from: { path: place(name) },
    to: { path: [...LAYERS.slice(i + 1).flat(), ...layer.filter((n) => n !== name)].map(place) },
  })),
).filter((r) => r.to.path.length > 0);

/** The command files of src/cli/: only main.ts imports them. */
const COMMANDS = '^src/cli/(bootstrap|collection|demo|diffuse|embed|eval|search|train|triplets)\\.ts$';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'Files that import each other in a loop: a layer that is not one.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'commands-stand-alone',
      comment: 'A command does not import another command; what two share lives in cli/flags/ or a shared module.',
      severity: 'error',
      from: { path: '^src/cli/', pathNot: '^src/cli/main\\.ts$' },
      to: { path: COMMANDS },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^src/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
