"""parker.kernel.partition through its main(), against the Parker emulation's model as the kernel (parker_kernel)."""
import errno
import fcntl
import json
import os
import shutil

import pytest

from ansible_collections.parker.kernel.tests.unit.parker_kernel import ParkerHost, ROOT, run_module
from ansible_collections.parker.kernel.tests.unit.unit_helpers import snapshot
from ansible_collections.parker.kernel.plugins.module_utils import _hostio, _parker
from ansible_collections.parker.kernel.plugins.modules import partition

KERNEL = '/boot/vmlinuz-6.1.0-fake-amd64'
STARTED = dict(state='started', kernel=KERNEL)


def params(**kw):
    base = dict(name='p1', cpus='2-3', memory='256M', devices=['block=vdb'], parker_root=ROOT, memory_retries=1)
    base.update(kw)
    return base


def kernel(host, monkeypatch, **kw):
    monkeypatch.setenv('SSH_CONNECTION', '10.0.2.2 50000 10.0.2.15 22')
    return ParkerHost(host, monkeypatch, **kw)


@pytest.fixture
def parker(host, sim, monkeypatch):
    return kernel(host, monkeypatch)


@pytest.fixture
def run(parker, monkeypatch):
    def call(args, check=False, commands=None):
        return run_module(monkeypatch, partition, args, parker.host.root, check_mode=check, diff=True,
                          commands=parker.commands(commands))
    return call


def test_present_then_repeat_then_absent(parker, run):
    result = run(params())
    assert result['changed'] and result['cpus'] == '2-3' and result['memmap'] == '256M@0x100000000'
    assert result['devices'] == ['0000:00:03.0'] and 'vdb' not in parker.view()['block']
    assert parker.view()['online'] == '0-1,4-7'
    again = run(params())
    assert again['changed'] is False and again['actions'] == []
    gone = run(params(state='absent'))
    assert gone['changed'] and gone['returned']['cpus'] == '2-3'
    assert parker.view()['online'] == '0-7' and parker.view()['partitions'] == {} and 'vdb' in parker.view()['block']


def test_check_mode_writes_nothing(parker, run):
    before = snapshot(parker.host.root)
    result = run(params(), check=True)
    assert result['changed'] and 'p1: cpus=2-3 memory=256M@0x0 devices=0000:00:03.0' in result['diff']['after']
    assert snapshot(parker.host.root) == before


def test_live_partition_is_never_rewritten(parker, run):
    run(params())
    result = run(params(cpus='4-5'))
    assert result['failed'] and 'never rewritten' in result['msg'] and 'replace: true' in result['msg']
    assert parker.model.info('p1')['cpus'] == [2, 3]
    replaced = run(params(cpus='4-5', replace=True))
    assert replaced['changed'] and parker.model.info('p1')['cpus'] == [4, 5]
    assert parker.view()['online'] == '0-3,6-7'


@pytest.mark.parametrize('kw,fragment', [
    (dict(cpus='0-1'), 'boot CPU'),
    (dict(cpus='2-x'), 'malformed'),
    (dict(memory='lots'), 'malformed size'),
    (dict(devices=['net=eth0']), 'SSH connection'),
    (dict(name='../etc'), 'partition name'),
    (dict(state='started'), 'missing: kernel'),
    (dict(cpus=True), 'boolean'),
])
def test_refusals_write_nothing(parker, run, kw, fragment):
    before = snapshot(parker.host.root)
    result = run(params(**kw))
    assert result['failed'] and fragment in result['msg'], result['msg']
    assert snapshot(parker.host.root) == before


def test_the_argument_spec_applies(run):
    result = run(params(bogus=1))
    assert result['failed'] and 'bogus' in result['msg']
    assert 'missing' in run(dict(name='p1', parker_root=ROOT))['msg']   # present needs cpus and memory


def test_cpus_of_another_partition_and_unbound_devices_are_refused(parker, run):
    run(params(name='p0', cpus='4-5', devices=[]))
    os.remove(parker.host.path('/sys/bus/pci/devices/0000:00:03.0/driver'))
    result = run(params(cpus='4-7'))
    assert 'CPUs 4-5 already belong to partition p0' in result['msg'] and 'no host driver' in result['msg']


def test_no_kernfs_is_refused(host, sim, monkeypatch):
    result = run_module(monkeypatch, partition, params(), host.root)
    assert result['failed'] and 'no Parker kernfs' in result['msg']


