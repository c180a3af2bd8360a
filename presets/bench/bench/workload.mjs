// The benchmark workload: one fixed call of the code under test. Protected; bench/evaluate.mjs times it.
import { countPrimes } from '../solution.mjs';

const N = 30_000;
console.log(`primes below ${N}: ${countPrimes(N)}`);
