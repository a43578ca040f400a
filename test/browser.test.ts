// Browser end-to-end tests: the real server (2 workers) and the real page in headless chromium,
// driven over the DevTools protocol (test/helpers/cdp.ts).
//   1. The lobby: two tabs chat with each other; the message must reach both, and HTML sent as a
//      message must be shown as text, never parsed.
//   2. Rooms (the server has a CHAT_SECRET): three tabs signed in with /#token=… links as alice,
//      bob and carol. Alice creates a room with bob in the page; they talk in it; carol, signed in
//      but not a member, never sees the room nor any of its messages; the lobby keeps working in
//      all three tabs beside the rooms.
//   3. Two server trees sharing Redis (CHAT_REDIS_URL): alice's tab on one, bob's on the other;
//      a room made in alice's page, their messages, and a lobby message reach both, same ids.
// Each test saves screenshots of its tabs in test-output/browser/ (paths printed as diagnostics),
// also when it fails: they show what the test saw. No tab may log a console error, an uncaught
// exception or a CSP violation.
// Without chromium (found on PATH, or at CHROMIUM_PATH) the tests are skipped, except in CI
// (CI set), where a missing browser is a failure.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { signToken } from '../src/jwt.js';
import { chromiumInstalled, CHROMIUM_PATH, launchBrowser, type Browser, type Page } from './helpers/cdp.js';
import { PROJECT_ROOT, startServer, type RunningServer } from './helpers/server.js';
import { skipWithoutRedis, startRedisServer } from './helpers/redis-server.js';

/** Where the screenshots go (git-ignored). */
const SCREENSHOT_DIR = join(PROJECT_ROOT, 'test-output', 'browser');

interface Shown { classes: string; id: string | null; sender: string | null; text: string | null }

/** The `.msg` lines of the lobby's `#messages`, as plain data. */
const messages = (page: Page): Promise<Shown[]> => page.evaluate<Shown[]>(`
  [...document.querySelectorAll('#messages .msg')].map((m) => ({
    classes: m.className,
    id: m.getAttribute('data-id'),
    sender: m.querySelector('.sender')?.textContent ?? null,
    text: m.querySelector('.text')?.textContent ?? null,
  }))`);

/** Waits until a lobby `.msg` whose `.text` is exactly `text` is shown, and returns it. */
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

/** HTML that parses into three elements (img, b, script): sent as a message, it must stay text. */
const MARKUP = '<img src="data:," alt="x"><b>bold</b><script>1</script> & &amp; "quoted"';

/** How many img/b/script elements `html` makes when parsed (in an inert template, nothing runs). */
const elementsParsedFrom = (page: Page, html: string): Promise<number> => page.evaluate<number>(`(() => {
  const t = document.createElement('template');
  t.innerHTML = ${JSON.stringify(html)};
  return t.content.querySelectorAll('img, b, script').length;
})()`);

