// The server's limits (src/server/limits.ts) and the README's generated tables
// (src/readme-tables.ts): every declaration complete and consistent, the command line's defaults,
// ranges and usage drawn from it, the README's options and limits tables equal to what is rendered
// from the declarations, and the server never importing the application it serves.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { describe, test } from 'node:test';
import { CHAT_LIMITS, CHAT_SETTINGS, type NumberSetting } from '../src/config.js';
import { README_TABLES, formatQuantity, readmeTable, refreshReadme, renderLimitsTable } from '../src/readme-tables.js';
import { SERVER_LIMITS, type FlagLimit, type Limit } from '../src/server/limits.js';
import { OPTIONS, USAGE, UsageError, parseOptions, renderOptionsTable, type ServerOptions } from '../src/server/options.js';
import { CLOSE_TIMEOUT_MS } from '../src/server/sockets.js';
import { SEND_HIGH_WATER_MARK } from '../src/server/ws-transport.js';
import { PROJECT_ROOT } from './helpers/server.js';

const REGENERATE = 'run `npm run build && node dist/readme-tables.js --write` to regenerate it';
const limits = Object.entries(SERVER_LIMITS as Record<string, Limit | FlagLimit>);
const flagLimits = limits.filter((entry): entry is [string, FlagLimit] => 'flag' in entry[1]);

describe('the declarations', () => {
  for (const [name, limit] of limits) {
    test(`${name}: a positive value with its unit, what it bounds, what happens at the bound, and why`, () => {
      assert.ok(Number.isFinite(limit.value) && limit.value > 0, `${name}.value is ${limit.value}`);
      for (const field of ['unit', 'what', 'atBound', 'why'] as const) {
        assert.ok(limit[field].trim().length > 0, `${name}.${field} says something`);
      }
    });
  }

  for (const [name, limit] of flagLimits) {
    test(`${name}: its default lies in the range its flag ${limit.flag} accepts`, () => {
      assert.ok(limit.min <= limit.value && limit.value <= limit.max, `${limit.min} ≤ ${limit.value} ≤ ${limit.max}`);
    });
  }

  test('the inbox resumes below where it pauses (else it would pause and resume on every message)', () => {
    assert.ok(SERVER_LIMITS.inboxResumeMessages.value < SERVER_LIMITS.inboxPauseMessages.value);
    assert.ok(SERVER_LIMITS.inboxResumeBytes.value < SERVER_LIMITS.inboxPauseBytes.value);
  });

  test('the restart backoff starts below its cap', () => {
    assert.ok(SERVER_LIMITS.firstRestartDelayMs.value < SERVER_LIMITS.maxRestartDelayMs.value);
  });

  test('the constants other modules export are the declared values', () => {
    assert.equal(SEND_HIGH_WATER_MARK, SERVER_LIMITS.sendHighWaterBytes.value);
    assert.equal(CLOSE_TIMEOUT_MS, SERVER_LIMITS.closeTimeoutMs.value);
  });
});

