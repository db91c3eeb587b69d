/**
 * Process-exit safety net for labs. While at least one lab is open, a synchronous cleanup
 * runs on process `exit` (which also fires after an uncaught exception) and on
 * SIGINT/SIGTERM/SIGHUP; the hooks are removed again when the last lab closes.
 */

/** Anything that can tear itself down synchronously. */
export interface SyncCleanable {
  /** Tears down what it owns, synchronously; must not throw. */
  closeSync(): void;
}

const open = new Set<SyncCleanable>();
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let installed = false;

/**
 * Synchronously clean up every registered lab. This is what the exit hook runs; exported
 * so tests (and embedders with their own shutdown logic) can invoke it directly.
 * Never throws.
 */
export function runExitCleanup(): void {
  for (const l of [...open]) {
    try {
      l.closeSync();
    } catch {
      /* best effort: keep cleaning the others */
    }
    open.delete(l);
  }
  uninstall();
}

function onExit(): void {
  runExitCleanup();
}

function onSignal(sig: NodeJS.Signals): void {
  runExitCleanup(); // also removes our listeners
  // If someone else also listens for this signal, they decide what happens next (they are
  // called for this same delivery). Otherwise re-raise it: with no listener left Node
  // restores the default action, so the process dies of the signal as it would have.
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.off('exit', onExit);
  for (const s of SIGNALS) process.off(s, onSignal);
}

/**
 * Start covering `l` with the exit hooks (installs them on first use). Labs register
 * themselves; register your own cleanup after creating a lab and it runs after the lab's
 * teardown when the process exits or dies of SIGINT/SIGTERM/SIGHUP.
 */
export function registerForExit(l: SyncCleanable): void {
  open.add(l);
  install();
}

/** Stop covering `l`; removes the hooks once nothing is registered. */
export function unregisterForExit(l: SyncCleanable): void {
  open.delete(l);
  if (open.size === 0) uninstall();
}

/** Number of labs currently covered by the exit hooks (for diagnostics and tests). */
export function exitHookCount(): number {
  return open.size;
}

/** Whether the process-level hooks are currently installed (for tests). */
export function exitHooksInstalled(): boolean {
  return installed;
}
