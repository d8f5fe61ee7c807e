import { ALLOW_ALL } from '../../src/authz/authorizer.js';
import type { AuditSink } from '../../src/audit/audit-log.js';

/** An audit sink that keeps nothing, for tests about something else. */
export const NO_AUDIT: AuditSink = { write: () => undefined, close: async () => undefined };

/** Server deps for tests that are not about authorization: every client may do everything, nothing is audited. */
export const OPEN_ACCESS = { authorizer: ALLOW_ALL, audit: NO_AUDIT } as const;