/** A string no other test run or message can contain by chance. */
const unique = (label: string): string => `${label} ${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;

/**
 * true when the test must be skipped (no chromium, outside CI); fails the test in CI, where the
 * browser test must run.
 */
function skipWithoutChromium(t: TestContext): boolean {
  if (chromiumInstalled()) return false;
  const why = `no chromium on PATH nor at ${CHROMIUM_PATH}: apt-get install chromium`;
  // CI=true (or any value but "", "0" and "false"): the browser test must run, never skip.
  const inCI = /^(?!(0|false)$)./i.test(process.env.CI ?? '');
  if (inCI) assert.fail(`the browser test must run in CI: ${why}`);
  t.skip(why);
  return true;
}

interface Tab { name: string; page: Page }

/** Saves a screenshot of each tab as test-output/browser/PREFIX-NAME.png and prints the paths. */
async function saveScreenshots(t: TestContext, prefix: string, tabs: Tab[]): Promise<void> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  for (const { name, page } of tabs) {
    const path = join(SCREENSHOT_DIR, `${prefix}-${name}.png`);
    try {
      await page.screenshot(path);
      t.diagnostic(`screenshot of tab ${name}: ${path}`);
    } catch (err) {
      t.diagnostic(`no screenshot of tab ${name}: ${(err as Error).message}`);
    }
  }
}

/** Appends what the tabs and the server reported to a failure: it is usually explained there. */
function explain(err: unknown, tabs: Tab[], server: RunningServer | undefined): void {
  if (!(err instanceof Error)) return;
  for (const { name, page } of tabs) err.message += `\n--- tab ${name} errors ---\n${page.errors.join('\n')}`;
  if (server) err.message += `\n--- server output ---\n${server.output()}`;
}

test('two browser tabs chat through the server, and HTML in messages stays text', { timeout: 60000 }, async (t) => {
  if (skipWithoutChromium(t)) return;
  let server: RunningServer | undefined;
  let browser: Browser | undefined;
  const tabs: Tab[] = [];
  try {
    server = await startServer({ args: ['--workers', '2'] });
    browser = await launchBrowser();
    const a = await browser.newPage(server.url);
    const b = await browser.newPage(server.url);
    tabs.push({ name: 'A', page: a }, { name: 'B', page: b });
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
    const html = MARKUP;
    // The string is markup indeed: parsed as HTML (in an inert template) it makes three elements.
    assert.equal(await elementsParsedFrom(b, html), 3, 'the test string parses into elements');
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
    explain(err, tabs, server);
    throw err;
  } finally {
    await saveScreenshots(t, 'lobby', tabs);
    await browser?.close();
    await server?.stop();
  }
});

// --- rooms -------------------------------------------------------------------

/** The rooms of `[data-testid=room-list]`, in list order, as plain data. */
interface RoomItem { id: string; name: string; badge: string | null; preview: string; current: boolean }
/** An expression, evaluated in the page, whose value is the RoomItem[] shown. */
const ROOM_ITEMS = `[...document.querySelectorAll('[data-testid="room-list"] [data-room-id]')].map((r) => {
  const badge = r.querySelector('.badge');
  return {
    id: r.dataset.roomId,
    name: r.querySelector('.room-name')?.textContent ?? '',
    // The badge's visible count (its first text node); the screen-reader words (" unread") are left out.
    badge: badge === null || badge.hidden ? null : badge.firstChild?.textContent ?? '',
    preview: r.querySelector('.room-preview')?.textContent ?? '',
    current: r.getAttribute('aria-current') === 'true',
  };
})`;
const roomItems = (page: Page): Promise<RoomItem[]> => page.evaluate<RoomItem[]>(ROOM_ITEMS);

/** The messages of the selected room (`[data-testid=messages]`), the page's own notices left out. */
interface RoomMessage { id: string | null; state: string | null; sender: string | null; text: string | null; own: boolean }
const roomMessages = (page: Page): Promise<RoomMessage[]> => page.evaluate<RoomMessage[]>(`
  [...document.querySelectorAll('[data-testid="messages"] .msg:not([data-notice])')].map((m) => ({
    id: m.dataset.messageId ?? null,
    state: m.dataset.state ?? null,
    sender: m.querySelector('.sender')?.textContent ?? null,
    text: m.querySelector('.text')?.textContent ?? null,
    own: m.classList.contains('own'),
  }))`);

/** Waits until `predicate` (JavaScript over `items`, the tab's RoomItem[]) holds; returns the list. */
async function waitForRooms(tab: Tab, predicate: string, what: string, timeoutMs = 10000): Promise<RoomItem[]> {
  try {
    await tab.page.waitFor(`((items) => ${predicate})(${ROOM_ITEMS})`, timeoutMs);
  } catch (err) {
    throw new Error(`tab ${tab.name}: ${what} not within ${timeoutMs} ms; the room list is `
      + `${JSON.stringify(await roomItems(tab.page).catch(() => 'unreadable'))} (${(err as Error).message})`);
  }
  return roomItems(tab.page);
}

/**
 * Waits until the selected room shows exactly one acknowledged message (it has a data-message-id)
 * whose text is `text`, and returns it.
 */
async function waitForRoomMessage(tab: Tab, text: string, timeoutMs = 10000): Promise<RoomMessage> {
  try {
    await tab.page.waitFor(`[...document.querySelectorAll('[data-testid="messages"] .msg[data-message-id]')]
      .some((m) => m.querySelector('.text')?.textContent === ${JSON.stringify(text)})`, timeoutMs);
  } catch (err) {
    throw new Error(`tab ${tab.name}: room message ${JSON.stringify(text)} not shown within ${timeoutMs} ms; `
      + `the room shows ${JSON.stringify(await roomMessages(tab.page).catch(() => 'nothing readable'))} (${(err as Error).message})`);
  }
  const found = (await roomMessages(tab.page)).filter((m) => m.text === text);
  assert.equal(found.length, 1, `tab ${tab.name}: exactly one room message with text ${JSON.stringify(text)}: ${JSON.stringify(found)}`);
  return found[0]!;
}

/**
 * Starts recording, in the page, every delivery state the entry of `text` in the room's message
 * list goes through ("pending", then "sent#ID" once acknowledged with message id ID), consecutive
 * repeats folded. A MutationObserver's callback runs at the end of the task that changed the DOM,
 * so the pending state is seen even when the acknowledgement comes a millisecond later.
 */
const recordStates = (page: Page, text: string): Promise<unknown> => page.evaluate(`(() => {
  const list = document.querySelector('[data-testid="messages"]');
  const states = [];
  (window.__deliveryStates ??= {})[${JSON.stringify(text)}] = states;
  new MutationObserver(() => {
    for (const m of list.querySelectorAll('.msg[data-state]')) {
      if (m.querySelector('.text')?.textContent !== ${JSON.stringify(text)}) continue;
      const state = m.dataset.state + (m.dataset.messageId === undefined ? '' : '#' + m.dataset.messageId);
      if (states[states.length - 1] !== state) states.push(state);
    }
  }).observe(list, { childList: true, subtree: true, attributes: true, attributeFilter: ['data-state', 'data-message-id'] });
  return true;
})()`);
const recordedStates = (page: Page, text: string): Promise<string[]> =>
  page.evaluate<string[]>(`window.__deliveryStates[${JSON.stringify(text)}]`);

/**
 * Runs before the page's script in carol's tab: remembers every text and attribute value the
 * document ever shows (added nodes, text changes, attribute changes), so that the test can say
 * that a room's name or message never appeared, not only that it is absent at the end.
 */
const RECORD_EVERYTHING_SHOWN = `(() => {
  const shown = [];
  window.__everShown = shown;
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === 'characterData') shown.push(r.target.data);
      else if (r.type === 'attributes') shown.push(r.target.getAttribute(r.attributeName) ?? '');
      else for (const node of r.addedNodes) shown.push(node.textContent ?? '');
    }
  }).observe(document, { childList: true, subtree: true, characterData: true, attributes: true });
})();`;

/** Which of `secrets` the tab shows now (body text, title) or ever showed (see above). */
const leakedTo = (page: Page, secrets: string[]): Promise<string[]> => page.evaluate<string[]>(`(() => {
  const now = document.body.textContent + ' ' + document.title;
  return ${JSON.stringify(secrets)}.filter((s) => now.includes(s) || window.__everShown.some((t) => t.includes(s)));
})()`);

test('rooms: alice and bob talk in a room made in the page, carol never sees it, and the lobby works beside it', { timeout: 90000 }, async (t) => {
  if (skipWithoutChromium(t)) return;
  const secret = randomBytes(32).toString('base64url'); // 43 bytes, above the 32 required
  const tokenFor = (sub: string) => signToken({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }, Buffer.from(secret));
  let server: RunningServer | undefined;
  let browser: Browser | undefined;
  const tabs: Tab[] = [];
  try {
    // Two workers, as the server is run: node:cluster hands the tabs' connections out among them, and
    // every rooms request goes from the worker holding it to the primary's RoomService and back.
    server = await startServer({ args: ['--workers', '2'], env: { CHAT_SECRET: secret } });
    browser = await launchBrowser();
    const people = [['A', 'alice'], ['B', 'bob'], ['C', 'carol']] as const;
    for (const [name, user] of people) {
      const token = tokenFor(user);
      const page = await browser.newPage(`${server.url}/#token=${token}`,
        name === 'C' ? { initScript: RECORD_EVERYTHING_SHOWN, recordWebSocketFrames: true } : {});
      tabs.push({ name, page });
      // Signed in: the page shows who, the token left the address (history, bookmarks, a shared
      // screen) and lives in this tab's sessionStorage (a reload stays signed in).
      const shownUser = await page.waitFor<string>(`(() => {
        const el = document.querySelector('[data-testid="signed-in-user"]');
        return el !== null && !el.hidden && el.textContent;
      })()`, 10000).catch((err: Error) => { throw new Error(`tab ${name} never showed a signed-in user: ${err.message}`); });
      assert.equal(shownUser, user, `tab ${name}: the signed-in user`);
      const where = await page.evaluate<{ href: string; stored: boolean }>(`({
        href: location.href,
        stored: Object.keys(sessionStorage).some((key) => sessionStorage.getItem(key) === ${JSON.stringify(token)}),
      })`);
      assert.equal(where.href, `${server.url}/`, `tab ${name}: the #token=… fragment is gone from the address`);
      assert.equal(where.stored, true, `tab ${name}: the token is kept in sessionStorage`);
    }
    const [a, b, c] = tabs as [Tab, Tab, Tab];

    // Alice creates a room with bob, in the page's form.
    const roomName = unique('plans');
    await a.page.type('[data-testid="new-room-name"]', roomName);
    await a.page.type('[data-testid="new-room-users"]', 'bob');
    await a.page.click('[data-testid="new-room-submit"]');
    const created = (await waitForRooms(a, `items.some((r) => r.name === ${JSON.stringify(roomName)} && r.current)`,
      'the new room, selected,')).find((r) => r.name === roomName)!;
    const roomId = created.id;
    assert.match(roomId, /^\d+$/, 'the room list entry carries the room id');
    assert.deepEqual(await a.page.evaluate(`[document.querySelector('[data-testid="new-room-name"]').value,
      document.querySelector('[data-testid="new-room-users"]').value, document.activeElement?.dataset.testid]`),
    ['', '', 'composer'], 'tab A: the form is cleared and the cursor is in the new room\'s composer');
    // It reaches bob's room list (pushed to him; his tab did nothing), never carol's.
    const bobsRooms = await waitForRooms(b, `items.some((r) => r.id === ${JSON.stringify(roomId)})`, 'the room alice made');
    assert.deepEqual(bobsRooms.map((r) => [r.id, r.name]), [[roomId, roomName]], 'tab B: the room, with its name');
    assert.deepEqual(await roomItems(c.page), [], 'tab C: no room');

    // Alice writes in it: her entry is pending, then sent with its message id.
    const first = unique('hi bob, this is alice ✓');
    await recordStates(a.page, first);
    await a.page.type('[data-testid="composer"]', first);
    await a.page.press('Enter');
    const sent = await waitForRoomMessage(a, first);
    assert.match(sent.id ?? '', /^\d+$/, 'tab A: the acknowledged message has its id');
    assert.deepEqual(await recordedStates(a.page, first), ['pending', `sent#${sent.id}`],
      'tab A: the message was shown pending, then sent with its id, and nothing else');
    assert.deepEqual({ ...sent, id: null }, { id: null, state: 'sent', sender: 'alice', text: first, own: true });
    assert.equal(await a.page.evaluate<string>(`document.querySelector('[data-testid="composer"]').value`), '',
      'tab A: the composer is cleared after sending');

    // Bob opens the room (a click in his list) and sees it, the same message (same id), from alice.
    await b.page.click(`[data-testid="room-list"] [data-room-id="${roomId}"]`);
    const atBob = await waitForRoomMessage(b, first);
    assert.deepEqual(atBob, { id: sent.id, state: null, sender: 'alice', text: first, own: false }, 'tab B: alice\'s message');
    assert.deepEqual(await leakedTo(c.page, [roomName, first]), [], 'tab C: neither the room\'s name nor its message');

    // Alice moves to another room of her own, so that bob's answer arrives in a room not shown.
    const otherName = unique('notes');
    await a.page.type('[data-testid="new-room-name"]', otherName);
    await a.page.click('[data-testid="new-room-submit"]');
    await waitForRooms(a, `items.some((r) => r.name === ${JSON.stringify(otherName)} && r.current)`, 'her second room, selected,');
    assert.deepEqual(await roomMessages(a.page), [], 'tab A: the new room has no message');

    // Bob answers. Alice's list marks the room unread (1), previews the answer and moves the
    // room to the top; the page title counts it.
    const answer = unique('hello alice, bob here');
    await b.page.type('[data-testid="composer"]', answer);
    await b.page.press('Enter');
    const answered = await waitForRoomMessage(b, answer);
    assert.equal(answered.state, 'sent', 'tab B: his answer is sent');
    const aliceRooms = await waitForRooms(a, `items.some((r) => r.id === ${JSON.stringify(roomId)} && r.badge !== null)`,
      'an unread mark on the room');
    assert.deepEqual(aliceRooms.map((r) => r.name), [roomName, otherName], 'tab A: the room with news moved to the top');
    assert.deepEqual(aliceRooms[0], { id: roomId, name: roomName, badge: '1', preview: `bob: ${answer}`, current: false },
      'tab A: the room is marked unread once, with a preview of the answer');
    assert.equal(await a.page.evaluate<string>('document.title'), '(1) Chat', 'tab A: the title counts the unread message');
    // Opening the room shows both messages in order, and clears the mark.
    await a.page.click(`[data-testid="room-list"] [data-room-id="${roomId}"]`);
    await waitForRoomMessage(a, answer);
    assert.deepEqual(await roomMessages(a.page), [
      { id: sent.id, state: 'sent', sender: 'alice', text: first, own: true },
      { id: answered.id, state: null, sender: 'bob', text: answer, own: false },
    ], 'tab A: the room\'s messages, in order, with their ids');
    assert.equal((await roomItems(a.page)).find((r) => r.id === roomId)?.badge, null, 'tab A: the unread mark is gone');
    assert.equal(await a.page.evaluate<string>('document.title'), 'Chat', 'tab A: the title counts nothing unread');
    assert.deepEqual((await roomItems(b.page)).map((r) => r.id), [roomId], 'tab B: alice\'s other room is not his');

    // Markup typed in a room stays text, in the sender's tab and the other member's.
    assert.equal(await elementsParsedFrom(a.page, MARKUP), 3, 'the test string parses into elements');
    await a.page.type('[data-testid="composer"]', MARKUP);
    await a.page.press('Enter');
    for (const tab of [a, b]) {
      const shown = await waitForRoomMessage(tab, MARKUP);
      assert.equal(shown.sender, 'alice', `tab ${tab.name}: the markup message is alice's`);
      const text = await tab.page.evaluate<{ elements: number; nodes: number; textNode: boolean }>(`(() => {
        const el = [...document.querySelectorAll('[data-testid="messages"] .msg .text')].find((e) => e.textContent === ${JSON.stringify(MARKUP)});
        return { elements: el.children.length, nodes: el.childNodes.length, textNode: el.firstChild?.nodeType === Node.TEXT_NODE };
      })()`);
      assert.deepEqual(text, { elements: 0, nodes: 1, textNode: true }, `tab ${tab.name}: the room message is one text node`);
      assert.equal(await tab.page.evaluate<number>(`document.querySelectorAll(
        '[data-testid="messages"] img, [data-testid="messages"] b, [data-testid="messages"] script').length`), 0,
      `tab ${tab.name}: no element was created from the room message`);
    }

    // The lobby still works beside the rooms: carol's lobby message reaches all three tabs.
    const lobbyText = unique('carol in the lobby');
    await c.page.type('#message-input', lobbyText);
    await c.page.press('Enter');
    const lobbyIds = new Set<string | null>();
    for (const tab of [a, b, c]) lobbyIds.add((await waitForMessage(tab.name, tab.page, lobbyText)).id);
    assert.equal(lobbyIds.size, 1, `the three tabs show the same lobby message (same id): ${[...lobbyIds].join(', ')}`);
    assert.match([...lobbyIds][0] ?? '', /^\d+$/, 'the lobby message has its id');

    // Carol never saw the room: not now, not at any moment (her tab recorded every text it
    // showed). A short settle lets any stray frame arrive before the last look; it is not the
    // assertion, which holds at every instant.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(await roomItems(c.page), [], 'tab C: still no room');
    assert.deepEqual(await leakedTo(c.page, [roomName, otherName, first, answer, MARKUP]), [],
      'tab C: nothing of the rooms she is not in');
    assert.ok(await c.page.evaluate<boolean>(`window.__everShown.some((t) => t.includes(${JSON.stringify(lobbyText)}))`),
      'tab C: the recorder did see what the page showed (her lobby message)');
    // Nor did the server send her any of it (the page would ignore a room_update or a message of
    // a room she is not in, so the DOM alone cannot tell): her socket received exactly two rooms
    // frames, the answers to her authenticate and to her list_rooms (no room), and no lobby or
    // rooms frame quoting the rooms' names or messages.
    const roomsFrames = c.page.webSocketFramesReceived
      .flatMap((payload) => [JSON.parse(payload) as unknown].flat())
      .filter((item): item is Record<string, unknown> => typeof item === 'object' && item !== null && 'action' in item)
      .map(({ uuid, ...rest }) => rest);
    assert.deepEqual(roomsFrames, [
      { action: 'authenticate', status: 'success', user: 'carol' },
      { action: 'list_rooms', status: 'success', rooms: [] },
    ], 'tab C: the rooms frames her socket received');
    const quoted = [roomName, otherName, first, answer, MARKUP].filter((secret) =>
      c.page.webSocketFramesReceived.some((payload) => payload.includes(JSON.stringify(secret).slice(1, -1))));
    assert.deepEqual(quoted, [], 'tab C: no frame she received quotes the rooms\' names or messages');
    assert.ok(c.page.webSocketFramesReceived.some((payload) => payload.includes(lobbyText)),
      'tab C: the frame recorder did see her lobby message');

    for (const tab of tabs) {
      assert.deepEqual(pageErrors(tab.page), [], `tab ${tab.name}: console errors, exceptions or CSP violations`);
    }

    // That last check can fail: a fourth tab breaks the page's CSP on purpose (an inline script,
    // which the policy forbids), and the violation is among the errors it collected.
    const canary = await browser.newPage(server.url);
    await canary.evaluate(`document.body.append(Object.assign(document.createElement('script'), { textContent: 'window.ranInline = true' }))`);
    // The report travels as a DevTools event of its own: wait for it (it comes within milliseconds).
    const reported = () => pageErrors(canary).some((e) => /Content Security Policy/i.test(e));
    for (const deadline = Date.now() + 5000; !reported() && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(reported(), `a CSP violation is among the collected errors: ${JSON.stringify(canary.errors)}`);
    assert.equal(await canary.evaluate('window.ranInline === true'), false, 'the inline script did not run');
  } catch (err) {
    explain(err, tabs, server);
    throw err;
  } finally {
    await saveScreenshots(t, 'rooms', tabs.map(({ name, page }, i) => ({ name: `${name}-${['alice', 'bob', 'carol'][i]}`, page })));
    await browser?.close();
    await server?.stop();
  }
});

