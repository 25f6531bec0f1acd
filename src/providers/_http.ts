/**
 * What every HTTP provider needs alike: telling a network fault from an answer.
 *
 * @module
 */

/** Messages of `fetch` and SDK errors that mean the network failed, not the service. */
export const NETWORK_FAULT =
  /fetch failed|error reading a body|error sending request|connection|network|dns|tcp|tls|socket|refused|reset/i;
