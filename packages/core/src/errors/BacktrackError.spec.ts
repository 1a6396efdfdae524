import { describe, expect, it } from 'vitest';
import { BacktrackError, isRetriable } from './BacktrackError.js';

class ParentError extends BacktrackError {}
class ChildError extends ParentError {}
class BrandedParent extends BacktrackError {
  static override readonly brand: string = '@backtrack/test.BrandedParent';
}
class BrandedChild extends BrandedParent {
  static override readonly brand: string = '@backtrack/test.BrandedChild';
}

describe('BacktrackError', () => {
  it('carries code, details, cause and retriable flag', () => {
    const cause = new Error('boom');
    const e = new BacktrackError('BT_ERR_TEST', 'msg', {
      details: { a: 1 },
      cause,
      retriable: true,
    });
    expect(e.code).toBe('BT_ERR_TEST');
    expect(e.details).toEqual({ a: 1 });
    expect(e.cause).toBe(cause);
    expect(isRetriable(e)).toBe(true);
    expect(e.toJSON()).toMatchObject({ code: 'BT_ERR_TEST', retriable: true });
  });

  it('answers instanceof for parents and not for siblings', () => {
    const child = new ChildError('BT_ERR_X', 'x');
    expect(child).toBeInstanceOf(ChildError);
    expect(child).toBeInstanceOf(ParentError);
    expect(child).toBeInstanceOf(BacktrackError);
    expect(new ParentError('BT_ERR_Y', 'y')).not.toBeInstanceOf(ChildError);
    expect(new Error('plain')).not.toBeInstanceOf(BacktrackError);
    expect(child.name).toBe('ChildError');
  });

  it('recognises an error branded by another copy of the class', () => {
    // Simulates a second install of @backtrack/core: same brand strings, different class objects.
    const foreign = Object.assign(new Error('other copy'), {
      [Symbol.for(BacktrackError.brand)]: true,
      [Symbol.for(BrandedParent.brand)]: true,
    });
    expect(foreign).toBeInstanceOf(BacktrackError);
    expect(foreign).toBeInstanceOf(BrandedParent);
    expect(foreign).not.toBeInstanceOf(BrandedChild);
    expect(new BrandedChild('BT_ERR_X', 'x')).toBeInstanceOf(BrandedParent);
  });

  it('tells apart two classes with one name (the brand is declared, not class.name)', () => {
    // Two packages may both call a class ConfigError, and a minifier may rename classes: the
    // brand string each class declares is what instanceof checks.
    const A = class ConfigError extends BacktrackError {
      static override readonly brand: string = '@backtrack/test-a.ConfigError';
    };
    const B = class ConfigError extends BacktrackError {
      static override readonly brand: string = '@backtrack/test-b.ConfigError';
    };
    const a = new A('BT_ERR_A', 'a');
    expect(A.name).toBe(B.name);
    expect(a).toBeInstanceOf(A);
    expect(a).not.toBeInstanceOf(B);
    expect(new B('BT_ERR_B', 'b')).not.toBeInstanceOf(A);
    expect(a).toBeInstanceOf(BacktrackError);
    // A renamed copy (as a minifier emits) with the same brand is still the same class.
    const renamed = class x extends BacktrackError {
      static override readonly brand: string = '@backtrack/test-a.ConfigError';
    };
    expect(a).toBeInstanceOf(renamed);
  });

  it('is not retriable unless told so', () => {
    expect(isRetriable(new BacktrackError('BT_ERR_Z', 'z'))).toBe(false);
    expect(isRetriable(new Error('plain'))).toBe(false);
  });
});
