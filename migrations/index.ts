import { Init1795298121489 } from './1795298121489-Init';
import { AuditAppendOnly1795298200000 } from './1795298200000-AuditAppendOnly';

/** Every migration, in order. Listed as classes (not a glob) so that compiled and test builds load the same set. */
export const MIGRATIONS: Function[] = [Init1795298121489, AuditAppendOnly1795298200000];