test('two server trees sharing Redis: alice\'s tab on one and bob\'s on the other talk in a room made in the page, and in the lobby', { timeout: 90000 }, async (t) => {
  if (skipWithoutChromium(t) || skipWithoutRedis(t)) return;
  const redis = await startRedisServer({ appendonly: true, args: ['--appendfsync', 'always'] });
  t.after(() => redis.stop());
  const secret = randomBytes(32).toString('base64url');
  const tokenFor = (sub: string) => signToken({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }, Buffer.from(secret));
  const env = { CHAT_SECRET: secret, CHAT_REDIS_URL: redis.url };
  const trees: RunningServer[] = [];
  let browser: Browser | undefined;
  const tabs: Tab[] = [];
  try {
    // Two trees of two workers each, on two ports, as on two machines behind a load balancer.
    trees.push(await startServer({ args: ['--workers', '2'], env }), await startServer({ args: ['--workers', '2'], env }));
    browser = await launchBrowser();
    for (const [name, user, tree] of [['A', 'alice', trees[0]!], ['B', 'bob', trees[1]!]] as const) {
      const page = await browser.newPage(`${tree.url}/#token=${tokenFor(user)}`);
      tabs.push({ name, page });
      await page.waitFor(`document.querySelector('[data-testid="signed-in-user"]')?.textContent === ${JSON.stringify(user)}`, 10000)
        .catch((err: Error) => { throw new Error(`tab ${name} never showed ${user} signed in: ${err.message}`); });
    }
    const [a, b] = tabs as [Tab, Tab];

    // Alice, on the first tree, creates a room with bob in the page's form; it reaches bob's list
    // on the other tree.
    const roomName = unique('across');
    await a.page.type('[data-testid="new-room-name"]', roomName);
    await a.page.type('[data-testid="new-room-users"]', 'bob');
    await a.page.click('[data-testid="new-room-submit"]');
    const roomId = (await waitForRooms(a, `items.some((r) => r.name === ${JSON.stringify(roomName)} && r.current)`,
      'the new room, selected,')).find((r) => r.name === roomName)!.id;
    const bobsRooms = await waitForRooms(b, `items.some((r) => r.id === ${JSON.stringify(roomId)})`, 'the room alice made on the other tree');
    assert.deepEqual(bobsRooms.map((r) => [r.id, r.name]), [[roomId, roomName]], 'tab B: the room, with its name');

    // They talk: each message shows in both tabs with the same id, in the same order.
    const first = unique('hi bob, from the first tree');
    await a.page.type('[data-testid="composer"]', first);
    await a.page.press('Enter');
    const sent = await waitForRoomMessage(a, first);
    await b.page.click(`[data-testid="room-list"] [data-room-id="${roomId}"]`);
    assert.deepEqual(await waitForRoomMessage(b, first), { id: sent.id, state: null, sender: 'alice', text: first, own: false }, 'tab B: alice\'s message');
    const answer = unique('hello alice, from the second tree');
    await b.page.type('[data-testid="composer"]', answer);
    await b.page.press('Enter');
    const answered = await waitForRoomMessage(b, answer);
    await waitForRoomMessage(a, answer);
    assert.deepEqual(await roomMessages(a.page), [
      { id: sent.id, state: 'sent', sender: 'alice', text: first, own: true },
      { id: answered.id, state: null, sender: 'bob', text: answer, own: false },
    ], 'tab A: both messages, in order, with the ids bob\'s tab shows');

    // The lobby is one too: bob's lobby message reaches alice's tab on the other tree, same id.
    const lobbyText = unique('bob in the lobby');
    await b.page.type('#message-input', lobbyText);
    await b.page.press('Enter');
    const lobbyIds = new Set<string | null>();
    for (const tab of [a, b]) lobbyIds.add((await waitForMessage(tab.name, tab.page, lobbyText)).id);
    assert.equal(lobbyIds.size, 1, `both tabs show the same lobby message (same id): ${[...lobbyIds].join(', ')}`);
    for (const tab of tabs) assert.deepEqual(pageErrors(tab.page), [], `tab ${tab.name}: console errors, exceptions or CSP violations`);
  } catch (err) {
    explain(err, tabs, trees[0]);
    throw err;
  } finally {
    await saveScreenshots(t, 'two-trees', tabs.map(({ name, page }, i) => ({ name: `${name}-${['alice', 'bob'][i]}`, page })));
    await browser?.close();
    for (const tree of trees) await tree.stop();
  }
});
