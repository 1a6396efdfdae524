/**
 * @backtrack/redis/adapter: for tools that open their own ioredis client (the `backtrack` CLI,
 * a console) and want its refusals said the way the stores say them: the classifier that turns
 * an ioredis error into a `RedisAccessError`. Applications import `@backtrack/redis`.
 */
export { classifyRedisError } from './connectionErrors.js';
