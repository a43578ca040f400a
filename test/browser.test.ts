// Browser end-to-end test: the real server (2 workers) and the real page in headless chromium,
// driven over the DevTools protocol (test/helpers/cdp.ts). Two tabs chat with each other; the
// message must reach both, and HTML sent as a message must be shown as text, never parsed.
// Without chromium (found on PATH, or at CHROMIUM_PATH) the test is skipped, except in CI
// (CI set), where a missing browser is a failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromiumInstalled, CHROMIUM_PATH, launchBrowser, type Browser, type Page } from './helpers/cdp.js';
import { startServer, type RunningServer } from './helpers/server.js';

interface Shown { classes: string; id: string | null; sender: string | null; text: string | null }

/** The `.msg` lines of `#messages`, as plain data. */
const messages = (page: Page): Promise<Shown[]> => page.evaluate<Shown[]>(`
  [...document.querySelectorAll('#messages .msg')].map((m) => ({
    classes: m.className,
    id: m.getAttribute('data-id'),
    sender: m.querySelector('.sender')?.textContent ?? null,
    text: m.querySelector('.text')?.textContent ?? null,
  }))`);

/** Waits until a `.msg` whose `.text` is exactly `text` is shown, and returns it. */
async function waitForMessage(tab: string, page: Page, text: string, timeoutMs = 10000): Promise<Shown> {
  try {
    await page.waitFor(`[...document.querySelectorAll('#messages .msg .text')]
      .some((el) => el.textContent === ${JSON.stringify(text)})`, timeoutMs);
  } catch (err) {
    throw new Error(`tab ${tab}: message ${JSON.stringify(text)} not shown within ${timeoutMs} ms; `
      + `#messages has ${JSON.stringify(await messages(page).catch(() => 'nothing readable'))} (${(err as Error).message})`);
  }
  const found = (await messages(page)).filter((m) => m.text === text);
  assert.equal(found.length, 1, `tab ${tab}: exactly one message with text ${JSON.stringify(text)}: ${JSON.stringify(found)}`);
  return found[0]!;
}

/** Page errors, minus a missing favicon (chromium asks for /favicon.ico by itself). */
const pageErrors = (page: Page): string[] =>
  page.errors.filter((e) => !(e.startsWith('log[network]:') && e.includes('/favicon.ico')));

test('two browser tabs chat through the server, and HTML in messages stays text', { timeout: 60000 }, async (t) => {
  if (!chromiumInstalled()) {
    const why = `no chromium on PATH nor at ${CHROMIUM_PATH}: apt-get install chromium`;
    // CI=true (or any value but "", "0" and "false"): the browser test must run, never skip.
    const inCI = /^(?!(0|false)$)./i.test(process.env.CI ?? '');
    if (inCI) assert.fail(`the browser test must run in CI: ${why}`);
    t.skip(why);
    return;
  }
  let server: RunningServer | undefined;
  let browser: Browser | undefined;
  const pages: Page[] = [];
  try {
    server = await startServer({ args: ['--workers', '2'] });
    browser = await launchBrowser();
    const a = await browser.newPage(server.url);
    const b = await browser.newPage(server.url);
    pages.push(a, b);
    for (const [tab, page] of [['A', a], ['B', b]] as const) {
      await page.waitFor(`document.querySelector('#status')?.dataset.state === 'connected'`, 10000)
        .catch((err: Error) => { throw new Error(`tab ${tab} never connected: ${err.message}`); });
    }

    // The display name: the input's placeholder is "NAME:" (it may be filled in on connect).
    const placeholder = await a.waitFor<string>(`(() => {
      const p = document.querySelector('#message-input')?.placeholder ?? '';
      return p.length > 1 && p.endsWith(':') ? p : '';
    })()`, 5000);
    const nameA = placeholder.slice(0, -1);

    // A plain message from tab A reaches both tabs, attributed to A.
    const hello = `hello from A ${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)} ✓`;
    await a.type('#message-input', hello);
    await a.press('Enter');
    const ids: Array<string | null> = [];
    for (const [tab, page] of [['A', a], ['B', b]] as const) {
      const shown = await waitForMessage(tab, page, hello);
      assert.equal(shown.sender?.trim(), nameA, `tab ${tab}: sender of ${JSON.stringify(shown)}`);
      assert.doesNotMatch(shown.classes, /\b(system|error)\b/, `tab ${tab}: a chat line, not ${shown.classes}`);
      assert.match(shown.id ?? '', /^\d+$/, `tab ${tab}: the line's data-id is the message id`);
      ids.push(shown.id);
    }
    assert.equal(ids[0], ids[1], 'both tabs show the same message (same id)');
    assert.equal(await a.evaluate<string>(`document.querySelector('#message-input').value`), '',
      'the input is cleared after sending');

    // HTML from tab B is shown verbatim as text in both tabs and never becomes elements. (Whether
    // an injected handler could run is not the question: the page's Content-Security-Policy
    // forbids inline handlers anyway. What can fail is the rendering: the text must go into the
    // DOM as characters.)
    const html = '<img src="data:," alt="x"><b>bold</b><script>1</script> & &amp; "quoted"';
    // The string is markup indeed: parsed as HTML (in an inert template) it makes three elements.
    assert.equal(await b.evaluate<number>(`(() => {
      const t = document.createElement('template');
      t.innerHTML = ${JSON.stringify(html)};
      return t.content.querySelectorAll('img, b, script').length;
    })()`), 3, 'the test string parses into elements');
    await b.type('#message-input', html);
    await b.press('Enter');
    const shownIds: Array<string | null> = [];
    for (const [tab, page] of [['A', a], ['B', b]] as const) {
      shownIds.push((await waitForMessage(tab, page, html)).id);
      // The line's text element holds exactly one text node, equal to what was typed.
      const text = await page.evaluate<{ elements: number; nodes: number; textNode: boolean }>(`(() => {
        const el = [...document.querySelectorAll('#messages .msg .text')].find((e) => e.textContent === ${JSON.stringify(html)});
        return { elements: el.children.length, nodes: el.childNodes.length, textNode: el.firstChild?.nodeType === Node.TEXT_NODE };
      })()`);
      assert.deepEqual(text, { elements: 0, nodes: 1, textNode: true }, `tab ${tab}: the message is one text node`);
      assert.equal(await page.evaluate<number>(`document.querySelectorAll('#messages img, #messages b, #messages script').length`), 0,
        `tab ${tab}: no element was created from the message`);
    }
    assert.equal(shownIds[0], shownIds[1], 'both tabs show the same message (same id)');

    assert.deepEqual(pageErrors(a), [], 'tab A: console errors, exceptions or CSP violations');
    assert.deepEqual(pageErrors(b), [], 'tab B: console errors, exceptions or CSP violations');
  } catch (err) {
    // Say what the pages and the server reported: a failure here is usually explained there.
    const [a, b] = pages;
    if (a && b) (err as Error).message += `\n--- tab A errors ---\n${a.errors.join('\n')}\n--- tab B errors ---\n${b.errors.join('\n')}`;
    if (server) (err as Error).message += `\n--- server output ---\n${server.output()}`;
    throw err;
  } finally {
    await browser?.close();
    await server?.stop();
  }
});
