/**
 * The message of the {@linkcode InputError} a call fails with, for the tests of what retake
 * refuses to read.
 *
 * @module
 */
import assert from "node:assert/strict";
import { InputError } from "./errors.ts";

/** The message of the {@linkcode InputError} that `fn` throws; fails when it throws nothing. */
export function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof InputError, `expected an InputError, got ${error}`);
    return error.message;
  }
  assert.fail("expected an InputError, but nothing was thrown");
}

/** The message of the {@linkcode InputError} that `promise` rejects with; fails when it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof InputError, `expected an InputError, got ${error}`);
    return error.message;
  }
  assert.fail("expected an InputError, but the promise resolved");
}
