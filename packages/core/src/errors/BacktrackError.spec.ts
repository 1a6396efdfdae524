import { describe, expect, it } from 'vitest';
import { BacktrackError, isRetriable } from './BacktrackError.js';

class ParentError extends BacktrackError {}
class ChildError extends ParentError {}

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
    // Simulates a second install of @backtrack/core: same Symbol.for brands, different class.
    const foreign = Object.assign(new Error('other copy'), {
      [Symbol.for('backtrack.BacktrackError')]: true,
      [Symbol.for('backtrack.ParentError')]: true,
    });
    expect(foreign).toBeInstanceOf(BacktrackError);
    expect(foreign).toBeInstanceOf(ParentError);
    expect(foreign).not.toBeInstanceOf(ChildError);
  });

  it('is not retriable unless told so', () => {
    expect(isRetriable(new BacktrackError('BT_ERR_Z', 'z'))).toBe(false);
    expect(isRetriable(new Error('plain'))).toBe(false);
  });
});
