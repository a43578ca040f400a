// `node dist/fuzz/heap-diff.js BEFORE.heapsnapshot AFTER.heapsnapshot [--top N]`: what grew
// between two V8 heap snapshots of one process, by constructor.
//
// A .heapsnapshot file is JSON: `snapshot.meta.node_fields` names the fields of each node
// (type, name, id, self_size, edge_count, ...), `nodes` is one flat array of numbers holding those
// fields node after node, and `strings` holds every name. Each node's type indexes
// `meta.node_types[0]` ("object", "closure", "string", "array", "code", "native"...), its name
// indexes `strings` (for an object, its constructor's name). Summing nodes by type and name gives
// "how many Foo objects and how many bytes" for each snapshot, and the difference says what grew.
// Snapshots are taken after a full garbage collection, so everything counted is alive: an object
// whose count keeps rising with the load (and stays when the load stops) is being kept by
// something, which Chrome DevTools' retainer view of the AFTER file then names.
//
// Counted by self size (the object itself, not what it points to), so the rows add up to the
// heap's total and nothing is counted twice.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Group {
  count: number;
  bytes: number;
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] }; node_count: number };
  nodes: number[];
  strings: string[];
}

/** Objects summed by "type name" (objects and closures by constructor or function name). */
export function summarize(path: string): Map<string, Group> {
  const data = JSON.parse(readFileSync(path, 'utf8')) as Snapshot;
  const fields = data.snapshot.meta.node_fields;
  const types = data.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const groups = new Map<string, Group>();
  const nodes = data.nodes;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]!]!;
    const name = data.strings[nodes[i + nameAt]!]!;
    // Strings and code are many and nameless in any useful sense: one row per type.
    const key = type === 'object' || type === 'native' ? name
      : type === 'closure' ? `${name || '(anonymous)'}()`
        : type === 'array' || type === 'hidden' || type === 'synthetic' || type === 'object shape' ? `(${type}) ${name.slice(0, 40)}`
          : `(${type})`;
    const group = groups.get(key);
    if (group) {
      group.count++;
      group.bytes += nodes[i + sizeAt]!;
    } else {
      groups.set(key, { count: 1, bytes: nodes[i + sizeAt]! });
    }
  }
  return groups;
}

export interface Difference {
  key: string;
  before: Group;
  after: Group;
}

/** Rows present in either snapshot, sorted by growth in bytes, largest first. */
export function diff(before: Map<string, Group>, after: Map<string, Group>): Difference[] {
  const none: Group = { count: 0, bytes: 0 };
  const keys = new Set([...before.keys(), ...after.keys()]);
  return [...keys]
    .map((key) => ({ key, before: before.get(key) ?? none, after: after.get(key) ?? none }))
    .sort((a, b) => (b.after.bytes - b.before.bytes) - (a.after.bytes - a.before.bytes));
}

function main(argv: string[]): number {
  const files = argv.filter((arg) => !arg.startsWith('--'));
  const topAt = argv.indexOf('--top');
  const top = topAt >= 0 ? Number(argv[topAt + 1]) : 25;
  if (topAt >= 0) files.splice(files.indexOf(argv[topAt + 1]!), 1);
  if (files.length !== 2 || !(top > 0)) {
    process.stderr.write('Usage: node dist/fuzz/heap-diff.js BEFORE.heapsnapshot AFTER.heapsnapshot [--top N]\n');
    return 2;
  }
  const before = summarize(files[0]!);
  const after = summarize(files[1]!);
  const total = (groups: Map<string, Group>): Group => {
    let count = 0;
    let bytes = 0;
    for (const group of groups.values()) { count += group.count; bytes += group.bytes; }
    return { count, bytes };
  };
  const kb = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;
  const t0 = total(before);
  const t1 = total(after);
  process.stdout.write(`heap: ${t0.count} objects, ${kb(t0.bytes)} → ${t1.count} objects, ${kb(t1.bytes)} (${kb(t1.bytes - t0.bytes)})\n`);
  process.stdout.write(`${'grew by (bytes)'.padStart(16)} ${'count before → after'.padStart(24)}  constructor\n`);
  const rows = diff(before, after);
  const show = (row: Difference): void => {
    const delta = row.after.bytes - row.before.bytes;
    process.stdout.write(`${kb(delta).padStart(16)} ${`${row.before.count} → ${row.after.count}`.padStart(24)}  ${row.key}\n`);
  };
  for (const row of rows.slice(0, top)) show(row);
  const shrunk = rows.slice(-5).filter((row) => row.after.bytes < row.before.bytes);
  if (shrunk.length > 0) {
    process.stdout.write('  ... shrank most:\n');
    for (const row of shrunk.reverse()) show(row);
  }
  return 0;
}

// Run as a command, not when imported (by a test).
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) process.exitCode = main(process.argv.slice(2));
