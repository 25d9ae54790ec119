import { describe, expect, it } from 'vitest';
import { checkpointCompleteOpId, LineSplitter } from './raw-stream.js';

describe('LineSplitter', () => {
  it('returns whole lines at every cut of the input', () => {
    const text = '{"a":1}\n{"checkpoint_complete":{"last_op_id":"7"}}\n\n{"b":"x\\ny"}\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const splitter = new LineSplitter();
      const lines = [...splitter.push(text.slice(0, cut)), ...splitter.push(text.slice(cut))];
      expect(lines).toEqual(['{"a":1}', '{"checkpoint_complete":{"last_op_id":"7"}}', '{"b":"x\\ny"}']);
      expect(splitter.pending).toBe(0);
    }
  });

  it('holds back an unfinished line', () => {
    const splitter = new LineSplitter();
    expect(splitter.push('{"a":')).toEqual([]);
    expect(splitter.pending).toBe(5);
    expect(splitter.push('1}\n')).toEqual(['{"a":1}']);
  });
});

describe('checkpointCompleteOpId', () => {
  it('finds the op id of checkpoint_complete lines only', () => {
    expect(checkpointCompleteOpId('{"checkpoint_complete":{"last_op_id":"9007199254740993"}}')).toBe(
      '9007199254740993',
    );
    expect(checkpointCompleteOpId('{"checkpoint":{"last_op_id":"5","buckets":[]}}')).toBeNull();
    expect(checkpointCompleteOpId('{"token_expires_in":3600}')).toBeNull();
  });
});
