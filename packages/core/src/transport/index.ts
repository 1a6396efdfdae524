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
export type {
  TransportEventBase,
  TransportEventListener,
  TransportEventMap,
  TransportEventName,
  TransportEvents,
} from './events.js';
