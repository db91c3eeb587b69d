/**
 * `bpfkit firewall` as a child process against a lab link: deny events for real traffic,
 * a rule-file rewrite + SIGHUP that changes what passes, a bad file that keeps the rules in
 * force, SIGINT that removes the program (`ip -j link` shows no xdp), --keep that leaves
 * it pinned (the test removes it), and the exit codes for bad rules and unsupported modes.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AclFirewall } from '../../lib/index.js';
import { BPFFS_PATH, Lab, TEST_PIN_PREFIX, type LabHost, type LabLink } from '../../lib/lab/index.js';
import { cli, CliProcess } from './cli-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'bpfkit-cli-fw-'));
const PIN = `${BPFFS_PATH}/${TEST_PIN_PREFIX}-cli-fw-${process.pid}`;
let lab: Lab;
let client: LabHost;
let server: LabHost;
let link: LabLink;
let running: CliProcess | undefined;

beforeAll(async () => {
  lab = await Lab.create({ name: 'cli-fw' });
  client = await lab.host('client');
  server = await lab.host('server');
  link = await lab.link(client, server, { aAddrs: ['198.18.3.1/24', '2001:db8:3::1/64'], bAddrs: ['198.18.3.2/24', '2001:db8:3::2/64'] });
}, 60_000);
afterEach(async () => {
  await running?.stop('SIGKILL');
  running = undefined;
});
afterAll(async () => {
  if (existsSync(PIN)) rmSync(PIN, { recursive: true, force: true }); // unpinning the link detaches it
  await lab?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The XDP program id on the server's end of the link (0: none), as iproute2 sees it. */
function xdpProgId(): number {
  const out = execFileSync('ip', ['-n', server.netns, '-j', 'link', 'show', 'dev', link.b.ifname], { encoding: 'utf8' });
  const [l] = JSON.parse(out) as { xdp?: { prog?: { id: number } } }[];
  return l?.xdp?.prog?.id ?? 0;
}

/** Sends 3 datagrams to the server's `port`; resolves with how many arrived. */
async function udpArrives(port: number): Promise<number> {
  const sink = await server.udpSink('0.0.0.0', port);
  try {
    await client.sendUdp('198.18.3.2', port, { count: 3, intervalMs: 20 });
    return await sink.waitFor(3, 1500);
  } finally {
    await sink.close();
  }
}

function firewall(rules: string, extra: string[] = []): CliProcess {
  running = new CliProcess([
    'firewall',
    '--iface',
    link.b.ifname,
    '--netns',
    server.netns,
    '--rules',
    rules,
    '--max-rules',
    '64',
    '--event-interval',
    '0',
    ...extra,
  ]);
  return running;
}

