export type { OutgoingMessage, Subscription, SubscriptionOptions, Transport } from './Transport.js';
