// Writes docs/ferry.schema.json (the JSON Schema of ferry.yaml) from the
// built service package: npm run docs:config. Point your editor's YAML
// language server at it: `# yaml-language-server: $schema=…/ferry.schema.json`.
import { writeFileSync } from 'node:fs';
import { configJsonSchema } from '../packages/service/dist/config/index.js';

writeFileSync(
  new URL('../docs/ferry.schema.json', import.meta.url),
  JSON.stringify(configJsonSchema(), null, 2) + '\n',
);
console.log('wrote docs/ferry.schema.json');