describe('bpfkit firewall', () => {
  it('denies by the rule file, prints deny events, reloads on SIGHUP, keeps the old rules on a bad file, removes itself on SIGINT', async () => {
    const rules = join(dir, 'rules.yaml');
    writeFileSync(rules, '# deny UDP 5353\nrules:\n  - id: no-mdns\n    action: deny\n    proto: udp\n    dstPort: 5353\n');
    const fw = firewall(rules);
    await fw.waitFor(/^bpfkit firewall: attached to .*: 1 rules, default allow$/);
    expect(xdpProgId()).toBeGreaterThan(0);

    expect(await udpArrives(5353)).toBe(0);
    expect(await udpArrives(6000)).toBe(3);
    await fw.waitFor(/ deny +rule=no-mdns udp 198\.18\.3\.1:\d+ -> 198\.18\.3\.2:5353 dev=\S+ len=\d+/);

    // rewrite: 5353 is allowed now, 6000 denied (JSON this time, same path: the file is re-read)
    writeFileSync(rules, JSON.stringify([{ id: 'no-6000', action: 'deny', proto: 'udp', dstPort: 6000 }]));
    let mark = fw.out.length;
    fw.p.kill('SIGHUP');
    await fw.waitFor(/^bpfkit firewall: reloaded .*rules\.yaml: 1 rules, generation \d+$/, { from: mark });
    expect(await udpArrives(5353)).toBe(3);
    expect(await udpArrives(6000)).toBe(0);
    await fw.waitFor(/ deny +rule=no-6000 udp .*:6000 /, { from: mark });
    expect(fw.out.slice(mark).some((l) => l.includes('rule=no-mdns'))).toBe(false);

    // a bad rule: the error names the rule and the field; the rules in force stay
    writeFileSync(rules, 'rules:\n  - id: broken\n    action: deny\n    proto: icmp\n    dstPort: 22\n');
    mark = fw.err.length;
    fw.p.kill('SIGHUP');
    const why = await fw.waitFor(/kept the previous rules/, { stderr: true, from: mark });
    expect(why).toMatch(/ERR_INVALID_RULE: rule 'broken' \(#0\): dstPort:/);
    expect(await udpArrives(6000)).toBe(0);
    expect(await udpArrives(5353)).toBe(3);

    const exit = await fw.stop('SIGINT');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(fw.out.at(-1)).toMatch(/^bpfkit firewall: SIGINT: removed from /);
    expect(xdpProgId()).toBe(0);
    expect(await udpArrives(6000)).toBe(3);
  });

  it('--json prints one JSON object per line: notices and events', async () => {
    const rules = join(dir, 'rules.json');
    writeFileSync(rules, JSON.stringify({ rules: [{ id: 'log-7000', action: 'log', proto: 'udp', dstPort: 7000 }] }));
    const fw = firewall(rules, ['--json', '--default', 'deny']);
    await fw.waitFor(/"type":"attached"/);
    expect(fw.records(['attached'])[0]).toMatchObject({
      iface: link.b.ifname,
      netns: server.netns,
      ifindex: link.b.ifindex,
      rules: 1,
      defaultAction: 'deny',
      pin: null,
      program: xdpProgId(),
    });
    expect(await udpArrives(7000)).toBe(3); // logged and allowed
    expect(await udpArrives(7001)).toBe(0); // the default denies
    await fw.waitFor(/"type":"deny".*"dstPort":7001/);
    const log = fw.records(['log']);
    expect(log[0]).toMatchObject({
      ruleId: 'log-7000',
      action: 'log',
      protocol: 'udp',
      proto: 17,
      src: '198.18.3.1',
      dst: '198.18.3.2',
      dstPort: 7000,
      ifname: link.b.ifname,
    });
    expect(new Date(log[0]!.time as string).getTime()).toBeGreaterThan(0);
    // the default also denies what the lab's hosts send by themselves (IPv6 neighbour discovery)
    expect(fw.records(['deny']).find((d) => d.dstPort === 7001)).toMatchObject({ ruleId: null, action: 'deny', protocol: 'udp' });
    expect(await fw.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(fw.records(['removed'])[0]).toMatchObject({ signal: 'SIGTERM' });
    expect(fw.out.every((l) => l.startsWith('{'))).toBe(true);
    expect(xdpProgId()).toBe(0);
  });

  it('--keep leaves the firewall running and pinned; the test removes it', async () => {
    const rules = join(dir, 'keep.yaml');
    writeFileSync(rules, '- { id: no-8000, action: deny, proto: udp, dstPort: 8000 }\n');
    const fw = firewall(rules, ['--keep', '--pin', PIN]);
    await fw.waitFor(/attached to .*pinned at /);
    const id = xdpProgId();
    expect(await fw.stop('SIGINT')).toEqual({ code: 0, signal: null });
    expect(fw.out.at(-1)).toMatch(new RegExp(`SIGINT: left running on .*, pinned at ${PIN}`));
    expect(xdpProgId()).toBe(id);
    expect(await udpArrives(8000)).toBe(0); // still enforced with nobody running

    // `bpfkit status` sees it as bpfkit's, pinned
    const st = await cli(['status', '--json', '--netns', server.netns]);
    const att = (JSON.parse(st.stdout) as { attachments: { ifname: string; module: string; pins: string[] }[] }).attachments.find(
      (a) => a.ifname === link.b.ifname,
    );
    expect(att).toMatchObject({ module: 'acl', pins: expect.arrayContaining([`${PIN}/prog`]) });

    const adopted = await AclFirewall.attach(link.b.ifname, { netns: server.netns, pin: PIN });
    expect(adopted.adopted).toBe(true);
    adopted.detach();
    expect(xdpProgId()).toBe(0);
    expect(existsSync(PIN)).toBe(false);
  });

  it('an invalid rule exits 5 naming the rule and field, with nothing attached', async () => {
    const rules = join(dir, 'bad.yaml');
    writeFileSync(rules, '- id: ok\n  action: allow\n- id: wrong\n  action: deny\n  src: 198.18.0.0/33\n');
    const r = await cli(['firewall', '--iface', link.b.ifname, '--netns', server.netns, '--rules', rules]);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/ERR_INVALID_RULE: rule 'wrong' \(#1\): src:/);
    expect(xdpProgId()).toBe(0);
  });

  it('native XDP on an interface without it exits 4 (unsupported)', async () => {
    const rules = join(dir, 'empty.yaml');
    writeFileSync(rules, 'rules: []\n');
    const r = await cli(['firewall', '--iface', 'lo', '--netns', server.netns, '--rules', rules, '--max-rules', '64']);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/ERR_UNSUPPORTED/);
  });

  it('an interface that does not exist exits 1, a namespace that does not exist too', async () => {
    const rules = join(dir, 'empty.yaml');
    writeFileSync(rules, 'rules: []\n');
    const r = await cli(['firewall', '--iface', 'nosuch0', '--netns', server.netns, '--rules', rules]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ERR_NO_SUCH_INTERFACE|ERR_NOT_FOUND/);
    const n = await cli(['firewall', '--iface', 'lo', '--netns', `${server.netns}-gone`, '--rules', rules]);
    expect(n.code).toBe(1);
    expect(n.stderr).toMatch(/ERR_NOT_FOUND/);
  });
});
