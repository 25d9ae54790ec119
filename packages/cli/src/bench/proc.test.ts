import { describe, expect, it } from 'vitest';
import { measurePhasePeak, parseProcStatCpuMs, parseProcStatus, readProcMemory } from './proc.js';

const STATUS = `Name:\tnode
VmPeak:\t 1200000 kB
VmHWM:\t  204800 kB
VmRSS:\t  102400 kB
Threads:\t11
`;

describe('proc', () => {
  it('reads VmRSS and VmHWM in MiB', () => {
    expect(parseProcStatus(STATUS)).toEqual({ rssMb: 100, hwmMb: 200 });
  });

  it('rejects a status without the fields', () => {
    expect(() => parseProcStatus('Name:\tnode\n')).toThrow(/VmRSS/);
  });

  it('reads utime + stime from stat, even with spaces and parentheses in the command name', () => {
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime …
    const stat = '1234 (node (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 11 0';
    expect(parseProcStatCpuMs(stat)).toBe(3000);
  });

  it('measures this process: the phase peak is at least what the phase held', async () => {
    const before = await readProcMemory(process.pid);
    const { result, peakMb } = await measurePhasePeak(process.pid, async () => {
      const block = Buffer.alloc(64 * 1024 * 1024, 1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      return block.length;
    });
    expect(result).toBe(64 * 1024 * 1024);
    expect(peakMb).toBeGreaterThanOrEqual(before.rssMb + 32);
  });
});
