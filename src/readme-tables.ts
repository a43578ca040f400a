// The README's generated tables, drawn from the declarations they document, so that the README
// cannot say one thing while the code does another:
//
//   table          what it lists                               drawn from
//   options        every command-line flag and its default     OPTIONS (src/server/options.ts)
//   limits         what is bounded, and what happens there     SERVER_LIMITS (src/server/limits.ts),
//                                                              CHAT_LIMITS and CHAT_SETTINGS (src/config.ts)
//   chat-settings  the chat's environment variables            CHAT_SETTINGS (src/config.ts)
//   metrics        what GET /metrics reports                   METRICS (src/metrics.ts)
//
// Each table sits in the README between `<!-- NAME:begin -->` and `<!-- NAME:end -->`;
// test/limits.test.ts and test/config.test.ts fail when one differs from what is rendered here.
// To regenerate them after changing a declaration:
//
//   npm run build && node dist/readme-tables.js --write     rewrites README.md's generated tables
//   node dist/readme-tables.js                              prints the limits table
//
// This module imports both the server's and the chat's declarations, which is why it lives
// outside src/server/: the server never imports the application.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CHAT_LIMITS, CHAT_SETTINGS, renderSettingsTable, type NumberSetting } from './config.js';
import { renderMetricsTable } from './metrics.js';
import { SERVER_LIMITS, type FlagLimit, type Limit } from './server/limits.js';
import { renderOptionsTable } from './server/options.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A value with its unit, as a person reads it: `64 KiB`, `20 s`, `5 min`, `10,000 connections`. */
export function formatQuantity(value: number, unit: string): string {
  if (unit === 'bytes') {
    if (value >= MiB && value % MiB === 0) return `${value / MiB} MiB`;
    if (value >= KiB && value % KiB === 0) return `${value / KiB} KiB`;
  }
  if (unit === 'ms') {
    if (value >= 60_000 && value % 60_000 === 0) return `${value / 60_000} min`;
    if (value >= 1000 && value % 1000 === 0) return `${value / 1000} s`;
  }
  // Thousands separators from five digits on, where they help: `10,000`, but `1024`.
  return `${value >= 10_000 ? value.toLocaleString('en-US') : value} ${unit}`;
}

/** One row: what is bounded, the bound, what happens at it, why this value. */
function row(cells: string[]): string {
  for (const cell of cells) {
    // A declaration's text must not break the table it is rendered into.
    if (/[|\n]/.test(cell)) throw new Error(`a table cell may hold no "|" and no line break: ${JSON.stringify(cell)}`);
  }
  return `| ${cells.join(' | ')} |`;
}

/**
 * The README's "What is bounded, and what happens at the bound": every server limit (a flag's row
 * shows the flag and its default), then the chat's fixed limits and the settings that bound a
 * queue.
 */
export function renderLimitsTable(): string {
  const rows = ['| what | bound | at the bound | why this value |', '|---|---|---|---|'];
  for (const limit of Object.values(SERVER_LIMITS as Record<string, Limit | FlagLimit>)) {
    const bound = 'flag' in limit ? `\`${limit.flag}\`, default ${formatQuantity(limit.value, limit.unit)}` : formatQuantity(limit.value, limit.unit);
    rows.push(row([limit.what, bound, limit.atBound, limit.why]));
  }
  rows.push(row(['*the chat (src/config.ts)*', '', '', '']));
  for (const setting of Object.values(CHAT_SETTINGS as Record<string, NumberSetting>)) {
    if (setting.what === undefined || setting.atBound === undefined) continue;
    rows.push(row([setting.what, `\`${setting.env}\`, default ${formatQuantity(setting.default, setting.unit)}`, setting.atBound, setting.why]));
  }
  for (const limit of Object.values(CHAT_LIMITS)) {
    rows.push(row([limit.what, formatQuantity(limit.value, limit.unit), limit.atBound, limit.why]));
  }
  return rows.join('\n');
}

/** The README's generated tables, by marker name. */
export const README_TABLES: Record<string, () => string> = {
  options: renderOptionsTable,
  limits: renderLimitsTable,
  'chat-settings': renderSettingsTable,
  metrics: renderMetricsTable,
};

/** The markers of a generated table on lines of their own, and the lines between (maybe none). */
const blockPattern = (name: string): RegExp => new RegExp(`<!-- ${name}:begin -->\\n(?:([\\s\\S]*?)\\n)?<!-- ${name}:end -->`);

/** The table between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in `readme`, or null without markers. */
export function readmeTable(readme: string, name: string): string | null {
  const match = blockPattern(name).exec(readme);
  return match === null ? null : match[1] ?? '';
}

/** `readme` with every generated table rendered afresh; throws if a table's markers are missing. */
export function refreshReadme(readme: string): string {
  let refreshed = readme;
  for (const [name, render] of Object.entries(README_TABLES)) {
    if (readmeTable(refreshed, name) === null) throw new Error(`README.md has no <!-- ${name}:begin --> ... <!-- ${name}:end --> markers`);
    // A function replacement, so that `$` in a table is never read as a pattern.
    refreshed = refreshed.replace(blockPattern(name), () => `<!-- ${name}:begin -->\n${render()}\n<!-- ${name}:end -->`);
  }
  return refreshed;
}

// Run as a script (not when imported by a test): print the limits table, or rewrite README.md.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === '--write') {
    const path = fileURLToPath(new URL('../README.md', import.meta.url));
    const before = readFileSync(path, 'utf8');
    const after = refreshReadme(before);
    if (after !== before) writeFileSync(path, after);
    process.stdout.write(after === before ? 'README.md is up to date\n' : 'README.md rewritten\n');
  } else if (process.argv[2] === undefined) {
    process.stdout.write(`${renderLimitsTable()}\n`);
  } else {
    process.stderr.write('usage: node dist/readme-tables.js [--write]\n');
    process.exitCode = 2;
  }
}
