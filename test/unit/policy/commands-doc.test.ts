import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderCommandsDoc } from '../../../src/policy/commands-doc.js';

describe('docs/commands.md', () => {
  it('is generated from the command table and is current (run `npm run docs`)', () => {
    const onDisk = fs.readFileSync(new URL('../../../docs/commands.md', import.meta.url), 'utf8');
    expect(onDisk).toBe(renderCommandsDoc());
  });
});
