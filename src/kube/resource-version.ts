/**
 * True when resourceVersion `a` is the same as or newer than `b`. etcd revisions are
 * integers and Kubernetes 1.35 makes comparing them official (KEP-5504); a non-numeric
 * resourceVersion only matches by equality.
 */
export function rvAtLeast(a: string, b: string): boolean {
  if (a === b) return true;
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) >= BigInt(b);
  return false;
}

/** A resourceVersion a client may ask for: decimal digits, at most 20 (an int64 etcd revision). */
export const RESOURCE_VERSION_PATTERN = /^\d{1,20}$/;
