// Plain-text tables for the terminal: aligned columns, units in the headers, numbers right-aligned.
// The report is meant to be read by a person; the same figures, unrounded, go to --json.

export type Cell = string | number | null | undefined;

/** Formats a number for a table: thousands separators, `digits` decimals; null → "n/a". */
export function num(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A table with a title line; cells that look numeric are right-aligned, text left-aligned. */
export function table(title: string, headers: string[], rows: Cell[][]): string {
  const text = rows.map((row) => row.map((cell) => (cell === null || cell === undefined ? 'n/a' : typeof cell === 'number' ? num(cell) : cell)));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((row) => (row[i] ?? '').length)));
  const numeric = (cell: string): boolean => /^[-+]?[\d,.]+( ?[%×a-zA-Zµ/]+)?$|^n\/a$/.test(cell);
  const line = (cells: string[], header: boolean): string =>
    '  ' + cells.map((cell, i) => (!header && numeric(cell) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  // Headers above numeric columns are right-aligned too, so units sit over their numbers.
  const headerLine = '  ' + headers.map((h, i) => (text.length > 0 && numeric(text[0]![i] ?? '') ? h.padStart(widths[i]!) : h.padEnd(widths[i]!))).join('  ').trimEnd();
  return [title, headerLine, ...text.map((row) => line(row, false))].join('\n');
}
