export type { OutgoingMessage, Subscription, SubscriptionOptions, Transport } from './Transport.js';
export {
  InMemoryTransport,
  InMemoryTransportConfigError,
  InMemoryTransportError,
} from './InMemoryTransport.js';
export type {
  InMemoryTransportOptions,
  InMemoryTransportDependencies,
  InMemoryDeadLetter,
  InMemoryRecord,
} from './InMemoryTransport.js';
