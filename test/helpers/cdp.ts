// A minimal Chrome DevTools Protocol driver for the browser end-to-end test: it launches Debian's
// headless chromium, speaks CDP over Node's built-in WebSocket client (Node 20 needs
// `--experimental-websocket`), and offers just what the test needs: open a tab (at a given
// viewport size, optionally with a script run before the page's own), evaluate JavaScript, wait
// for a condition, type, press Enter, click with the mouse, take a screenshot, collect every
// console error, uncaught exception and browser log error (CSP violations included) per page,
// and, if asked, the WebSocket frames a page receives.
// No dependencies (no puppeteer / playwright / ws).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** `chromium` as `which chromium` finds it (Debian: /usr/bin/chromium), unless CHROMIUM_PATH says. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH
  ?? (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, 'chromium')).find(isExecutable)
  ?? '/usr/bin/chromium';
export const chromiumInstalled = (): boolean => isExecutable(CHROMIUM_PATH);

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

type Params = Record<string, unknown>;
// CDP results and events are loosely typed JSON; callers pick the fields they know.
type Json = any;
interface Message { id?: number; method?: string; params?: Json; result?: Json; error?: { message: string }; sessionId?: string }

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One WebSocket to the browser endpoint; page sessions are multiplexed on it (flat mode). */
class Connection {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: Json): void; reject(e: Error): void; method: string }>();
  readonly listeners = new Set<(msg: Message) => void>();
  private closed = false;

  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener('message', (ev) => {
      const msg = JSON.parse(String(ev.data)) as Message;
      if (msg.id !== undefined) {
        const call = this.pending.get(msg.id);
        if (!call) return;
        this.pending.delete(msg.id);
        if (msg.error) call.reject(new Error(`CDP ${call.method}: ${msg.error.message}`));
        else call.resolve(msg.result);
      } else {
        for (const listener of this.listeners) listener(msg);
      }
    });
    ws.addEventListener('close', () => {
      this.closed = true;
      for (const call of this.pending.values()) call.reject(new Error(`CDP ${call.method}: connection closed`));
      this.pending.clear();
    });
  }

  static async open(url: string): Promise<Connection> {
    if (typeof globalThis.WebSocket !== 'function') {
      throw new Error('global WebSocket missing: run node with --experimental-websocket (Node 20)');
    }
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error(`cannot connect to ${url}`)), { once: true });
    });
    return new Connection(ws);
  }

  /** Sends a command; with `sessionId` it goes to that attached target (flat-mode session). */
  send(method: string, params: Params = {}, sessionId?: string, timeoutMs = 15000): Promise<Json> {
    if (this.closed) return Promise.reject(new Error(`CDP ${method}: connection closed`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`CDP ${method}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (fn: (v: Json) => void) => (v: Json) => { clearTimeout(timer); fn(v); };
      this.pending.set(id, { resolve: done(resolve), reject: done(reject), method });
      this.ws.send(JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params }));
    });
  }

  close(): void { this.ws.close(); }
}

export class Page {
  /** Console errors, uncaught exceptions and browser log errors (e.g. CSP violations), in order. */
  readonly errors: string[] = [];
  /**
   * The payload of every WebSocket text frame the page received, in order: filled only for a tab
   * opened with `recordWebSocketFrames` (see NewPageOptions). It tells what the server sent,
   * whether or not the page chose to show it.
   */
  readonly webSocketFramesReceived: string[] = [];

  constructor(private readonly conn: Connection, readonly sessionId: string, readonly targetId: string) {
    conn.listeners.add((msg) => {
      if (msg.sessionId !== this.sessionId) return;
      const p = msg.params;
      if (msg.method === 'Runtime.consoleAPICalled' && p.type === 'error') {
        this.errors.push(`console.error: ${p.args.map((a: Json) => a.value ?? a.description ?? a.type).join(' ')}`);
      } else if (msg.method === 'Runtime.exceptionThrown') {
        const d = p.exceptionDetails;
        this.errors.push(`uncaught: ${d.exception?.description ?? d.text}`);
      } else if (msg.method === 'Network.webSocketFrameReceived' && p.response.opcode === 1) {
        this.webSocketFramesReceived.push(p.response.payloadData);
      } else if (msg.method === 'Log.entryAdded' && p.entry.level === 'error') {
        // Browser-side messages: CSP violations (source "security"), failed loads ("network"), ...
        this.errors.push(`log[${p.entry.source}]: ${p.entry.text}${p.entry.url ? ` (${p.entry.url})` : ''}`);
      }
    });
  }

  send(method: string, params: Params = {}): Promise<Json> {
    return this.conn.send(method, params, this.sessionId);
  }

  /** Navigates and resolves once the load event fired. */
  async goto(url: string, timeoutMs = 15000): Promise<void> {
    const loaded = this.nextEvent('Page.loadEventFired', timeoutMs);
    const nav = await this.send('Page.navigate', { url });
    if (nav.errorText) throw new Error(`navigation to ${url} failed: ${nav.errorText}`);
    await loaded;
  }

  private nextEvent(method: string, timeoutMs: number): Promise<Json> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.conn.listeners.delete(listener);
        reject(new Error(`no ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      const listener = (msg: Message) => {
        if (msg.sessionId !== this.sessionId || msg.method !== method) return;
        clearTimeout(timer);
        this.conn.listeners.delete(listener);
        resolve(msg.params);
      };
      this.conn.listeners.add(listener);
    });
  }

  /** Evaluates an expression in the page (awaiting a returned promise) and returns its JSON value. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) {
      const d = r.exceptionDetails;
      throw new Error(`evaluate(${expression}) threw: ${d.exception?.description ?? d.text}`);
    }
    return r.result.value as T;
  }

  /** Polls `expression` every 50 ms until it is truthy; returns its value, or throws on timeout. */
  async waitFor<T = unknown>(expression: string, timeoutMs = 10000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let lastError = '';
    for (;;) {
      try {
        const value = await this.evaluate<T>(expression);
        if (value) return value;
      } catch (err) {
        lastError = (err as Error).message; // e.g. mid-navigation; keep polling
      }
      if (Date.now() >= deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for: ${expression}${lastError ? ` (last error: ${lastError})` : ''}`);
      }
      await sleep(50);
    }
  }

  /**
   * Focuses `selector` and inserts `text` as one IME-style commit (Input.insertText): it fires
   * the same beforeinput/input events as typing, but needs no key-code mapping, so any Unicode
   * (and characters like `<` or `"`) goes in verbatim.
   */
  async type(selector: string, text: string): Promise<void> {
    // Input goes to the focused frame; in a browser with several tabs, bring this one to the front.
    await this.send('Page.bringToFront');
    const found = await this.evaluate<boolean>(
      `(() => { const el = document.querySelector(${JSON.stringify(selector)}); if (!el) return false; el.focus(); return true; })()`);
    if (!found) throw new Error(`type: no element matches ${selector}`);
    await this.send('Input.insertText', { text });
  }

  /**
   * Clicks the middle of the element `selector` with real mouse events (Input.dispatchMouseEvent),
   * as a user would: the element is scrolled into view first, and the click is refused (an error
   * saying why) if the element is missing, not displayed, disabled, or covered by another one,
   * since a user could not click it either.
   */
  async click(selector: string): Promise<void> {
    await this.send('Page.bringToFront');
    const target = await this.evaluate<{ x: number; y: number } | string>(`(() => {
      const el = document.querySelector(${JSON.stringify(selector)});
      if (el === null) return 'no element matches';
      if (el.disabled === true) return 'the element is disabled';
      el.scrollIntoView({ block: 'center', inline: 'center' });
      const box = el.getBoundingClientRect();
      if (box.width === 0 || box.height === 0) return 'the element is not displayed';
      const x = box.left + box.width / 2;
      const y = box.top + box.height / 2;
      const hit = document.elementFromPoint(x, y);
      if (hit === null || !el.contains(hit)) return 'the element is covered by ' + (hit === null ? 'nothing (off screen)' : hit.outerHTML.slice(0, 120));
      return { x, y };
    })()`);
    if (typeof target === 'string') throw new Error(`click ${selector}: ${target}`);
    const at = { x: target.x, y: target.y };
    await this.send('Input.dispatchMouseEvent', { type: 'mouseMoved', ...at });
    await this.send('Input.dispatchMouseEvent', { type: 'mousePressed', ...at, button: 'left', buttons: 1, clickCount: 1 });
    await this.send('Input.dispatchMouseEvent', { type: 'mouseReleased', ...at, button: 'left', buttons: 0, clickCount: 1 });
  }

  /** Presses a key on the focused element; only Enter is mapped (it submits the form). */
  async press(key: 'Enter'): Promise<void> {
    const base = { key, code: key, windowsVirtualKeyCode: 13, nativeVirtualKeyCode: 13 };
    // `text: '\r'` makes the keyDown produce a keypress, which is what triggers implicit
    // form submission; a bare keyDown with no text would not submit.
    await this.send('Input.dispatchKeyEvent', { type: 'keyDown', ...base, text: '\r', unmodifiedText: '\r' });
    await this.send('Input.dispatchKeyEvent', { type: 'keyUp', ...base });
  }

  /** Saves a PNG screenshot of the viewport. */
  async screenshot(path: string): Promise<void> {
    // A background tab may not have painted its latest frame; the front one always has.
    await this.send('Page.bringToFront');
    const { data } = await this.send('Page.captureScreenshot', { format: 'png' });
    await writeFile(path, Buffer.from(data as string, 'base64'));
  }
}

export interface NewPageOptions {
  /** The tab's viewport in CSS pixels; default 1280 × 800. */
  viewport?: { width: number; height: number };
  /** JavaScript run at the start of every document in the tab, before the page's scripts. */
  initScript?: string;
  /** Record the WebSocket text frames the tab receives (Page.webSocketFramesReceived). */
  recordWebSocketFrames?: boolean;
}

export class Browser {
  private readonly pages: Page[] = [];

  constructor(private readonly proc: ChildProcess, private readonly conn: Connection, private readonly profileDir: string) {}

  /**
   * Opens a new tab at `url` and resolves once it has loaded. The viewport is `options.viewport`
   * (default 1280 × 800 CSS pixels: wide enough for the chat's two-pane layout), and
   * `options.initScript`, if given, runs in every document of the tab before the page's own
   * scripts (e.g. to install a MutationObserver that sees everything the page ever shows); the
   * page's Content-Security-Policy does not apply to it, as it comes from DevTools.
   */
  async newPage(url: string, options: NewPageOptions = {}): Promise<Page> {
    // Create at about:blank and enable the domains first, so nothing the real page logs is missed.
    const { targetId } = await this.conn.send('Target.createTarget', { url: 'about:blank' });
    // flatten: true = "flat" session mode: the tab's commands and events travel on this same
    // browser WebSocket tagged with `sessionId`, instead of being wrapped in
    // Target.sendMessageToTarget / Target.receivedMessageFromTarget envelopes.
    const { sessionId } = await this.conn.send('Target.attachToTarget', { targetId, flatten: true });
    const page = new Page(this.conn, sessionId, targetId);
    const { width, height } = options.viewport ?? { width: 1280, height: 800 };
    await Promise.all([
      page.send('Page.enable'), page.send('Runtime.enable'), page.send('Log.enable'),
      page.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false }),
    ]);
    // Network events for every request would be noise; only tabs that ask get them.
    if (options.recordWebSocketFrames === true) await page.send('Network.enable');
    if (options.initScript !== undefined) {
      await page.send('Page.addScriptToEvaluateOnNewDocument', { source: options.initScript });
    }
    await page.goto(url);
    this.pages.push(page);
    return page;
  }

  /** Closes the CDP socket, ends chromium (SIGKILL after a short grace) and removes the profile. */
  async close(): Promise<void> {
    const exited = this.proc.exitCode !== null || this.proc.signalCode !== null
      ? Promise.resolve()
      : once(this.proc, 'exit').then(() => undefined);
    await this.conn.send('Browser.close', {}, undefined, 2000).catch(() => undefined);
    this.conn.close();
    const timer = setTimeout(() => killGroup(this.proc, 'SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
    killGroup(this.proc, 'SIGKILL'); // helpers (renderer, zygote) left behind, if any
    await rm(this.profileDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
}

/** Signals chromium's whole process group (it was spawned detached, as the group leader). */
function killGroup(proc: ChildProcess, signal: NodeJS.Signals): void {
  try { process.kill(-proc.pid!, signal); } catch { /* already gone */ }
}

/** Launches headless chromium with a fresh profile and connects to its DevTools endpoint. */
export async function launchBrowser(timeoutMs = 20000): Promise<Browser> {
  const profileDir = await mkdtemp(join(tmpdir(), 'cdp-profile-'));
  const proc = spawn(CHROMIUM_PATH, [
    '--headless', '--no-sandbox', '--disable-gpu',
    '--remote-debugging-port=0', // any free port; the endpoint is printed on stderr
    `--user-data-dir=${profileDir}`,
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-quic', '--disable-dev-shm-usage',
    // Both tabs must keep running timers and sockets at full speed while in the background.
    '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
    '--disable-backgrounding-occluded-windows',
    'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  try {
    const wsUrl = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`chromium printed no DevTools URL within ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
      proc.stderr!.setEncoding('utf8').on('data', (s: string) => {
        stderr += s;
        const match = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
        if (match) { clearTimeout(timer); resolve(match[1]!); }
      });
      proc.once('error', (err) => { clearTimeout(timer); reject(err); });
      proc.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`chromium exited (${code ?? signal}):\n${stderr}`)); });
    });
    proc.stderr!.resume(); // keep draining so chromium never blocks on a full pipe
    return new Browser(proc, await Connection.open(wsUrl), profileDir);
  } catch (err) {
    killGroup(proc, 'SIGKILL');
    await rm(profileDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    throw err;
  }
}