describe('the command line follows the declarations', () => {
  const defaults = parseOptions([]);

  for (const [name, limit] of flagLimits) {
    // The declaration's name is the ServerOptions field its flag sets: --ws-max-size, wsMaxSize.
    const field = limit.flag.slice(2).replace(/-(\w)/g, (_, letter: string) => letter.toUpperCase()) as keyof ServerOptions;

    test(`${limit.flag}: declared as ${name}, its default is the declared ${limit.value}`, () => {
      assert.equal(field, name, `${limit.flag} sets ServerOptions.${field}: name its declaration so`);
      assert.equal(defaults[field], limit.value);
      assert.equal(OPTIONS[limit.flag.slice(2) as keyof typeof OPTIONS].default, String(limit.value), 'OPTIONS shows it');
      const line = USAGE.split('\n').findIndex((text) => text.startsWith(`  ${limit.flag} `));
      assert.ok(line >= 0, `the usage has a line for ${limit.flag}`);
      // The default is stated on the flag's last line (its description may wrap).
      const block = USAGE.split('\n').slice(line).findIndex((text) => text.includes('(default '));
      assert.ok(USAGE.split('\n')[line + block]!.endsWith(`(default ${limit.value})`), `the usage states the default of ${limit.flag}`);
    });

    test(`${limit.flag}: accepts ${limit.min} to ${limit.max} and refuses beyond, naming the range`, () => {
      assert.equal(parseOptions([limit.flag, String(limit.min)])[field], limit.min);
      assert.equal(parseOptions([limit.flag, String(limit.max)])[field], limit.max);
      const kind = limit.unit === 's' ? 'a number of seconds' : 'a whole number';
      assert.throws(() => parseOptions([`${limit.flag}=${limit.max + 1}`]), (error: Error) => {
        assert.ok(error instanceof UsageError);
        assert.equal(error.message, `${limit.flag} must be ${kind} from ${limit.min} to ${limit.max}, got "${limit.max + 1}"`);
        return true;
      });
      if (limit.min > 0) {
        // Written with "=": a separate value starting with "-" is refused by parseArgs before us.
        assert.throws(() => parseOptions([`${limit.flag}=${limit.min - 1}`]), { message: `${limit.flag} must be ${kind} from ${limit.min} to ${limit.max}, got "${limit.min - 1}"` });
      }
    });
  }

  test(`--workers: at most the declared ${SERVER_LIMITS.maxWorkers.value}`, () => {
    const max = SERVER_LIMITS.maxWorkers.value;
    assert.equal(parseOptions(['--workers', String(max)]).workers, max);
    assert.throws(() => parseOptions(['--workers', String(max + 1)]), { message: `--workers must be a whole number from 1 to ${max}, got "${max + 1}"` });
  });

  test('every flag with a default applies it, as OPTIONS states it', () => {
    const byFlag: Record<string, unknown> = {
      host: defaults.host, port: String(defaults.port), workers: String(defaults.workers), 'root-path': defaults.rootPath,
      'log-level': defaults.logLevel, lifespan: defaults.lifespan,
    };
    for (const [flag, expected] of Object.entries(byFlag)) {
      assert.equal(OPTIONS[flag as keyof typeof OPTIONS].default, expected, `--${flag}`);
    }
  });
});

describe('formatQuantity', () => {
  const cases: Array<[number, string, string]> = [
    [16 * 1024, 'bytes', '16 KiB'],
    [1024 * 1024, 'bytes', '1 MiB'],
    [1536 * 1024, 'bytes', '1536 KiB'],
    [1000, 'bytes', '1000 bytes'],
    [20_000, 'ms', '20 s'],
    [300_000, 'ms', '5 min'],
    [1500, 'ms', '1500 ms'],
    [100, 'ms', '100 ms'],
    [20, 's', '20 s'],
    [1024, 'fragments', '1024 fragments'],
    [10_000, 'connections', '10,000 connections'],
  ];
  for (const [value, unit, shown] of cases) {
    test(`${value} ${unit} is shown as "${shown}"`, () => assert.equal(formatQuantity(value, unit), shown));
  }
});

