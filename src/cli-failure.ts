// How a CLI command ends on an error: the error's text and what to do next on stderr, exit code 1, and its resources released.
import { isRatchetError } from './core/errors.js';

export async function reportingFailure(body: () => Promise<number>, release: () => void): Promise<number> {
  try {
    return await body();
  } catch (err) {
    process.stderr.write(`ratchet: ${isRatchetError(err) ? err.toText() : String(err)}\n`);
    return 1;
  } finally {
    release();
  }
}
