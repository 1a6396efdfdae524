/**
 * @backtrack/postgres/adapter: for tools that open their own `pg` pool and want its refusals said
 * the way the stores say them: the classifier that turns a `pg` error into a
 * `PostgresAccessError`. Applications import `@backtrack/postgres`.
 */
export { classifyPostgresError } from './connectionErrors.js';
