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
export { EventRegistry, DEFAULT_SCHEMA_VERSION } from './EventRegistry.js';
export type { AnyEventDefinition, EventRegistryOptions } from './EventRegistry.js';
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
export {
  COMPATIBILITY,
  checkCompatibility,
  assertCompatible,
  satisfies,
  snapshotRegistry,
  serializeSnapshot,
  loadSnapshot,
  formatProblems,
} from './compatibility.js';
export type {
  CompatibilityLevel,
  CompatibilityOptions,
  CompatibilityReport,
  CompatibilityProblem,
  CompatibilityWarning,
  EventCompatibility,
  RegistrySnapshot,
  VersionSnapshot,
} from './compatibility.js';
export { readerAcceptsWriter } from './jsonSchemaCompat.js';
export type { JsonSchema, Roles, SchemaProblem } from './jsonSchemaCompat.js';
