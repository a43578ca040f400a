// `--app PATH` (../shared/contract.md, "Loading an application" and "The primary process"): import
// the ES or CommonJS module at PATH, relative to the current directory, and take its default
// export or else its export named `app`, and its optional export named `primary`.
//
// The server imports the bundled chat the same way, by the path of its module: nothing under
// src/server/ names any application.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Application } from './asgi-types.js';

export class AppLoadError extends Error {}

/** What a `primary()` may return: something to stop once every worker has exited. */
export interface PrimaryService {
  stop(): void | Promise<void>;
}

/** The contract's primary hook: called once in the cluster primary, before the workers fork. */
export type PrimaryHook = () => void | PrimaryService | Promise<void | PrimaryService>;

export interface ApplicationModule {
  app: Application;
  /** The module's `primary` export, or null when it has none. */
  primary: PrimaryHook | null;
}

/** Imports the module at `path` (a file path, or a file: URL) and finds its exports. */
export async function loadApplication(path: string): Promise<ApplicationModule> {
  const url = path.startsWith('file:') ? path : pathToFileURL(resolve(process.cwd(), path)).href;
  let module: Record<string, unknown>;
  try {
    // import() from the file's URL, so the module's own relative imports resolve next to it.
    module = await import(url) as Record<string, unknown>;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new AppLoadError(`cannot import --app ${path}: ${reason}`);
  }
  // A CommonJS module arrives as { default: module.exports }, so look inside `default` too.
  const exports = module.default as Record<string, unknown> | undefined;
  const app = typeof module.default === 'function' ? module.default
    : typeof module.app === 'function' ? module.app
      : typeof exports?.app === 'function' ? exports.app
        : null;
  if (app === null) {
    throw new AppLoadError(`--app ${path} exports no application: expected a default export or an export named "app" that is a function`);
  }
  const primary = typeof module.primary === 'function' ? module.primary
    : typeof exports?.primary === 'function' ? exports.primary
      : null;
  return { app: app as Application, primary: primary as PrimaryHook | null };
}
