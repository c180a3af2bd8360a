// The correctness test: exits 0 when the code under test gives the right answers, 1 otherwise. Protected.
import { countPrimes } from '../solution.mjs';

const EXPECTED = [
  [0, 0], [1, 0], [2, 0], [3, 1], [10, 4], [100, 25], [1000, 168], [7919, 999], [7920, 1000], [30_000, 3245],
];
let failed = 0;
for (const [n, want] of EXPECTED) {
  const got = countPrimes(n);
  if (got !== want) {
    console.error(`countPrimes(${n}) = ${got}, expected ${want}`);
    failed++;
  }
}
console.error(failed ? `${failed} of ${EXPECTED.length} checks failed` : `all ${EXPECTED.length} checks passed`);
process.exit(failed ? 1 : 0);