describe('the limits table', () => {
  const table = renderLimitsTable();

  test('has a row for every server limit, with its bound, and for the chat\'s fixed limits and queue bounds', () => {
    for (const limit of Object.values(SERVER_LIMITS as Record<string, Limit | FlagLimit>)) {
      const bound = 'flag' in limit ? `\`${limit.flag}\`, default ${formatQuantity(limit.value, limit.unit)}` : formatQuantity(limit.value, limit.unit);
      assert.ok(table.includes(`| ${limit.what} | ${bound} | ${limit.atBound} | ${limit.why} |`), limit.what);
    }
    for (const limit of Object.values(CHAT_LIMITS)) {
      assert.ok(table.includes(`| ${limit.what} | ${formatQuantity(limit.value, limit.unit)} | ${limit.atBound} |`), limit.what);
    }
    const bounding = Object.values(CHAT_SETTINGS as Record<string, NumberSetting>).filter((setting) => setting.what !== undefined);
    assert.deepEqual(bounding.map((setting) => setting.env), ['CHAT_QUEUE_MAX_MESSAGES', 'CHAT_QUEUE_MAX_BYTES', 'CHAT_DEDUPE_MAX_ENTRIES']);
    for (const setting of bounding) assert.ok(table.includes(`| \`${setting.env}\`, default ${formatQuantity(setting.default, setting.unit)} |`), setting.env);
  });

  test('the rows, header and separator included, all have four cells', () => {
    const rows = table.split('\n');
    const expected = 2 + Object.keys(SERVER_LIMITS).length + 1 + Object.keys(CHAT_LIMITS).length + 3;
    assert.equal(rows.length, expected);
    for (const row of rows) assert.equal(row.split('|').length, 6, row);
  });
});

describe('README.md', () => {
  const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');

  test('its options table is the one rendered from OPTIONS', () => {
    const shown = readmeTable(readme, 'options');
    assert.notEqual(shown, null, 'README.md has <!-- options:begin --> and <!-- options:end --> markers');
    assert.equal(shown, renderOptionsTable(), `README.md's options table drifted from src/server/options.ts: ${REGENERATE}`);
  });

  test('its limits table is the one rendered from the declarations', () => {
    const shown = readmeTable(readme, 'limits');
    assert.notEqual(shown, null, 'README.md has <!-- limits:begin --> and <!-- limits:end --> markers');
    assert.equal(shown, renderLimitsTable(), `README.md's limits table drifted from src/server/limits.ts or src/config.ts: ${REGENERATE}`);
  });

  test('regenerating changes nothing', () => {
    assert.equal(refreshReadme(readme), readme, `README.md's generated tables drifted: ${REGENERATE}`);
  });
});

describe('refreshReadme', () => {
  const blocks = (bodies: Record<string, string>) => Object.keys(README_TABLES)
    .map((name) => `text\n<!-- ${name}:begin -->\n${bodies[name] ?? 'stale'}\n<!-- ${name}:end -->\n`).join('');

  test('replaces what is between each pair of markers, and only that', () => {
    const rendered = Object.fromEntries(Object.entries(README_TABLES).map(([name, render]) => [name, render()]));
    assert.equal(refreshReadme(blocks({})), blocks(rendered));
  });

  test('fills an empty block', () => {
    const empty = Object.keys(README_TABLES).map((name) => `<!-- ${name}:begin -->\n<!-- ${name}:end -->\n`).join('');
    assert.equal(readmeTable(empty, 'limits'), '');
    assert.equal(readmeTable(refreshReadme(empty), 'limits'), renderLimitsTable());
  });

  test('refuses a README without a table\'s markers, naming them', () => {
    assert.throws(() => refreshReadme('no markers'), { message: 'README.md has no <!-- options:begin --> ... <!-- options:end --> markers' });
  });
});

test('nothing under src/server/ imports from outside it (the server never imports the app)', () => {
  const directory = join(PROJECT_ROOT, 'src', 'server');
  const files = readdirSync(directory, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts'));
  assert.ok(files.includes('limits.ts'));
  for (const file of files) {
    const source = readFileSync(join(directory, file), 'utf8');
    // `import ... from '...'` (over several lines too), `export ... from '...'`, `import '...'`, `import('...')`.
    for (const match of source.matchAll(/^\s*(?:(?:import|export)\b[^;]*?\bfrom\s+|import\s+)'([^']+)'|\bimport\(\s*'([^']+)'/gm)) {
      const specifier = (match[1] ?? match[2])!;
      if (specifier.startsWith('node:')) continue; // Node's built-ins: the only other imports allowed
      const target = resolve(directory, dirname(file), specifier);
      assert.ok(specifier.startsWith('.') && target.startsWith(directory + sep), `src/server/${file} imports '${specifier}', outside src/server/`);
    }
  }
});
