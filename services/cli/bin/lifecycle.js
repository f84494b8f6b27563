#!/usr/bin/env node
// The `lifecycle` bin. npm links bins before the root `prepare` script builds dist/, and tsc output
// is not executable, so the link points at this committed, executable file, which loads the build.
import { existsSync } from 'node:fs';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('lifecycle: the CLI is not built (services/cli/dist/main.js is missing): run `npm run build`\n');
  process.exit(1);
}
await import(main.href);
