/**
 * docs/commands.md is generated from the command table and the deny rules,
 * so the documentation cannot drift from what the proxy does
 * (`npm run docs`; a unit test checks the file is current).
 */
import { COMMANDS, Cmd, ReplyShape, Syntax } from '../protocol/text/commands.js';
import { Disposition, STATS_GROUPS, TENANT_DISPOSITION } from './command-deny.js';

const SYNTAX_TEXT: Record<number, string> = {
  [Syntax.RETRIEVE]: '`<key>*`',
  [Syntax.GAT]: '`<exptime> <key>*`',
  [Syntax.STORE]: '`<key> <flags> <exptime> <bytes> [noreply]` + data',
  [Syntax.CAS]: '`<key> <flags> <exptime> <bytes> <cas unique> [noreply]` + data',
  [Syntax.DELETE]: '`<key> [0] [noreply]`',
  [Syntax.ARITH]: '`<key> <value> [noreply]`',
  [Syntax.TOUCH]: '`<key> <exptime> [noreply]`',
  [Syntax.FLUSH]: '`[delay] [noreply]`',
  [Syntax.VERBOSITY]: '`<level> [noreply]`',
  [Syntax.NO_ARGS]: '—',
  [Syntax.STATS]: '`[<group> <args>*]`',
  [Syntax.META_GET]: '`<key> <flag>*`',
  [Syntax.META_SET]: '`<key> <datalen> <flag>*` + data',
  [Syntax.META_DELETE]: '`<key> <flag>*`',
  [Syntax.META_ARITH]: '`<key> <flag>*`',
  [Syntax.META_DEBUG]: '`<key> [b]`',
  [Syntax.ADMIN_LINE]: '`<args>*`',
};

const REPLY_TEXT: Record<number, string> = {
  [ReplyShape.VALUES]: 'VALUE… END',
  [ReplyShape.LINE]: 'one line',
  [ReplyShape.UNTIL_END]: 'lines… END',
  [ReplyShape.META]: 'VA + data, or one line',
  [ReplyShape.NONE]: 'none (closes)',
  [ReplyShape.UNTIL_EN]: 'lines… EN',
};

function tenantBehaviour(id: number, name: string): string {
  switch (id) {
    case Cmd.FLUSH_ALL:
      return "rotates the tenant's generation (now or after the delay); nothing is flushed upstream";
    case Cmd.STATS:
      return `plain \`stats\`: the tenant's own counters; ${STATS_GROUPS.map((g) => `\`${g}\``).join(', ')}: \`CLIENT_ERROR stats <group> not allowed\`; other groups: \`ERROR\``;
    case Cmd.VERBOSITY:
      return '`OK`, never forwarded';
    case Cmd.QUIT:
      return 'closes the connection after earlier replies';
  }
  const d = TENANT_DISPOSITION[id];
  if (d === Disposition.DENY) return `\`CLIENT_ERROR ${name} not allowed\``;
  return 'forwarded, keys in the tenant namespace';
}

export function renderCommandsDoc(): string {
  const lines = [
    '# Supported commands',
    '',
    'Generated from `src/protocol/text/commands.ts` and `src/policy/command-deny.ts` by `npm run docs`.',
    'Admin tenants run every command below, forwarded unchanged. Any other command name answers `ERROR`.',
    '',
    '| command | arguments | memcached reply | for a tenant |',
    '|---|---|---|---|',
  ];
  for (const c of COMMANDS) {
    lines.push(
      `| \`${c.name}\` | ${SYNTAX_TEXT[c.syntax] ?? ''} | ${REPLY_TEXT[c.reply] ?? ''} | ${tenantBehaviour(c.id, c.name)} |`,
    );
  }
  lines.push('');
  return lines.join('\n');
}
