/**
 * The real database worker in a context without OPFS sync access handles
 * (as in Safari iframes or older browsers): the worker module runs first
 * (static imports are evaluated before this body), then the global that
 * `opfsAvailable()` checks at open time is removed.
 */
import '../../worker.js';

delete (globalThis as { FileSystemSyncAccessHandle?: unknown }).FileSystemSyncAccessHandle;
