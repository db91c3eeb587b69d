// Types of acl-shapes.mjs (rule sets of shapes ClassBench does not have).
import type { AclRule } from '../lib/index.js';

export function rng(seed: number): () => number;
export function randomRules(n: number, seed: number, opts?: { v6?: number; maxPortWidth?: number }): AclRule[];
export function narrowRules(n: number, seed: number): AclRule[];
export function adversarialRules(kind: 'wide' | 'crossing' | 'nested', n: number, seed: number): AclRule[];
