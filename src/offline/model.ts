/**
 * The offline generator's model id: a module of its own, so the provider's descriptor can name it
 * without loading the generator (and sharp) before a run needs it.
 *
 * @module
 */

/** The id the offline generator records as its model. */
export const LOCAL_MODEL = "local-svg-v1";
