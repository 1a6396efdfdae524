// Attribute names instrumentations (transports) set: `@backtrack/core/adapter`.
export { INSTRUMENTATION_SCOPE, METRICS, SPAN_NAMES, type TelemetryDisposition } from './names.js';
export {
  TRACEPARENT,
  TRACESTATE,
  extractTraceContext,
  formatTraceparent,
  injectTraceContext,
  parseTraceparent,
} from './tracecontext.js';
export { instrumentSagaEngine, type SagaEventSource, type SagaTelemetryOptions } from './saga.js';
export {
  monitorJournalLag,
  type GaugePoller,
  type GaugePollerOptions,
  type GaugeSample,
  type JournalLagOptions,
  type PolledGauge,
} from './gauges.js';
