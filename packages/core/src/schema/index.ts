export { defineEvent, EventDefinition } from './defineEvent.js';
export type {
  EventData,
  EventInput,
  EventVersion,
  LatestVersion,
  VersionSchemas,
  VersionTransforms,
  EventEnvelopeOptions,
  NoVersions,
} from './defineEvent.js';
export { EventRegistry } from './EventRegistry.js';
export type { AnyEventDefinition } from './EventRegistry.js';
export {
  SchemaDefinitionError,
  UnknownEventTypeError,
  UnknownSchemaVersionError,
  SchemaValidationError,
  MissingTransformError,
  TransformFailedError,
  SchemaIncompatibleError,
  SchemaSnapshotError,
} from './errors.js';
