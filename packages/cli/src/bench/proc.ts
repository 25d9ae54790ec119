/**
 * Process memory from Linux `/proc/<pid>/status`: `VmRSS` (resident now) and
 * `VmHWM` (the peak since start, or since the last reset through
 * `/proc/<pid>/clear_refs`). Benchmarks report the peak of a phase.
 */
import { readFile, writeFile } from 'node:fs/promises';

export interface ProcMemory {
  /** Resident set size now, MiB. */
  rssMb: number;
  /** Peak resident set size (high-water mark), MiB. */
  hwmMb: number;
}

/** Parses the `VmRSS` and `VmHWM` lines (kB) of a `/proc/<pid>/status` text. */
export function parseProcStatus(text: string): ProcMemory {
  const kb = (key: string): number => {
    const match = new RegExp(`^${key}:\\s+(\\d+)\\s+kB`, 'm').exec(text);
    if (!match) throw new Error(`no ${key} in /proc status`);
    return Number(match[1]);
  };
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

/**
 * CPU time (user + system, ms) from a `/proc/<pid>/stat` text: fields 14
 * and 15 after the parenthesised command name, in clock ticks of 10 ms
 * (USER_HZ is 100 on Linux).
 */
export function parseProcStatCpuMs(text: string): number {
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('unreadable /proc stat');
  return (utime + stime) * 10;
}

export async function readProcCpuMs(pid: number): Promise<number> {
  return parseProcStatCpuMs(await readFile(`/proc/${pid}/stat`, 'utf8'));
}

export async function readProcMemory(pid: number): Promise<ProcMemory> {
  return parseProcStatus(await readFile(`/proc/${pid}/status`, 'utf8'));
}

/**
 * Resets the process's peak RSS to its current RSS (`echo 5 > clear_refs`,
 * Linux ≥ 4.0). Returns false where that is not allowed.
 */
export async function resetPeakRss(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export interface PhasePeak<T> {
  result: T;
  /** Peak RSS during the phase, MiB. */
  peakMb: number;
  /** RSS when the phase ended, MiB. */
  endRssMb: number;
  /** How the peak was found: the kernel's high-water mark since a reset, or sampling only. */
  method: 'hwm' | 'sampled';
}

/**
 * Runs `phase` and returns the peak RSS of process `pid` during it: the
 * kernel high-water mark after resetting it at the start, cross-checked by
 * sampling `VmRSS` every `sampleMs` (used alone if the reset is refused).
 */
export async function measurePhasePeak<T>(pid: number, phase: () => Promise<T>, sampleMs = 20): Promise<PhasePeak<T>> {
  const reset = await resetPeakRss(pid);
  let sampled = (await readProcMemory(pid)).rssMb;
  let sampling = Promise.resolve();
  const timer = setInterval(() => {
    sampling = sampling.then(async () => {
      try {
        sampled = Math.max(sampled, (await readProcMemory(pid)).rssMb);
      } catch {
        // The process ended; the phase will report it.
      }
    });
  }, sampleMs);
  try {
    const result = await phase();
    clearInterval(timer);
    await sampling;
    const end = await readProcMemory(pid);
    sampled = Math.max(sampled, end.rssMb);
    return reset
      ? { result, peakMb: Math.max(end.hwmMb, sampled), endRssMb: end.rssMb, method: 'hwm' }
      : { result, peakMb: sampled, endRssMb: end.rssMb, method: 'sampled' };
  } finally {
    clearInterval(timer);
  }
}