def test_started_loads_inside_the_partition_and_clears_the_slot(parker, run):
    result = run(params(console='ttyS1', **STARTED))
    load = [argv for argv in result['_ran'] if '-l' in argv][0]
    assert '--mem-min=0x100000000' in load and '--mem-max=0x10fffffff' in load
    assert ('--command-line=parker=0x1417d9000 memmap=exactmap memmap=256M@0x100000000 console=ttyS1 nokaslr '
            'tsc_early_khz=2893202') in load
    assert result['_ran'][-1][-1] == '-u' and parker.view()['kexec_loaded'] == '0'
    assert result['online'] is True and result['started'] is True and result['instance_cpus'] is None
    refused = run(params(state='absent'))
    assert refused['failed'] and 'no host-side stop' in refused['msg']


def test_a_run_killed_part_way_converges(parker, run):
    parker.model.mkdir('p1')   # killed after mkdir and cpus: memory and the device are still missing
    parker.model.write('p1', 'cpus', '2-3')
    parker.render()
    result = run(params())
    assert result['changed'] and result['memmap'] == '256M@0x100000000' and result['devices'] == ['0000:00:03.0']
    assert not any(a.endswith('/cpus <- 2-3') for a in result['actions'])
    assert run(params())['changed'] is False


@pytest.mark.parametrize('kw,fragment', [
    (dict(console='ttyS0 x'), 'spaces'),
    (dict(kernel='/boot/nope'), 'does not exist'),
    (dict(cmdline=['memmap=1G@0x0']), 'set by the partition'),
    (dict(tsc_early_khz='fast'), 'not auto, off or a frequency'),
])
def test_start_is_validated_before_the_partition_is_built(parker, run, kw, fragment):
    before = snapshot(parker.host.root)
    result = run(params(**dict(STARTED, **kw)))
    assert result['failed'] and fragment in result['msg'], result['msg']
    assert snapshot(parker.host.root) == before


def test_a_start_that_never_comes_online_ends_at_its_timeout_and_undoes_nothing(host, sim, monkeypatch):
    """The model's writer gives up after its cap and leaves parker_mutex wedged, as a real kernel would hang."""
    slow = kernel(host, monkeypatch, boots=False)
    result = run_module(monkeypatch, partition, params(start_timeout=1, **STARTED), host.root,
                        commands=slow.commands())
    assert result['failed'] and result['errno_name'] == 'ETIMEDOUT' and 'Nothing was undone' in result['msg']
    assert result['changed'] is True and slow.model.info('p1')['started'] and slow.view()['kexec_loaded'] == '1'
    assert json.loads(host.read('/run/parker-kernel/partitions.json'))['p1']['started'] is True


def test_selectors_still_match_after_bind_took_the_names(parker, run):
    """bind takes vdb away from the Boot Kernel; block=vdb must keep meaning 0000:00:03.0."""
    assert run(params())['devices'] == ['0000:00:03.0']
    again = run(params())
    assert again['changed'] is False and again['devices'] == ['0000:00:03.0']
    assert again['selectors'] == {'block=vdb': '0000:00:03.0'}
    assert run(params(state='absent'))['changed']


def test_conflicts_between_partitions_of_one_host():
    from ansible_collections.parker.kernel.plugins.filter.partition import partition_conflicts
    assert partition_conflicts([{'name': 'p1', 'cpus': '2', 'devices': ['0000:00:07.0']},
                                {'name': 'p2', 'cpus': '3', 'devices': ['0000:00:08.0']}]) == []
    problems = partition_conflicts([{'name': 'p1', 'cpus': '2-3', 'devices': ['0000:00:07.0']},
                                    {'name': 'p2', 'cpus': '3', 'devices': ['0000:00:07.0']},
                                    {'name': 'p2', 'cpus': 'x', 'devices': []}])
    assert problems == ['partition p2 is listed 2 times', 'CPU 3 is asked for by both p1 and p2',
                        'device 0000:00:07.0 is asked for by both p1 and p2']


