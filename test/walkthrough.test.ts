// docs/walkthrough.md follows one chat message through the code, naming a file and a function at
// every step. Prose about code goes stale silently; this test makes it fail loudly instead. It
// reads the walkthrough with one simple rule (stated at the top of the walkthrough too):
//
//   - A *block* is a paragraph, a list item, a table row or a heading. Fenced code is skipped.
//     A list item starts with the current file of the paragraph before its list (see below).
//   - A code span that begins with src/, static/, test/, docs/ or examples/ is a path from the
//     project's root, and must exist. A code span ending in .ts, .mjs or .html must be such a
//     path, and it becomes the block's *current file* until the next one.
//   - A code span that is an identifier (`FrameParser`, `PUBLISH_BURST`) or a call (`receive()`,
//     `Hub.publish()`) names something in a file, and each of its dotted parts must occur in that
//     file as a whole word. The file is the one right after it when the text says so
//     (`push()` in `src/server/frames.ts`, or "of", or "from"), else the block's current file.
//     With neither (a Python name, a browser API), or dotted without parentheses
//     (`websocket.receive`, an ASGI event), a code span is not checked.
//   - A relative link must point at a file of the project, and its #anchor at a heading there.
//
// The extractor is tested on a small text first, so that a checker that finds nothing (and so
// cannot fail) would be noticed.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, normalize } from 'node:path';
import { describe, test } from 'node:test';
import { PROJECT_ROOT } from './helpers/server.js';

