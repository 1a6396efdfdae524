/**
 * The console's guards: who may call the API (a token when not bound to loopback), that an action
 * comes from the console's own page (CSRF), and that the Host is the console's (DNS rebinding).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

export const CSRF_HEADER = 'x-backtrack-csrf';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export function newSecret(): string {
  return randomBytes(24).toString('base64url');
}

export function sameSecret(given: string | undefined, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The token of a request: `Authorization: Bearer <token>`. */
export function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  const m = typeof header === 'string' ? /^Bearer\s+(\S+)$/i.exec(header) : null;
  return m?.[1];
}

/** The host part of a Host header (`[::1]:8080` -> `::1`, `example:80` -> `example`). */
export function hostOf(hostHeader: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(hostHeader);
  if (m) return m[1]!;
  return hostHeader.replace(/:\d+$/, '');
}

export interface Guard {
  /** The token every API call must carry, or undefined on loopback without `--token`. */
  token?: string;
  /** What a POST must carry in {@link CSRF_HEADER}; handed out by `GET /api/session`. */
  csrf: string;
  /**
   * Host names the console answers to on loopback (against DNS rebinding: a page of another site
   * resolving its name to 127.0.0.1). Off loopback the token guards instead: undefined.
   */
  hosts?: Set<string>;
}

/** Refuses with a JSON error and returns false, or returns true. */
function refuse(reply: FastifyReply, status: number, code: string, message: string): false {
  void reply.code(status).send({ error: { code, message } });
  return false;
}

export function checkRequest(guard: Guard, request: FastifyRequest, reply: FastifyReply): boolean {
  const host = request.headers.host;
  if (!host || (guard.hosts && !guard.hosts.has(hostOf(host).toLowerCase())))
    return refuse(reply, 421, 'BT_ERR_UI_HOST', 'this console does not answer to that Host');
  if (!request.url.startsWith('/api/')) return true;
  if (guard.token && !sameSecret(bearer(request), guard.token))
    return refuse(reply, 401, 'BT_ERR_UI_TOKEN', 'a valid console token is required');
  if (request.method === 'GET' || request.method === 'HEAD') return true;
  // An action: only from the console's own page.
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin')
    return refuse(reply, 403, 'BT_ERR_UI_CSRF', `cross-site request refused (${String(site)})`);
  const origin = request.headers.origin;
  if (origin !== undefined) {
    let ok = false;
    try {
      ok = new URL(origin).host.toLowerCase() === host.toLowerCase();
    } catch {
      ok = false;
    }
    if (!ok) return refuse(reply, 403, 'BT_ERR_UI_CSRF', 'cross-origin request refused');
  }
  const csrf = request.headers[CSRF_HEADER];
  if (!sameSecret(typeof csrf === 'string' ? csrf : undefined, guard.csrf))
    return refuse(reply, 403, 'BT_ERR_UI_CSRF', `missing or wrong ${CSRF_HEADER} header`);
  return true;
}
