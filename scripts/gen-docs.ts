import fs from 'node:fs';
import { renderCommandsDoc } from '../src/policy/commands-doc.js';

fs.writeFileSync(new URL('../docs/commands.md', import.meta.url), renderCommandsDoc());
console.log('wrote docs/commands.md');
