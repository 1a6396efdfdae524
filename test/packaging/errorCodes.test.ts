/**
 * docs/errors.md lists exactly the codes the code throws, each with a fix (fastify keeps its
 * Errors.md this way): the codes are the packages' `*_ERROR_CODES` constants, and a scan of the
 * sources finds no `'BT_ERR_*'` literal outside them. Every error class of every public entry
 * declares its own brand, and no two share one.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as core from '@backtrack/core';
import * as adapter from '@backtrack/core/adapter';
import * as testing from '@backtrack/core/testing';
import * as redis from '@backtrack/redis';
import * as kafka from '@backtrack/kafka';
import * as rabbitmq from '@backtrack/rabbitmq';
import * as postgres from '@backtrack/postgres';
import * as cli from '@backtrack/cli';

const root = fileURLToPath(new URL('../..', import.meta.url));

const DECLARED = new Set<string>(
  [
    core.CORE_ERROR_CODES,
    redis.REDIS_ERROR_CODES,
    kafka.KAFKA_ERROR_CODES,
    rabbitmq.RABBIT_ERROR_CODES,
    postgres.POSTGRES_ERROR_CODES,
    cli.CLI_ERROR_CODES,
  ].flatMap((codes) => Object.values(codes)),
);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    // The contract suites are tests: their codes are the fake failures they inject.
    if (statSync(path).isDirectory()) return name === 'contracts' ? [] : sources(path);
    return name.endsWith('.ts') && !name.endsWith('.spec.ts') ? [path] : [];
  });
}

/** The `| code | meaning | fix |` rows of docs/errors.md above its upgrade notes. */
function documented(): Map<string, { meaning: string; fix: string }> {
  const text = readFileSync(join(root, 'docs', 'errors.md'), 'utf8').split(
    /^## Upgrade notes/m,
  )[0]!;
  const rows = new Map<string, { meaning: string; fix: string }>();
  for (const line of text.split('\n')) {
    const row = /^\| `(BT_ERR_[A-Z0-9_]+)` \|(.*)\|(.*)\|\s*$/.exec(line);
    if (!row) continue;
    expect(rows.has(row[1]!), `${row[1]} is listed twice`).toBe(false);
    rows.set(row[1]!, { meaning: row[2]!.trim(), fix: row[3]!.trim() });
  }
  return rows;
}

describe('error codes', () => {
  it('every BT_ERR_ literal in the sources is one of the declared constants', () => {
    const stray: string[] = [];
    for (const pkg of readdirSync(join(root, 'packages'))) {
      for (const file of sources(join(root, 'packages', pkg, 'src'))) {
        for (const m of readFileSync(file, 'utf8').matchAll(/'(BT_ERR_[A-Z0-9_]+)'/g)) {
          if (!DECLARED.has(m[1]!)) stray.push(`${file.slice(root.length)}: ${m[1]}`);
        }
      }
    }
    expect(stray).toEqual([]);
  });

  it('docs/errors.md lists exactly the declared codes, each with a meaning and a fix', () => {
    const rows = documented();
    expect([...rows.keys()].sort()).toEqual([...DECLARED].sort());
    for (const [code, { meaning, fix }] of rows) {
      expect(meaning.length, `${code} has no meaning`).toBeGreaterThan(10);
      expect(fix.length, `${code} has no fix`).toBeGreaterThan(3);
    }
  });

  it('gives each error class of every entry its own declared brand', () => {
    const entries = { core, adapter, testing, redis, kafka, rabbitmq, postgres, cli };
    const brands = new Map<string, string>();
    for (const [entry, exports] of Object.entries(entries)) {
      for (const [name, value] of Object.entries(exports)) {
        if (typeof value !== 'function') continue;
        // The prototype chain, not instanceof (which checks brands, and prototypes carry none).
        const base = core.BacktrackError;
        if (
          value !== base &&
          !Object.prototype.isPrototypeOf.call(base.prototype, value.prototype)
        ) {
          continue;
        }
        expect(Object.hasOwn(value, 'brand'), `${entry}.${name} declares no brand`).toBe(true);
        const brand = (value as unknown as { brand: string }).brand;
        expect(brand).toMatch(
          new RegExp(`^@backtrack/(core|redis|kafka|rabbitmq|postgres|cli)\\.${name}$`),
        );
        const seen = brands.get(brand);
        expect(seen === undefined || seen === name, `${brand} used by ${seen} and ${name}`).toBe(
          true,
        );
        brands.set(brand, name);
      }
    }
    expect(brands.size).toBeGreaterThan(50);
  });
});
