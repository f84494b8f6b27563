// Tests run on the TypeScript sources through @swc/jest (types are checked by `tsc` in
// `npm test`), as native ESM: node --experimental-vm-modules, see package.json.
const swc = [
  '@swc/jest',
  {
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
    module: { type: 'es6' },
    sourceMaps: 'inline',
  },
];

/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': swc },
  moduleNameMapper: {
    // Workspace packages are tested from their sources, not their dist.
    '^@lifecycle/(api|ingest|projector)$': '<rootDir>/services/$1/src/index.ts',
    // The EventStoreDB adapter is a subpath of its own: its gRPC client is slow to load.
    '^@lifecycle/eventstore/eventstoredb$': '<rootDir>/packages/eventstore/src/eventstoredb.ts',
    // CSV alone, for `lifecycle sql`: the API's index loads fastify.
    '^@lifecycle/api/csv$': '<rootDir>/services/api/src/csv.ts',
    '^@lifecycle/([a-z]+)$': '<rootDir>/packages/$1/src/index.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testMatch: ['**/*.spec.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  testTimeout: 60_000,
};
