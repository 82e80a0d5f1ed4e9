// What /proc says about processes, for the peers and the tests alike.
import { readdirSync, readFileSync } from 'node:fs';

/** pid and all its descendants, read from /proc (a process gone meanwhile is skipped). */
export function descendants(pid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(name));
    } catch { /* gone meanwhile */ }
  }
  const all = [];
  for (let todo = [pid]; todo.length;) {
    const p = todo.pop();
    all.push(p);
    todo.push(...(children.get(p) || []));
  }
  return all;
}
