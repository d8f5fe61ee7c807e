/** The proxy's version, reported by `--version` and in the User-Agent sent to the API server. */
export const VERSION = '0.1.0';
