/** mulberry32 for the tests: the bench's seeded PRNG (deterministic in [0, 1) for a seed, so a failing seed can be replayed). */
export { rng } from '../../bench/acl-shapes.mjs';
