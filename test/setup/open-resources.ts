/**
 * Fails a test file that leaves a sandbox runtime, a sandbox worker, a host, a test host, a broker
 * or a job process open, naming where each was created: the check `plugbox/testing/vitest` offers
 * plug-in authors (host/testing/leak-check.ts), set up the same way, as a vitest `setupFiles` entry.
 */
import "../../dist/host/testing/vitest.js";
