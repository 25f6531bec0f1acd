/**
 * One measured check of the offline critic, shared by the critic that makes it and the brief
 * that answers with it.
 *
 * @module
 */
import type { Criterion } from "../providers/critique.ts";

/** A check the offline critic measured on the image. */
export interface Check {
  criterion: Criterion;
  /** 0–1: how well the image meets the expectation. */
  score: number;
  weight: number;
  /** Said when the check passes well. */
  strength: string;
  /** Said when it does not, with the measured and the expected value. */
  problem: string;
  /** What would fix the problem. */
  suggestion: string;
  /** The cue it measures (`cueKey`), for checks of one cue: answers a brief's checks. */
  cue?: string;
}
