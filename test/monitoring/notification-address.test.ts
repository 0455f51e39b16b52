import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refusedAddress } from '../../src/monitoring/notification-address';
import { RefusedDestination, vetDestination } from '../../src/monitoring/notification-sender';

describe('which addresses a notification may reach', () => {
  it('refuses internal IPv4 ranges and accepts public ones', () => {
    const refused = ['127.0.0.1', '127.255.255.254', '10.0.0.1', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', '100.127.255.255', '169.254.169.254', '0.0.0.0', '224.0.0.1', '239.255.255.250', '255.255.255.255', '198.18.0.1'];
    for (const a of refused) assert.ok(refusedAddress(a), `${a} is refused`);
    const allowed = ['8.8.8.8', '1.1.1.1', '172.32.0.1', '172.15.255.255', '100.128.0.1', '100.63.255.255', '169.253.0.1', '192.169.0.1', '93.184.216.34'];
    for (const a of allowed) assert.equal(refusedAddress(a), null, `${a} is public`);
    assert.match(refusedAddress('169.254.169.254')!, /link-local/);
    assert.match(refusedAddress('100.64.0.1')!, /carrier-grade NAT/);
  });

  it('refuses internal IPv6 ranges and accepts public ones', () => {
    const refused = ['::1', '::', 'fe80::1', 'febf::1', 'fc00::1', 'fd12:3456::1', 'ff02::1', 'fec0::1', 'fe80::1%eth0', '0:0:0:0:0:0:0:1'];
    for (const a of refused) assert.ok(refusedAddress(a), `${a} is refused`);
    for (const a of ['2001:4860:4860::8888', '2606:4700:4700::1111', 'fe00::1', '2a00:1450::1']) assert.equal(refusedAddress(a), null, `${a} is public`);
  });

  it('judges an IPv4 address written inside an IPv6 one (mapped, compatible, NAT64) as that IPv4 address', () => {
    for (const a of ['::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '::ffff:169.254.169.254', '::ffff:a9fe:a9fe', '::127.0.0.1', '64:ff9b::a9fe:a9fe', '0:0:0:0:0:ffff:c0a8:0101']) {
      assert.match(refusedAddress(a) ?? 'accepted', /IPv4-mapped|NAT64/, a);
    }
    assert.equal(refusedAddress('::ffff:8.8.8.8'), null);
    assert.equal(refusedAddress('64:ff9b::808:808'), null);
  });

  it('refuses at the URL: other schemes, credentials, internal literals in any spelling, names resolving only inside', async () => {
    const settings = { allowedHosts: new Set<string>(), connectTimeoutMs: 1000, timeoutMs: 2000 };
    const refused = async (url: string, why: RegExp) => {
      await assert.rejects(vetDestination(settings, url), (e: Error) => e instanceof RefusedDestination && why.test(e.message), url);
    };
    await refused('ftp://example.com/x', /scheme/);
    await refused('file:///etc/passwd', /scheme/);
    await refused('https://user:pw@example.com/', /user name or password/);
    await refused('http://127.0.0.1:8080/', /loopback/);
    await refused('http://2130706433/', /loopback/);
    await refused('http://0x7f.1/', /loopback/);
    await refused('http://[::1]/', /loopback/);
    await refused('http://[::ffff:169.254.169.254]/', /IPv4-mapped link-local/);
    await refused('http://localhost:9/', /resolves only to refused addresses/);
    const allowed = await vetDestination({ ...settings, allowedHosts: new Set(['127.0.0.1']) }, 'http://127.0.0.1:9/hook');
    assert.equal(allowed.address, '127.0.0.1');
  });
});