const WALKTHROUGH = 'docs/walkthrough.md';
const ROOTS = ['src/', 'static/', 'test/', 'docs/', 'examples/'];
const SOURCE_FILE = /\.(ts|mjs|html)$/;
/** `name`, or a call: `name()`, `Class.method()`. */
const IDENTIFIER = /^(?:[A-Za-z_$][\w$]*|[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*\(\))$/;

/** One checked reference: a path alone (`name` null), or a name in a file. */
export interface Reference {
  line: number;
  file: string;
  name: string | null;
}

/** What the check needs of the project: a file's text (null if it is not a file), and existence. */
export interface Tree {
  read(path: string): string | null;
  exists(path: string): boolean;
}

/** A block's lines joined, where each line starts in the joined text, and what kind of block. */
interface Block {
  kind: 'paragraph' | 'item' | 'row' | 'heading';
  text: string;
  starts: number[];
  firstLine: number;
}

/** The blocks of a Markdown text, by the rule at the top (fenced code is left out). */
function blocksOf(markdown: string): Block[] {
  const blocks: Block[] = [];
  let block: Block | null = null;
  let inFence = false;
  const end = (): void => {
    if (block !== null) blocks.push(block);
    block = null;
  };
  markdown.split('\n').forEach((text, index) => {
    if (/^\s*(```|~~~)/.test(text)) {
      end();
      inFence = !inFence;
      return;
    }
    if (inFence) return;
    if (text.trim() === '') return end();
    // A heading, a table row and a list item each start a block of their own; a heading ends it.
    const kind = /^\s*#/.test(text) ? 'heading' : /^\s*\|/.test(text) ? 'row' : /^\s*([-*+]|\d+\.)\s/.test(text) ? 'item' : null;
    if (kind !== null) end();
    if (block === null) block = { kind: kind ?? 'paragraph', text: '', starts: [], firstLine: index + 1 };
    const open: Block = block;
    if (open.starts.length > 0) open.text += '\n';
    open.starts.push(open.text.length);
    open.text += text;
    if (kind === 'heading') end();
  });
  end();
  return blocks;
}

function isPath(span: string): boolean {
  return ROOTS.some((root) => span.startsWith(root));
}

/** The references of a walkthrough, by the rule at the top, and the problems with its paths' form. */
export function extractReferences(markdown: string): { references: Reference[]; problems: string[] } {
  const references: Reference[] = [];
  const problems: string[] = [];
  /** The current file at the end of the last paragraph: where the list items after it start. */
  let paragraphFile: string | null = null;
  for (const block of blocksOf(markdown)) {
    const lineAt = (offset: number): number => block.firstLine + block.starts.filter((start) => start <= offset).length - 1;
    let current: string | null = block.kind === 'item' ? paragraphFile : null;
    for (const match of block.text.matchAll(/`([^`\n]+)`/g)) {
      const span = match[1]!;
      const line = lineAt(match.index);
      if (isPath(span)) {
        references.push({ line, file: span, name: null });
        if (SOURCE_FILE.test(span)) current = span;
      } else if (SOURCE_FILE.test(span)) {
        problems.push(`line ${line}: \`${span}\`: write source files as paths from the project's root (src/..., static/...)`);
      } else if (IDENTIFIER.test(span)) {
        // `name()` in `src/file.ts` (or "of", "from"): that file; otherwise the current one.
        const named = /^\s+(?:in|of|from)\s+`([^`\n]+)`/.exec(block.text.slice(match.index + match[0].length));
        const file = named !== null && isPath(named[1]!) && SOURCE_FILE.test(named[1]!) ? named[1]! : current;
        if (file !== null) references.push({ line, file, name: span });
      }
    }
    if (block.kind === 'paragraph') paragraphFile = current;
    else if (block.kind === 'heading') paragraphFile = null;
  }
  return { references, problems };
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export function headingAnchor(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
}

function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  let inFence = false;
  for (const text of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(text)) inFence = !inFence;
    else if (!inFence && /^#{1,6}\s/.test(text)) anchors.add(headingAnchor(text.replace(/^#+/, '')));
  }
  return anchors;
}

function occursAsWord(source: string, word: string): boolean {
  const escaped = word.replace(/[$]/g, '\\$');
  return new RegExp(`(?<![\\w$])${escaped}(?![\\w$])`).test(source);
}

/** Every problem with the walkthrough at `docPath` (a path from the root), as one line each. */
export function checkWalkthrough(markdown: string, docPath: string, tree: Tree): string[] {
  const { references, problems } = extractReferences(markdown);
  for (const { line, file, name } of references) {
    if (name === null) {
      if (!tree.exists(file.replace(/\/$/, ''))) problems.push(`line ${line}: \`${file}\` does not exist`);
      continue;
    }
    const source = tree.read(file);
    if (source === null) continue; // already reported as a path that does not exist
    const missing = name.replace(/\(\)$/, '').split('.').filter((part) => !occursAsWord(source, part));
    if (missing.length > 0) problems.push(`line ${line}: \`${name}\` is not in ${file} (no ${missing.join(', ')})`);
  }
  const docDir = docPath.split('/').slice(0, -1).join('/');
  markdown.split('\n').forEach((text, index) => {
    for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = match[1]!;
      if (/^[a-z]+:/i.test(target)) continue; // https:, mailto:
      const [pathPart = '', anchor] = target.split('#');
      const path = pathPart === '' ? docPath : normalize(join(docDir, pathPart)).replace(/\\/g, '/');
      if (path.startsWith('..')) continue; // outside the project (../shared): not ours to check
      if (!tree.exists(path)) {
        problems.push(`line ${index + 1}: the link ${target} points at ${path}, which does not exist`);
        continue;
      }
      const headings = pathPart === '' ? markdown : tree.read(path) ?? '';
      if (anchor !== undefined && path.endsWith('.md') && !anchorsOf(headings).has(anchor)) {
        problems.push(`line ${index + 1}: the link ${target}: ${path} has no heading #${anchor}`);
      }
    }
  });
  return problems;
}

/** The project on disk. */
const projectTree: Tree = {
  read(path) {
    const full = join(PROJECT_ROOT, path);
    return existsSync(full) && statSync(full).isFile() ? readFileSync(full, 'utf8') : null;
  },
  exists: (path) => existsSync(join(PROJECT_ROOT, path)),
};

describe('the extraction rule', () => {
  const sample = [
    '# Step `src/a.ts`',
    '',
    'The parser `src/a.ts` has `parse()` and `Parser.push()`; `src/b.ts` has `LIMIT`,',
    'and the `websocket.receive` event is dotted: not checked.',
    '',
    'A new paragraph forgets the file: `orphan()` is not checked, but `parse()` in',
    '`src/a.ts` is checked there; after `src/b.ts`, `Parser` of `src/a.ts` too.',
    '- a list item with `src/a.ts` `parse()`',
    '- its sibling starts with the file of the paragraph before the list: `parse()`',
    '| `manager.Queue()` | `src/b.ts` `LIMIT` |',
    '```ts',
    '`src/in-fence.ts` `ignored()`',
    '```',
    'A short name like `a.ts` is refused; the folder `src/rooms/` is a path.',
    '',
    'A list about `src/b.ts`:',
    '',
    '- inherits it: `LIMIT`',
    '- and so does its sibling: `LIMIT`',
    '## A heading forgets it',
    '- `orphan()` is not checked',
  ].join('\n');

  test('finds paths and the names that go with them, block by block', () => {
    const { references, problems } = extractReferences(sample);
    assert.deepEqual(references, [
      { line: 1, file: 'src/a.ts', name: null },
      { line: 3, file: 'src/a.ts', name: null },
      { line: 3, file: 'src/a.ts', name: 'parse()' },
      { line: 3, file: 'src/a.ts', name: 'Parser.push()' },
      { line: 3, file: 'src/b.ts', name: null },
      { line: 3, file: 'src/b.ts', name: 'LIMIT' },
      { line: 6, file: 'src/a.ts', name: 'parse()' },
      { line: 7, file: 'src/a.ts', name: null },
      { line: 7, file: 'src/b.ts', name: null },
      { line: 7, file: 'src/a.ts', name: 'Parser' },
      { line: 7, file: 'src/a.ts', name: null },
      { line: 8, file: 'src/a.ts', name: null },
      { line: 8, file: 'src/a.ts', name: 'parse()' },
      { line: 9, file: 'src/a.ts', name: 'parse()' },
      { line: 10, file: 'src/b.ts', name: null },
      { line: 10, file: 'src/b.ts', name: 'LIMIT' },
      { line: 14, file: 'src/rooms/', name: null },
      { line: 16, file: 'src/b.ts', name: null },
      { line: 18, file: 'src/b.ts', name: 'LIMIT' },
      { line: 19, file: 'src/b.ts', name: 'LIMIT' },
    ]);
    assert.deepEqual(problems, ["line 14: `a.ts`: write source files as paths from the project's root (src/..., static/...)"]);
  });

  test('reports names missing from their file, missing paths and broken links', () => {
    const files: Record<string, string> = {
      'src/a.ts': 'export class Parser { push() {} }\nexport function parse() {}\n',
      'src/b.ts': 'export const LIMITS = 1;\n', // LIMIT is only part of a word here
      'docs/w.md': '',
      'README.md': '# Title\n## How it works\n',
    };
    const tree: Tree = {
      read: (path) => files[path] ?? null,
      exists: (path) => path in files || Object.keys(files).some((name) => name.startsWith(`${path}/`)),
    };
    const doc = `${sample}\n\nSee [the map](#step-srcats), [how](../README.md#how-it-works), [gone](../README.md#gone) and [nothing](../src/c.ts).\n`;
    assert.deepEqual(checkWalkthrough(doc, 'docs/w.md', tree), [
      "line 14: `a.ts`: write source files as paths from the project's root (src/..., static/...)",
      'line 3: `LIMIT` is not in src/b.ts (no LIMIT)',
      'line 10: `LIMIT` is not in src/b.ts (no LIMIT)',
      'line 14: `src/rooms/` does not exist',
      'line 18: `LIMIT` is not in src/b.ts (no LIMIT)',
      'line 19: `LIMIT` is not in src/b.ts (no LIMIT)',
      'line 23: the link ../README.md#gone: README.md has no heading #gone',
      'line 23: the link ../src/c.ts points at src/c.ts, which does not exist',
    ]);
  });

  test('heading anchors as GitHub writes them', () => {
    assert.equal(headingAnchor(' 2. A lobby message: `websocket.receive`, step by step'), '2-a-lobby-message-websocketreceive-step-by-step');
    assert.equal(headingAnchor('Rooms: sign in, and talk with members only'), 'rooms-sign-in-and-talk-with-members-only');
  });
});

test(`${WALKTHROUGH}: every file it names exists, every function it names is in its file, every link lands`, () => {
  const markdown = readFileSync(join(PROJECT_ROOT, WALKTHROUGH), 'utf8');
  const { references } = extractReferences(markdown);
  // The walkthrough cites the code at every step: a rule that stopped matching would check nothing.
  assert.ok(references.some((r) => r.file === 'src/server/frames.ts' && r.name === 'FrameParser.push()'), 'the walkthrough names FrameParser.push() in src/server/frames.ts');
  assert.ok(references.some((r) => r.file === 'static/index.html' && r.name === 'handleLobbySubmit()'), 'the walkthrough names handleLobbySubmit() in static/index.html');
  assert.deepEqual(checkWalkthrough(markdown, WALKTHROUGH, projectTree), []);
});
