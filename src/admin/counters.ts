/**
 * Plain numbers bumped on the hot path. A tenant's `stats` reply is built from
 * these, and the metrics exporter copies them at scrape time (no label hashing
 * per request).
 */
import { COMMAND_COUNT } from '../protocol/text/commands.js';

export class TenantCounters {
  cmdGet = 0;
  getHits = 0;
  getMisses = 0;
  cmdSet = 0;
  cmdTouch = 0;
  touchHits = 0;
  touchMisses = 0;
  cmdFlush = 0;
  deleteHits = 0;
  deleteMisses = 0;
  incrHits = 0;
  incrMisses = 0;
  decrHits = 0;
  decrMisses = 0;
  casHits = 0;
  casMisses = 0;
  casBadval = 0;
  currConnections = 0;
  totalConnections = 0;
  bytesRead = 0;
  bytesWritten = 0;
  denied = 0;
  errors = 0;
  /** requests by command id */
  readonly byCommand: Float64Array = new Float64Array(COMMAND_COUNT);
}

export class ProcessCounters {
  readonly startedAtMs = Date.now();
  connectionsAccepted = 0;
  connectionsRejected = 0;
}