def test_a_start_killed_before_kexec_unload_clears_the_slot_on_the_next_run(parker, run):
    started = params(**STARTED)
    run(started)
    # As if the run died after online and before kexec -u: this partition's image is still loaded.
    parker.host.write('/sys/kernel/kexec_loaded', '1')
    parker.host.write('/run/parker-kernel/kexec-normal.json', '{"cmdline": "parker=0x1417d9000 memmap=exactmap"}')
    again = run(started)
    assert again['changed'] and again['_ran'][-1][-1] == '-u' and parker.view()['kexec_loaded'] == '0'
    assert run(started)['changed'] is False
    # Someone else's image in the slot is not ours to unload.
    parker.host.write('/sys/kernel/kexec_loaded', '1')
    parker.host.write('/run/parker-kernel/kexec-normal.json', '{"cmdline": "root=/dev/sda1"}')
    assert run(started)['changed'] is False and parker.view()['kexec_loaded'] == '1'


def test_one_operation_at_a_time_per_host(parker, run, monkeypatch):
    from ansible_collections.parker.kernel.plugins.module_utils import _partition
    monkeypatch.setattr(_partition, 'LOCK_WAIT', 0)
    held = os.open(parker.host.path(ROOT), os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        before = snapshot(parker.host.root)
        blocked = run(params())
        assert blocked['failed'] and 'holds the lock' in blocked['msg'] and snapshot(parker.host.root) == before
        # Check mode shares the lock: it must not read a partition another run is building.
        assert 'holds the lock' in run(params(), check=True)['msg']
    finally:
        os.close(held)
    assert run(params())['changed']


class Killed(BaseException):
    """SIGKILL: no rollback, no final state write."""


def test_a_run_killed_after_bind_still_finds_its_devices_by_name(parker, run, monkeypatch):
    from ansible_collections.parker.kernel.plugins.module_utils import _partition

    def killed(part, spec):
        raise Killed()
    monkeypatch.setattr(_partition, '_verify_built', killed)
    with pytest.raises(Killed):
        run(params())
    monkeypatch.setattr(_partition, '_verify_built', lambda part, spec: None)
    again = run(params())
    assert not again.get('failed'), again.get('msg')
    assert again['devices'] == ['0000:00:03.0'] and again['changed'] is False


def test_single_use_is_recorded_before_online_is_written(parker, run, monkeypatch):
    """A run that dies while online blocks must still leave the partition marked as used."""
    def killed(txn, rel, value, timeout, on_spawn=None):
        on_spawn(4242)   # the writer process exists, and will write online whatever happens to this run
        raise Killed()
    monkeypatch.setattr(_hostio.Transaction, 'write_blocking', killed)
    with pytest.raises(Killed):
        run(params(**STARTED))
    assert parker.records()['p1']['started'] is True


def test_a_run_killed_during_the_kexec_load_has_not_used_the_partition(parker, run):
    """No online writer was started, so the next run starts the partition instead of calling it used."""
    loads = []

    def load(argv):
        loads.append(argv)
        if len(loads) == 1 and '-u' not in argv:
            raise Killed()
        parker.host.write('/sys/kernel/kexec_loaded', '0' if '-u' in argv else '1')
        return 0, '', ''
    with pytest.raises(Killed):
        run(params(**STARTED), commands={('/usr/sbin/kexec',): load})
    again = run(params(**STARTED), commands={('/usr/sbin/kexec',): load})
    assert again['changed'] and again['online'] and len([a for a in loads if '-u' not in a]) == 2, again


def test_nothing_is_tried_while_a_timed_out_start_still_blocks_in_the_kernel(host, sim, monkeypatch):
    """Parker's mutex is held by the blocked online writer: a later rmdir or mkdir would hang behind it."""
    from ansible_collections.parker.kernel.plugins.modules import cpu_offline
    slow = kernel(host, monkeypatch, boots=False)
    started = run_module(monkeypatch, partition, params(start_timeout=1, **STARTED), host.root,
                         commands=slow.commands())
    assert started['failed'] and started['errno_name'] == 'ETIMEDOUT' and started['changed'] is True
    host.write('/proc/4242/cmdline', 'python3\0-c\0...\0%s/sys/fs/parker/p1/online\x001\0' % host.root)
    before = snapshot(host.root)
    for request in (params(state='absent'), params(name='p2', cpus='6-7', devices=[])):
        refused = run_module(monkeypatch, partition, request, host.root, commands=slow.commands())
        assert refused['failed'] and 'start of p1 is still blocked' in refused['msg'] and 'pid 4242' in refused['msg']
    parker = _parker.parker_facts(_hostio.HostIO(host.root), ROOT)
    assert parker['blocked_starts'] == [{'partition': 'p1', 'pid': 4242}] and parker['partitions'] == []
    cpu = run_module(monkeypatch, cpu_offline, dict(cpus='6', allow_smt_split=True, parker_root=ROOT), host.root)
    assert cpu['failed'] and 'still blocked' in cpu['msg']
    assert snapshot(host.root) == before
    # The Application Kernel came up late and powered off again; the writer is gone: work goes on.
    shutil.rmtree(host.path('/proc/4242'))
    slow.model.instance_online('p1')
    slow.poweroff('p1')
    assert run_module(monkeypatch, partition, params(state='absent'), host.root)['changed']


def test_the_record_of_a_partition_removed_by_hand_is_dropped(parker, run):
    run(params(name='p0', cpus='4-5', devices=[]))
    parker.model.rmdir('p0')   # an operator's rmdir, outside the collection
    parker.render()
    assert run(params())['changed']
    assert sorted(parker.records()) == ['p1']


def test_a_disk_with_a_mounted_filesystem_is_refused_before_mkdir(parker, run):
    # The data-loss case of issue 10: bind would pull the disk from under /mnt/x.
    host = parker.host
    host.mount(host.partition('vdb', 1), '/mnt/x')
    before = snapshot(host.root)
    result = run(params())
    assert result['failed'] and result['writes'] == 0
    assert '0000:00:03.0 (vdb): /dev/vdb1 is mounted at /mnt/x' in result['msg']
    assert snapshot(host.root) == before
    assert run(params(force=True))['changed']


# -- what a real Parker Boot Kernel does (issue 15) ---------------------------------------------

MOUNT = 'mount -t parker none /sys/fs/parker'


@pytest.fixture
def unmounted(host, sim, monkeypatch):
    return kernel(host, monkeypatch, mounted=False)


def test_check_mode_on_an_unmounted_kernfs_says_it_would_mount_and_writes_nothing(unmounted, monkeypatch):
    before = snapshot(unmounted.host.root)
    result = run_module(monkeypatch, partition, params(), unmounted.host.root, check_mode=True, diff=True,
                        commands=unmounted.commands())
    assert not result.get('failed'), result['msg']
    assert result['actions'][0] == MOUNT and result['mounted_kernfs'] is True and result['_ran'] == []
    assert any(w.startswith('would mount /sys/fs/parker') and 'empty kernfs' in w for w in result['warnings'])
    assert snapshot(unmounted.host.root) == before


def test_an_unmounted_kernfs_is_mounted_as_a_reported_step(unmounted, monkeypatch):
    result = run_module(monkeypatch, partition, params(), unmounted.host.root, commands=unmounted.commands())
    assert not result.get('failed'), result['msg']
    assert result['_ran'][0] == ['mount', '-t', 'parker', 'none', ROOT] and result['actions'][0] == MOUNT
    assert result['changed'] and result['mounted_kernfs'] is True and result['cpus'] == '2-3'
    again = run_module(monkeypatch, partition, params(), unmounted.host.root, commands=unmounted.commands())
    assert again['changed'] is False and again['mounted_kernfs'] is False and again['_ran'] == []


def test_mounting_can_be_refused_instead(unmounted, monkeypatch):
    host = unmounted.host
    before = snapshot(host.root)
    result = run_module(monkeypatch, partition, params(mount_kernfs=False), host.root, commands=unmounted.commands())
    assert result['failed'] and 'nothing is mounted at /sys/fs/parker' in result['msg']
    assert 'mount_kernfs is false' in result['msg'] and result['_ran'] == []
    assert snapshot(host.root) == before
    os.remove(host.path('/proc/filesystems'))
    result = run_module(monkeypatch, partition, params(), host.root, commands=unmounted.commands())
    assert result['failed'] and 'no parker filesystem' in result['msg'] and result['_ran'] == []


def test_a_failed_mkdir_leaves_no_stale_record(parker, run, monkeypatch):
    assert run(params(name='p0', cpus='4-5', devices=[]))['changed']

    def mkdir(txn, rel):
        txn.actions.append('mkdir %s' % rel)
        raise _hostio.ApplyError('mkdir %s' % rel, errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(_hostio.Transaction, 'mkdir', mkdir)
    result = run(params())
    assert result['failed'] and result['errno_name'] == 'ENOSPC' and 'rolled back' in result['msg']
    assert sorted(parker.records()) == ['p0']


def test_enoent_hints_fit_the_path(parker):
    io = _hostio.HostIO(parker.host.root)
    assert 'partition went away' in _parker.missing_hint(io, ROOT, 'write 2-3 to /sys/fs/parker/p1/cpus')
    parker.host.write('/proc/mounts', 'sysfs /sys sysfs rw 0 0\n')
    assert _parker.missing_hint(io, ROOT, 'mkdir /sys/fs/parker/p1').startswith('nothing is mounted at /sys/fs/parker')
    assert _parker.missing_hint(io, ROOT, 'write 1 to /sys/kernel/kexec_loaded') is None


def test_a_claimed_device_keeps_its_host_drivers_link_and_is_still_claimed(parker, run):
    """After bind a real kernel leaves driver -> virtio-pci; devices/ is what says the device is claimed."""
    from ansible_collections.parker.kernel.plugins.module_utils import _facts
    first = run(params())
    assert first['devices'] == ['0000:00:03.0']
    assert os.path.basename(os.readlink(parker.host.path('/sys/bus/pci/devices/0000:00:03.0/driver'))) == 'virtio-pci'
    facts = _facts.gather(_hostio.HostIO(parker.host.root, environ={}), ('pci', 'parker'), ROOT)
    dev = [d for d in facts['pci']['devices'] if d['address'] == '0000:00:03.0'][0]
    assert dev['claimed_by'] == 'p1' and dev['driver'] == 'virtio-pci'
    other = run(params(name='p2', cpus='6-7', devices=['0000:00:03.0']), check=True)
    assert other['failed'] and 'p2: 0000:00:03.0 is already claimed by partition p1' in other['msg']
    assert run(params())['changed'] is False
    gone = run(params(state='absent'))
    assert gone['returned']['devices'] == ['0000:00:03.0']
    actions = first['actions'] + gone['actions']
    assert not [a for a in actions if 'driver/unbind' in a or 'driver_override' in a or 'drivers_probe' in a]


def test_a_device_back_under_another_name_is_found_by_its_recorded_name(parker, run):
    """After rmdir a NIC came back as eth2 and udev renamed it fab1; net=eth1 keeps meaning its address."""
    host = parker.host
    first = run(params(devices=['net=eth1']))
    assert first['devices'] == ['0000:00:06.0'] and first['selectors'] == {'net=eth1': '0000:00:06.0'}
    assert run(params(state='absent'))['changed']
    nic = os.path.realpath(host.path('/sys/class/net/eth1'))
    os.remove(host.path('/sys/class/net/eth1'))
    renamed = os.path.join(os.path.dirname(nic), 'fab1')
    os.rename(nic, renamed)
    host.symlink(renamed[len(host.root):], '/sys/class/net/fab1')
    # Another device has taken the old name meanwhile: the selector still follows the address.
    os.makedirs(host.path('/sys/devices/pci0000:00/0000:00:04.0/virtio9/net/eth1'))
    host.symlink('/sys/devices/pci0000:00/0000:00:04.0/virtio9/net/eth1', '/sys/class/net/eth1')
    again = run(params(devices=['net=eth1']))
    assert not again.get('failed'), again['msg']
    assert again['devices'] == ['0000:00:06.0'] and again['selectors'] == {'net=eth1': '0000:00:06.0'}


def test_check_mode_start_of_a_missing_partition_is_not_online(parker, run):
    result = run(params(**STARTED), check=True)
    assert not result.get('failed'), result['msg']
    assert result['online'] is False and result['started'] is True and result['instance_cpus'] is None
    assert 'control page' in result['instance_cpus_note'] and 'health probe' in result['instance_cpus_note']


def load_line(result):
    return [a for a in result['_ran'] if '-l' in a][0][3]


@pytest.mark.parametrize('kw,tail', [
    (dict(nokaslr=False, tsc_early_khz='off'), 'memmap=256M@0x100000000'),
    (dict(tsc_early_khz='3000000'), 'nokaslr tsc_early_khz=3000000'),
    (dict(cmdline=['tsc_early_khz=1', 'kaslr']), 'tsc_early_khz=1 kaslr'),
])
def test_nokaslr_and_tsc_early_khz_can_be_turned_off_or_overridden(run, kw, tail):
    assert load_line(run(params(**dict(STARTED, **kw)))).endswith(tail)


def test_without_a_measured_tsc_the_line_has_none_and_says_why(parker, run):
    parker.host.kmsg('parker: reserve CMA 4096 MiB, up to 2048 MiB per node')
    result = run(params(**STARTED))
    assert 'tsc_early_khz' not in load_line(result)
    assert any('tsc_early_khz=auto' in w for w in result['warnings'])


def test_a_partition_on_the_node_that_got_the_whole_area(host, sim, monkeypatch):
    """parker_cma=1G on two nodes, node 0's reservation failed: node 1 holds the whole 1G."""
    kernel(host, monkeypatch, parker_cma='1G', failed=[0])
    result = run_module(monkeypatch, partition, params(cpus='4-5', devices=[]), host.root)
    assert not result.get('failed'), result['msg']
    assert result['changed'] and result['memmap'] == '256M@0x100000000'


def test_a_refusal_names_the_node_whose_reservation_failed(host, sim, monkeypatch):
    kernel(host, monkeypatch, parker_cma='2G', failed=[0])
    before = snapshot(host.root)
    result = run_module(monkeypatch, partition, params(cpus='2-3', devices=[]), host.root)
    assert result['failed'] and 'node 0 has no Parker CMA area: its reservation failed at boot' in result['msg']
    assert 'memmap=' in result['msg'] and 'movablecore=' in result['msg'], result['msg']
    assert 'a first CPU on node 1, which has an area' in result['msg']
    assert snapshot(host.root) == before


def test_memory_must_fit_the_area_with_what_other_partitions_hold(host, sim, monkeypatch):
    kernel(host, monkeypatch, parker_cma='2G')   # 1G on each node; every allocation takes a whole GiB
    assert run_module(monkeypatch, partition, params(cpus='4-5', devices=[]), host.root)['changed']
    held = run_module(monkeypatch, partition, params(name='p2', cpus='6-7', devices=[]), host.root)
    assert held['failed'] and "node 1's Parker CMA area is 1G, 1G of it held by p1" in held['msg'], held['msg']
    assert 'p2 (256M, first CPU 6) would take 1G more' in held['msg']


def test_where_the_kernel_says_nothing_the_check_warns_instead_of_refusing(host, sim, monkeypatch):
    kernel(host, monkeypatch, parker_cma='1:1G', logged=False)   # node 0 gets no area, if parker_cma= is right
    checked = run_module(monkeypatch, partition, params(cpus='2-3', devices=[]), host.root, check_mode=True)
    assert not checked.get('failed'), checked['msg']
    assert any('node 0 has no Parker CMA area' in w and 'only expected' in w for w in checked['warnings'])
    # ...and the kernel then answers ENOMEM, with the hint, and nothing is left behind.
    monkeypatch.setattr('time.sleep', lambda _s: None)
    result = run_module(monkeypatch, partition, params(cpus='2-3', devices=[], memory_retries=1), host.root)
    assert result['failed'] and result['errno_name'] == 'ENOMEM' and 'Hint: node 0 has no Parker CMA area' in result['msg']
    assert 'write /proc/sys/vm/compact_memory <- 1' in result['actions']
    assert not os.path.exists(host.path(ROOT + '/p1'))


def test_absent_waits_for_a_powered_off_kernel_to_clear_online(parker, run, monkeypatch):
    assert run(params(devices=[], **STARTED))['changed']
    assert 'no host-side stop' in run(params(state='absent'))['msg']
    reads = []

    def online_of(io, root, name):
        reads.append(name)
        if len(reads) == 3:   # clears on the third read, as an Application Kernel powering off does
            parker.poweroff(name)
        return len(reads) < 3
    monkeypatch.setattr(_parker, 'online_of', online_of)
    monkeypatch.setattr('time.sleep', lambda _s: None)
    result = run(params(state='absent', poweroff_timeout=30))
    assert not result.get('failed'), result['msg']
    assert result['changed'] and reads == ['p1'] * 3 and parker.view()['partitions'] == {}


def test_an_area_listed_without_its_size_is_not_refused(host, sim, monkeypatch):
    kernel(host, monkeypatch, parker_cma='4G', logged=False)
    host.write('/proc/cmdline', 'root=/dev/vda ro')
    host.cma_sysfs(1)   # the counters only (before 6.14), and no parker_cma= on the line to size it
    result = run_module(monkeypatch, partition, params(cpus='4-5', devices=[]), host.root, check_mode=True)
    assert not result.get('failed'), result['msg']
    assert any('without its size' in w for w in result['warnings'])
    refused = run_module(monkeypatch, partition, params(cpus='2-3', devices=[]), host.root, check_mode=True)
    assert refused['failed'] and 'node 0 has no Parker CMA area: the kernel reserved none there' in refused['msg']
