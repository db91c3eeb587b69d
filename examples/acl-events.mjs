// AclFirewall with its events shipped as JSON lines: a firewall on a server's interface
// in a namespace lab; a client tries SSH (denied), HTTP (allowed and logged) and a burst of
// UDP to a denied port. Every deny/log event becomes one JSON line in a file (or on
// stdout), written with backpressure honoured: the shape an analytics pipeline ingests.
//
//   node examples/acl-events.mjs [events.jsonl]     (as root; default: JSON lines on stdout)
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { AclFirewall } from 'bpfkit';
import { Lab } from 'bpfkit/lab';

const file = process.argv[2];
const out = file ? createWriteStream(file) : process.stdout;
// with JSON lines on stdout, the narrative goes to stderr
const say = file ? (s) => console.log(s) : (s) => console.error(s);

const rules = [
  { id: 'no-ssh', action: 'deny', src: ['198.18.0.0/24', '2001:db8::/64'], proto: 'tcp', dstPort: 22 },
  { id: 'web', action: 'log', proto: 'tcp', dstPort: [80, 443] },
  { id: 'no-mdns', action: 'deny', proto: 'udp', dstPort: 5353 },
];

const lab = await Lab.create({ name: 'example-acl-events' });
let fw;
try {
  const client = await lab.host('client');
  const server = await lab.host('server');
  const { b: serverEnd } = await lab.link(client, server, {
    aAddrs: ['198.18.0.1/24', '2001:db8::1/64'],
    bAddrs: ['198.18.0.2/24', '2001:db8::2/64'],
  });
  fw = await AclFirewall.attach(serverEnd.ifname, { netns: server.netns, rules, eventIntervalMs: 1000 });
  say(`AclFirewall on ${server.name}:${serverEnd.ifname}, default ${fw.defaultAction}, ${fw.rules().length} rules`);

  // Ship events: one JSON line each; wait for 'drain' when the stream's buffer is full.
  const seen = new Set();
  let written = 0;
  const shipping = (async () => {
    for await (const ev of fw) {
      seen.add(ev.ruleId);
      written++;
      if (!out.write(`${JSON.stringify(ev)}\n`)) await once(out, 'drain');
    }
  })();

  const listeners = await Promise.all([server.tcpListen('::', 22), server.tcpListen('::', 80)]);
  const ssh = await client.tcpConnect('198.18.0.2', 22, 500);
  const ssh6 = await client.tcpConnect('2001:db8::2', 22, 500);
  const web = await client.tcpConnect('198.18.0.2', 80, 2000);
  const udp = await client.sendUdp('198.18.0.2', 5353, { count: 50 });
  say(
    `client: ssh over IPv4 ${ssh ? 'connected' : 'blocked'}, over IPv6 ${ssh6 ? 'connected' : 'blocked'}; http ${web ? 'connected' : 'blocked'}; ${udp.sent} datagrams to udp/5353`,
  );
  await Promise.all(listeners.map((l) => l.close()));

  // Events arrive asynchronously: wait (bounded) until every rule has reported.
  for (let i = 0; i < 50 && rules.some((r) => !seen.has(r.id)); i++) await new Promise((r) => setTimeout(r, 100));

  const st = await fw.stats();
  for (const r of st.rules) say(`rule ${r.id.padEnd(8)} ${r.action.padEnd(5)} ${r.packets} packets, ${r.bytes} bytes`);
  say(`events: ${st.events.emitted} emitted, ${st.events.suppressed} suppressed (counted, not reported one by one), ${st.events.lost} lost`);
  fw.close(); // ends the event iterator
  await shipping;
  say(`${written} events written as JSON lines to ${file ?? 'stdout'}`);
  if (ssh || ssh6 || !web) throw new Error('the firewall did not enforce its rules');
  if (rules.some((r) => !seen.has(r.id))) throw new Error(`no event for rule(s) ${rules.filter((r) => !seen.has(r.id)).map((r) => r.id)}`);
  say('ok: denied flows blocked, allowed flows through, one event per flow and rule');
} finally {
  fw?.close(); // unpinned: detaches the program
  if (file) await new Promise((r) => out.end(r));
  await lab.close();
}
