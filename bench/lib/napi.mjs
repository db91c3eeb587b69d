// NAPI threads of veth interfaces, for live benchmarks that give the receiver its own CPU:
// find them, switch an interface to threaded NAPI and pin its threads, read their CPU time.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** PIDs of the NAPI kthreads of an interface (comm `napi/<ifname>-<id>`, cut to 15 chars). */
export function napiThreads(ifname) {
  const prefix = `napi/${ifname}-`.slice(0, 15);
  const pids = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/comm`, 'utf8').trim().startsWith(prefix)) pids.push(p);
    } catch {
      /* gone */
    }
  }
  return pids;
}

/** CPU time (ns, /proc/PID/schedstat) the given threads have run, keyed by PID. */
export function cpuNsByPid(pids) {
  return Object.fromEntries(pids.map((p) => [p, Number(readFileSync(`/proc/${p}/schedstat`, 'utf8').split(' ')[0])]));
}

/**
 * Threaded NAPI on `ifname` in `host` (through the namespace's own sysfs), its threads
 * pinned to `cpu`; returns how many.
 */
export async function threadNapi(host, ifname, cpu) {
  await host.exec(['sh', '-c', `echo 1 > /sys/class/net/${ifname}/threaded`]);
  const pids = napiThreads(ifname);
  for (const pid of pids) execFileSync('taskset', ['-p', '-c', String(cpu), pid], { stdio: 'ignore' });
  return pids.length;
}
