/**
 * @backtrack/rabbitmq/adapter: for people who work below the transport. The message binding
 * (envelope to AMQP message and back, CloudEvents binary or structured mode) and its header
 * names, for producers and readers outside Backtrack; the setup hooks that run on every
 * (re)connect of `transport.connection`, in their phases; and the classifier that turns an
 * amqplib error into a `RabbitAccessError`. Applications import `@backtrack/rabbitmq`; nothing
 * here is needed to use the transport.
 */
export {
  BACKTRACK_HEADERS,
  CLOUD_EVENTS_HEADER_PREFIX,
  fromAmqpMessage,
  toAmqpMessage,
} from './envelope/amqpBinding.js';
export type { AmqpMessage, AmqpMessageLike } from './envelope/amqpBinding.js';
export { SETUP_PHASES } from './connection/RabbitConnection.js';
export type { SetupHook, SetupPhase } from './connection/RabbitConnection.js';
export { classifyRabbitError } from './connection/connectionErrors.js';
