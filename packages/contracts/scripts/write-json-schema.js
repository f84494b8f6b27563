// Regenerates schema/touchpoint.v1.schema.json from the zod contract (run after a build:
// `npm run schema`). A unit test fails while the checked-in file differs.
import { writeFileSync } from 'node:fs';
import { touchpointJsonSchema } from '../dist/index.js';

const file = new URL('../schema/touchpoint.v1.schema.json', import.meta.url);
writeFileSync(file, `${JSON.stringify(touchpointJsonSchema(), null, 2)}\n`);
console.log(`wrote ${file.pathname}`);
