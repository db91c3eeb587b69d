/** iproute2 as the independent witness of what is attached to an interface. */
import { execFileSync } from 'node:child_process';

/** The id of the XDP program attached to `ifname` in namespace `netns`, as `ip -d link` reports it; undefined when none. */
export function xdpProgId(netns: string, ifname: string): number | undefined {
  const j = JSON.parse(execFileSync('ip', ['-n', netns, '-j', '-d', 'link', 'show', 'dev', ifname], { encoding: 'utf8' }));
  return j[0]?.xdp?.prog?.id ?? j[0]?.xdp?.attached?.[0]?.prog?.id;
}
