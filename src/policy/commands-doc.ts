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
      return "rotates the tenant's generation (now or after the delay); nothing is flushed upstream; an enforce-mode tenant: `CLIENT_ERROR flush_all not allowed`";
    case Cmd.STATS:
      return `plain \`stats\`: the tenant's own counters up to this reply, memcached's names (\`STAT version\` is memcached's) then \`memgate_version\`, \`memgate_tenant\`, \`memgate_denied\`; ${STATS_GROUPS.map((g) => `\`${g}\``).join(', ')}: \`CLIENT_ERROR stats <group> not allowed\`; other groups: \`ERROR\``;
    case Cmd.VERBOSITY:
      return '`OK`, never forwarded';
    case Cmd.QUIT:
      return 'closes the connection after earlier replies';
    case Cmd.BIN_NOOP:
      return 'answered by memgate, after every earlier reply';
    case Cmd.SASL_LIST_MECHS:
      return '`PLAIN`';
    case Cmd.SASL_AUTH:
      return 'PLAIN authentication against the configured credentials';
    case Cmd.SASL_STEP:
      return '`Auth failure` (PLAIN takes one step)';
    case Cmd.GET:
    case Cmd.GETS:
      return 'forwarded, keys in the tenant namespace; one key: sent to memcached 1.6+ as `mg` (`upstream.metaGets`), answered as VALUE… END';
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
    if (c.binaryOnly) continue;
    lines.push(
      `| \`${c.name}\` | ${SYNTAX_TEXT[c.syntax] ?? ''} | ${REPLY_TEXT[c.reply] ?? ''} | ${tenantBehaviour(c.id, c.name)} |`,
    );
  }
  lines.push(
    '',
    '## Admin tenants on a pool of several servers',
    '',
    'A command with a key goes to the server the key maps to (`upstream.distribution`). Plain `stats` goes to every',
    "server of the admin tenant's pool and the replies are merged: counters that add up (`curr_items`, `total_items`,",
    '`bytes`, `limit_maxbytes`, `curr_connections`, `total_connections`, `cmd_*`, `*_hits`, `*_misses`, `evictions`, …)',
    "are summed; every other line (`pid`, `uptime`, `time`, `version`, settings, `rusage_*`, …) is the first server's. When",
    "a server does not answer, the reply is that server's error. `flush_all`, `cache_memlimit` and `verbosity` go to every",
    'server: `OK` when every server said `OK`, else the first other reply (in server order). `stats <group>`, `version`',
    'and the other keyless commands go to the first server not marked down. With `upstream.ejectHosts`, a server marked',
    'down has left the pool: `stats` and `flush_all` skip it.',
    '',
    '## Binary protocol',
    '',
    'Detected by the first byte of a connection (0x80), as memcached does. Every binary command is translated to',
    'the same request as its text or meta equivalent, so keys, policy and limits are the same; quiet variants',
    'send errors only (GETQ/GETKQ also send hits).',
    '',
    '| binary opcode | becomes | for a tenant |',
    '|---|---|---|',
    '| GET, GETQ, GETK, GETKQ | `mg <key> v f c [k]` | as `mg` |',
    '| GAT, GATQ, TOUCH | `mg <key> [v] f c T<exptime>` | as `mg` |',
    '| SET, ADD, REPLACE (+Q) | `ms <key> <len> F T c [ME/MR] [C]` | as `ms` |',
    '| APPEND, PREPEND (+Q) | `ms <key> <len> MA/MP c [C]` | as `ms` |',
    '| DELETE (+Q) | `md <key> [C]` | as `md` |',
    '| INCREMENT, DECREMENT (+Q) | `ma <key> D M v c [N J]` | as `ma` |',
    '| FLUSH (+Q) | `flush_all [delay]` | as `flush_all` |',
    '| STAT | `stats [group]` | as `stats` |',
    '| VERSION, QUIT (+Q) | `version`, `quit` | as the text command |',
  );
  for (const c of COMMANDS) {
    if (c.binaryOnly) lines.push(`| ${c.name.toUpperCase()} | — | ${tenantBehaviour(c.id, c.name)} |`);
  }
  lines.push('');
  return lines.join('\n');
}
