"""parker.kernel.partition against a fake Parker kernfs whose writes have the RFC's host effects."""
import errno
import os
import shutil

import pytest

from ansible_collections.parker.kernel.tests.unit.unit_helpers import snapshot
from ansible_collections.parker.kernel.plugins.module_utils import _hostio
from ansible_collections.parker.kernel.plugins.module_utils._partition import run_partition

ROOT = '/sys/fs/parker'


def params(**kw):
    base = dict(name='p1', state='present', cpus='2-3', memory='256M', devices=['block=vdb'], kernel=None,
                initrd=None, console=None, root=None, ip=None, cmdline=[], start_timeout=5, replace=False,
                memory_retries=1, min_housekeeping_cores=1, allow_smt_split=False, force=False, parker_root=ROOT)
    base.update(kw)
    return base


STARTED = dict(state='started', kernel='/boot/vmlinuz-6.1.0-fake-amd64')


def boot_log(host, cmdline_cma, reserved=(), failed=(), extra=()):
    """A Boot Kernel booted with parker_cma=<cmdline_cma>: its kernel log says which nodes got an area.

    ``reserved`` is [(node, MiB)], ``failed`` [node], both in the order the kernel tried them.
    """
    host.write('/proc/cmdline', 'root=/dev/vda ro parker_cma=%s' % cmdline_cma)
    lines = ['parker: reserve CMA %d MiB, up to %d MiB per node'
             % (sum(m for _n, m in reserved) or 1024, max([m for _n, m in reserved] or [1024]))]
    for node in failed:
        lines += ['cma: Failed to reserve 1024 MiB on node %d' % node,
                  'parker: node %d reservation failed, err -12' % node]
    for node, mib in reserved:
        lines += ['cma: Reserved %d MiB at 0x%016x on node %d' % (mib, (4 + 4 * node) << 30, node),
                  'parker: reserved %d MiB on node %d' % (mib, node)]
    host.kmsg(*(list(extra) + lines))


def fake_kexec(host, on_load=None):
    """kexec-tools on the fake host, as run()'s commands=: a load sets kexec_loaded, -u clears it."""
    host.write('/usr/sbin/kexec', '#!fake')

    def kexec(argv):
        if on_load is not None and '-u' not in argv:
            on_load(argv)
        host.write('/sys/kernel/kexec_loaded', '0' if '-u' in argv else '1')
        return 0, '', ''
    return {('/usr/sbin/kexec',): kexec}


def timed_out(writer_pid=None):
    """write_blocking giving up after start_timeout, its writer (pid writer_pid) left blocked."""
    def blocked(txn, rel, value, timeout, on_spawn=None):
        if writer_pid is not None:
            on_spawn(writer_pid)
        raise _hostio.ApplyError('write 1 to ' + rel, errno.ETIMEDOUT, 'still blocked')
    return blocked


@pytest.fixture
def kernfs(host, sim, monkeypatch):
    """mkdir, cpus, memory, bind, online and rmdir behave as §2.3 says, on the fake host (mounted)."""
    host.parker_kernel(ROOT)
    inner_write = _hostio.Transaction._write_now

    def mkdir(txn, rel):
        txn.actions.append('mkdir %s' % rel)
        if txn.check_mode:
            return
        os.makedirs(host.path(rel + '/devices'))
        for name, value in (('id', '1'), ('control_structure', '0x1417d9000'), ('cpus', ''), ('online', '0')):
            host.write(rel + '/' + name, value)
        txn._undo.append(('rmdir', rel))

    def write(txn, rel, value):
        if rel.startswith(ROOT + '/'):
            base, attr = rel.rsplit('/', 1)
            if attr == 'cpus':
                for cpu in value.split('-'):
                    host.write('/sys/devices/system/cpu/cpu%s/online' % cpu, '0')
                host.sync_cpu_online()
            elif attr == 'memory':
                host.write(rel, '%d@0x100000000' % (256 << 20))
                return
            elif attr == 'bind':
                os.makedirs(host.path(base + '/devices/' + value))
                return
        inner_write(txn, rel, value)

    def rmdir(txn, rel):
        cpus = host.read(rel + '/cpus')
        for cpu in range(int(cpus.split('-')[0]), int(cpus.split('-')[-1]) + 1) if cpus else []:
            host.write('/sys/devices/system/cpu/cpu%d/online' % cpu, '1')
        host.sync_cpu_online()
        shutil.rmtree(host.path(rel))
    monkeypatch.setattr(_hostio.Transaction, 'mkdir', mkdir)
    monkeypatch.setattr(_hostio.Transaction, '_write_now', write)
    monkeypatch.setattr(_hostio.Transaction, '_rmdir_now', rmdir)
    monkeypatch.setenv('SSH_CONNECTION', '10.0.2.2 50000 10.0.2.15 22')
    return host


def test_present_then_repeat_then_absent(kernfs, run):
    result = run(run_partition, params())
    assert result['changed'] and result['cpus'] == '2-3' and result['memmap'] == '256M@0x100000000'
    assert result['devices'] == ['0000:00:03.0']
    assert kernfs.read('/sys/devices/system/cpu/online') == '0-1,4-7'
    again = run(run_partition, params())
    assert again['changed'] is False and again['actions'] == []
    gone = run(run_partition, params(state='absent'))
    assert gone['changed'] and gone['returned']['cpus'] == '2-3'
    assert kernfs.read('/sys/devices/system/cpu/online') == '0-7'
    assert not os.path.exists(kernfs.path(ROOT + '/p1'))


def test_check_mode_writes_nothing(kernfs, run):
    before = snapshot(kernfs.root)
    result = run(run_partition, params(), check_mode=True)
    assert result['changed'] and 'would create' in result['diff']['after']
    assert snapshot(kernfs.root) == before


def test_live_partition_is_never_rewritten(kernfs, run):
    run(run_partition, params())
    result = run(run_partition, params(cpus='4-5'))
    assert result['failed'] and 'never rewritten' in result['msg'] and 'replace: true' in result['msg']
    assert kernfs.read(ROOT + '/p1/cpus') == '2-3'
    replaced = run(run_partition, params(cpus='4-5', replace=True))
    assert replaced['changed'] and kernfs.read(ROOT + '/p1/cpus') == '4-5'
    assert kernfs.read('/sys/devices/system/cpu/online') == '0-3,6-7'


@pytest.mark.parametrize('kw,fragment', [
    (dict(cpus='0-1'), 'boot CPU'),
    (dict(cpus='2-x'), 'malformed'),
    (dict(memory='lots'), 'malformed size'),
    (dict(devices=['net=eth0']), 'SSH connection'),
    (dict(name='../etc'), 'partition name'),
    (dict(state='started'), 'needs kernel'),
])
def test_refusals_write_nothing(kernfs, run, kw, fragment):
    before = snapshot(kernfs.root)
    result = run(run_partition, params(**kw))
    assert result['failed'] and fragment in result['msg'], result['msg']
    assert snapshot(kernfs.root) == before


def test_cpus_of_another_partition_and_unbound_devices_are_refused(kernfs, run):
    run(run_partition, params(name='p0', cpus='4-5', devices=[]))
    os.remove(kernfs.path('/sys/bus/pci/devices/0000:00:03.0/driver'))
    result = run(run_partition, params(cpus='4-7'))
    assert result['failed'] and 'another partition' in result['msg'] and 'no host driver' in result['msg']


def test_no_kernfs_is_refused(host, run):
    result = run(run_partition, params())
    assert result['failed'] and 'no Parker kernfs' in result['msg']


def test_started_loads_inside_the_partition_and_clears_the_slot(kernfs, run):
    result = run(run_partition, params(console='ttyS1', **STARTED), commands=fake_kexec(kernfs))
    load = [argv for argv in result['_ran'] if '-l' in argv][0]
    assert '--mem-min=0x100000000' in load and '--mem-max=0x10fffffff' in load
    assert '--command-line=parker=0x1417d9000 memmap=exactmap memmap=256M@0x100000000 console=ttyS1 nokaslr' in load
    assert result['_ran'][-1][-1] == '-u' and kernfs.read('/sys/kernel/kexec_loaded') == '0'
    assert result['online'] is True and result['started'] is True
    refused = run(run_partition, params(state='absent'))
    assert refused['failed'] and 'no host-side stop' in refused['msg']


def test_a_run_killed_part_way_converges(kernfs, run):
    # Killed after mkdir and cpus: memory and the device are still missing.
    os.makedirs(kernfs.path(ROOT + '/p1/devices'))
    for name, value in (('id', '1'), ('control_structure', '0x1417d9000'), ('cpus', '2-3'), ('online', '0')):
        kernfs.write(ROOT + '/p1/' + name, value)
    for cpu in (2, 3):
        kernfs.write('/sys/devices/system/cpu/cpu%d/online' % cpu, '0')
    kernfs.sync_cpu_online()
    result = run(run_partition, params())
    assert result['changed'] and result['memmap'] == '256M@0x100000000' and result['devices'] == ['0000:00:03.0']
    assert not any(a.endswith('/cpus <- 2-3') for a in result['actions'])
    assert run(run_partition, params())['changed'] is False


@pytest.mark.parametrize('kw,fragment', [
    (dict(console='ttyS0 x'), 'spaces'),
    (dict(kernel='/boot/nope'), 'does not exist'),
    (dict(cmdline=['memmap=1G@0x0']), 'set by the partition'),
])
def test_start_is_validated_before_the_partition_is_built(kernfs, run, kw, fragment):
    kernfs.write('/usr/sbin/kexec', '#!fake')
    before = snapshot(kernfs.root)
    result = run(run_partition, params(**dict(STARTED, **kw)))
    assert result['failed'] and fragment in result['msg'], result['msg']
    assert snapshot(kernfs.root) == before


def test_start_timeout_undoes_nothing(kernfs, run, monkeypatch):
    monkeypatch.setattr(_hostio.Transaction, 'write_blocking', timed_out())
    result = run(run_partition, params(**STARTED), commands=fake_kexec(kernfs))
    assert result['failed'] and result['errno_name'] == 'ETIMEDOUT' and 'Nothing was undone' in result['msg']
    assert os.path.isdir(kernfs.path(ROOT + '/p1')) and kernfs.read('/sys/kernel/kexec_loaded') == '1'


def test_selectors_still_match_after_bind_took_the_names(kernfs, run):
    """bind takes vdb away from the Boot Kernel; block=vdb must keep meaning 0000:00:03.0."""
    first = run(run_partition, params())
    assert first['devices'] == ['0000:00:03.0']
    disk = os.path.realpath(kernfs.path('/sys/block/vdb'))
    shutil.rmtree(disk)
    os.remove(kernfs.path('/sys/block/vdb'))
    again = run(run_partition, params())
    assert again['changed'] is False and again['devices'] == ['0000:00:03.0']
    assert run(run_partition, params(state='absent'))['changed']


def test_conflicts_between_partitions_of_one_host():
    from ansible_collections.parker.kernel.plugins.filter.partition import partition_conflicts
    assert partition_conflicts([{'name': 'p1', 'cpus': '2', 'devices': ['0000:00:07.0']},
                                {'name': 'p2', 'cpus': '3', 'devices': ['0000:00:08.0']}]) == []
    problems = partition_conflicts([{'name': 'p1', 'cpus': '2-3', 'devices': ['0000:00:07.0']},
                                    {'name': 'p2', 'cpus': '3', 'devices': ['0000:00:07.0']},
                                    {'name': 'p2', 'cpus': 'x', 'devices': []}])
    assert problems == ['partition p2 is listed 2 times', 'CPU 3 is asked for by both p1 and p2',
                        'device 0000:00:07.0 is asked for by both p1 and p2']


def test_a_start_killed_before_kexec_unload_clears_the_slot_on_the_next_run(kernfs, run):
    kexec = fake_kexec(kernfs)
    started = params(**STARTED)
    run(run_partition, started, commands=kexec)
    # As if the run died after online and before kexec -u: this partition's image is still loaded.
    kernfs.write('/sys/kernel/kexec_loaded', '1')
    kernfs.write('/run/parker-kernel/kexec-normal.json', '{"cmdline": "parker=0x1417d9000 memmap=exactmap"}')
    again = run(run_partition, started, commands=kexec)
    assert again['changed'] and again['_ran'][-1][-1] == '-u' and kernfs.read('/sys/kernel/kexec_loaded') == '0'
    assert run(run_partition, started, commands=kexec)['changed'] is False
    # Someone else's image in the slot is not ours to unload.
    kernfs.write('/sys/kernel/kexec_loaded', '1')
    kernfs.write('/run/parker-kernel/kexec-normal.json', '{"cmdline": "root=/dev/sda1"}')
    assert run(run_partition, started, commands=kexec)['changed'] is False
    assert kernfs.read('/sys/kernel/kexec_loaded') == '1'


def test_one_operation_at_a_time_per_host(kernfs, run, monkeypatch):
    import fcntl
    from ansible_collections.parker.kernel.plugins.module_utils import _partition
    monkeypatch.setattr(_partition, 'LOCK_WAIT', 0)
    held = os.open(kernfs.path(ROOT), os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        before = snapshot(kernfs.root)
        blocked = run(run_partition, params())
        assert blocked['failed'] and 'holds the lock' in blocked['msg'] and snapshot(kernfs.root) == before
        # Check mode shares the lock: it must not read a partition another run is building.
        assert 'holds the lock' in run(run_partition, params(), check_mode=True)['msg']
    finally:
        os.close(held)
    assert run(run_partition, params())['changed']


class Killed(BaseException):
    """SIGKILL: no rollback, no final state write."""


def test_a_run_killed_after_bind_still_finds_its_devices_by_name(kernfs, run, monkeypatch):
    from ansible_collections.parker.kernel.plugins.module_utils import _partition

    def killed(part, plan):
        raise Killed()
    monkeypatch.setattr(_partition, '_verify_present', killed)
    with pytest.raises(Killed):
        run(run_partition, params())
    monkeypatch.undo()
    disk = os.path.realpath(kernfs.path('/sys/block/vdb'))
    shutil.rmtree(disk)
    os.remove(kernfs.path('/sys/block/vdb'))
    again = run(run_partition, params())
    assert not again.get('failed'), again.get('msg')
    assert again['devices'] == ['0000:00:03.0'] and again['changed'] is False


def test_single_use_is_recorded_before_online_is_written(kernfs, run, monkeypatch):
    """A run that dies while online blocks must still leave the partition marked as used."""
    def killed(txn, rel, value, timeout, on_spawn=None):
        on_spawn(4242)  # the writer process exists, and will write online whatever happens to this run
        raise Killed()
    monkeypatch.setattr(_hostio.Transaction, 'write_blocking', killed)
    with pytest.raises(Killed):
        run(run_partition, params(**STARTED), commands=fake_kexec(kernfs))
    import json
    assert json.loads(kernfs.read('/run/parker-kernel/partitions.json'))['p1']['started'] is True


def test_a_run_killed_during_the_kexec_load_has_not_used_the_partition(kernfs, run, monkeypatch):
    """No online writer was started, so the next run starts the partition instead of calling it used."""
    loads = []

    def load(argv):
        loads.append(argv)
        if len(loads) == 1:
            raise Killed()
    kexec = fake_kexec(kernfs, on_load=load)
    started = params(**STARTED)
    with pytest.raises(Killed):
        run(run_partition, started, commands=kexec)
    kernfs.write(ROOT + '/p1/online', '0')

    def comes_online(txn, rel, value, timeout, on_spawn=None):
        on_spawn(4243)
        kernfs.write(rel, '1')
    monkeypatch.setattr(_hostio.Transaction, 'write_blocking', comes_online)
    again = run(run_partition, started, commands=kexec)
    assert again['changed'] and again['online'] and len(loads) == 2, again


def test_resume_after_a_bind_keeps_the_bound_device(kernfs, run, monkeypatch):
    """Killed between two binds: the held device has lost its host driver, which must not refuse the resume."""
    first = run(run_partition, params(devices=['block=vdb']))
    assert first['changed']
    kernfs.remove('/sys/bus/pci/devices/0000:00:03.0/driver') if hasattr(kernfs, 'remove') else \
        os.remove(kernfs.path('/sys/bus/pci/devices/0000:00:03.0/driver'))
    resumed = run(run_partition, params(devices=['block=vdb', '0000:00:04.0']))
    assert not resumed.get('failed'), resumed.get('msg')
    assert resumed['devices'] == ['0000:00:03.0', '0000:00:04.0']


# Host-wide limits over the whole run: the role's validation pass gives each partition the ones
# before it as `preceding`. The fake host has SMT pairs 0-1, 2-3, 4-5, 6-7; node 1 holds CPUs 4-7.

def test_partitions_that_pass_alone_but_not_together_are_refused_before_any_write(kernfs, run):
    p1 = params(name='p1', cpus='4-5', devices=[], min_housekeeping_cores=3)
    p2 = params(name='p2', cpus='6-7', devices=[], min_housekeeping_cores=3)
    before = snapshot(kernfs.root)
    assert not run(run_partition, p1, check_mode=True).get('failed')
    assert not run(run_partition, p2, check_mode=True).get('failed')
    together = run(run_partition, dict(p2, preceding=[{'name': 'p1', 'cpus': '4-5', 'memory': '256M'}]),
                   check_mode=True)
    assert together['failed'] and 'with CPUs 4-5 taken earlier in this run' in together['msg'], together['msg']
    assert 'fewer than min_housekeeping_cores=3' in together['msg']
    assert snapshot(kernfs.root) == before
    # What the validation pass prevents: the apply pass would have built p1 and then refused p2.
    assert run(run_partition, p1)['changed']
    assert run(run_partition, p2)['failed']


def test_a_cpu_taken_earlier_in_the_run_is_refused_as_taken(kernfs, run):
    result = run(run_partition, params(name='p2', cpus='4-5', devices=[],
                                       preceding=[{'name': 'p1', 'cpus': '5', 'memory': '128M'}]), check_mode=True)
    assert result['failed'] and 'CPUs 5 are asked for by p1, earlier in this run' in result['msg'], result['msg']
    assert 'offline in the Boot Kernel' not in result['msg'] and 'another partition' not in result['msg']


def test_an_earlier_partition_that_does_not_parse_is_left_to_its_own_refusal(kernfs, run):
    result = run(run_partition, params(name='p2', cpus='6-7', devices=[],
                                       preceding=[{'name': 'p1', 'cpus': '4-x', 'memory': 'lots'}]), check_mode=True)
    assert not result.get('failed'), result


def test_memory_must_fit_the_parker_cma_area_of_the_first_cpus_node(kernfs, run):
    boot_log(kernfs, '1:1G', reserved=[(1, 1024)])
    p1 = params(name='p1', cpus='4-5', devices=[])
    p2 = params(name='p2', cpus='6-7', devices=[])
    assert not run(run_partition, p1, check_mode=True).get('failed')
    assert not run(run_partition, p2, check_mode=True).get('failed')
    # 256M each, but every allocation takes a whole GiB of the 1G area.
    together = run(run_partition, dict(p2, preceding=[{'name': 'p1', 'cpus': '4-5', 'memory': '256M'}]),
                   check_mode=True)
    assert together['failed'], together
    assert "node 1's Parker CMA area" in together['msg'] and 'takes 1G of it (256M rounded up' in together['msg']
    assert 'the area is 1G and 1G of it is held by p1 (earlier in this run)' in together['msg'], together['msg']
    # Node 0 has no area at all.
    elsewhere = run(run_partition, params(name='p3', cpus='2-3', devices=[]), check_mode=True)
    assert elsewhere['failed'] and 'node 0 has no Parker CMA area: parker_cma=1:1G gives it none' in elsewhere['msg']
    assert 'a first CPU on node 1' in elsewhere['msg'] and '(areas on nodes: 1)' in elsewhere['msg'], elsewhere['msg']
    # A partition already held counts the same way, and holding it again is no new request.
    assert run(run_partition, p1)['changed']
    assert run(run_partition, p1)['changed'] is False
    held = run(run_partition, p2, check_mode=True)
    assert held['failed'] and '1G of it is held by p1' in held['msg'] and 'earlier' not in held['msg']


def test_an_area_with_room_for_both_accepts_both(kernfs, run):
    boot_log(kernfs, '2G', reserved=[(0, 1024), (1, 1024)])  # 1G on each of the two nodes
    assert run(run_partition, params(name='p1', cpus='2-3', devices=[]))['changed']
    assert run(run_partition, params(name='p2', cpus='4-5', devices=[]))['changed']
    third = run(run_partition, params(name='p3', cpus='6-7', devices=[]), check_mode=True)
    assert third['failed'] and '1G of it is held by p2' in third['msg'], third['msg']


def test_nothing_is_tried_while_a_timed_out_start_still_blocks_in_the_kernel(kernfs, run, monkeypatch):
    """Parker's mutex is held by the blocked online writer: a later rmdir or mkdir would hang behind it."""
    monkeypatch.setattr(_hostio.Transaction, 'write_blocking', timed_out(writer_pid=4242))
    started = run(run_partition, params(**STARTED), commands=fake_kexec(kernfs))
    # The partition, its memory and the loaded image stay: the host did change.
    assert started['failed'] and started['errno_name'] == 'ETIMEDOUT' and started['changed'] is True
    kernfs.write('/proc/4242/cmdline', 'python3\0-c\0...\0%s/sys/fs/parker/p1/online\x001\0' % kernfs.root)
    before = snapshot(kernfs.root)
    for request in (params(state='absent'), params(name='p2', cpus='6-7', devices=[])):
        refused = run(run_partition, request)
        assert refused['failed'] and 'start of p1 is still blocked' in refused['msg'] and 'pid 4242' in refused['msg']
    # Every other reader of the kernfs holds off too: facts say why, CPU changes are refused.
    from ansible_collections.parker.kernel.plugins.module_utils import _facts
    from ansible_collections.parker.kernel.plugins.module_utils._cpu import run_cpu_offline
    parker = _facts.parker_facts(_hostio.HostIO(kernfs.root), ROOT)
    assert parker['blocked_starts'] == [{'partition': 'p1', 'pid': 4242}] and parker['partitions'] == []
    cpu = run(run_cpu_offline, dict(cpus='6', state='offline', min_housekeeping_cores=1, allow_smt_split=True,
                                    force=False, parker_root=ROOT))
    assert cpu['failed'] and 'still blocked' in cpu['msg']
    assert snapshot(kernfs.root) == before
    # The writer returned (the Application Kernel came up late, here it powered off again): work goes on.
    shutil.rmtree(kernfs.path('/proc/4242'))
    assert run(run_partition, params(state='absent'))['changed']


def test_the_record_of_a_partition_removed_by_hand_is_dropped(kernfs, run):
    import json
    run(run_partition, params(name='p0', cpus='4-5', devices=[]))
    for cpu in (4, 5):
        kernfs.write('/sys/devices/system/cpu/cpu%d/online' % cpu, '1')
    kernfs.sync_cpu_online()
    shutil.rmtree(kernfs.path(ROOT + '/p0'))  # an operator's rmdir, outside the collection
    assert run(run_partition, params())['changed']
    records = json.loads(kernfs.read('/run/parker-kernel/partitions.json'))
    assert sorted(records) == ['p1'], records


def test_a_repeat_of_this_partition_in_preceding_is_not_counted_against_it(kernfs, run):
    kernfs.write('/proc/cmdline', 'root=/dev/vda ro parker_cma=1:1G')
    result = run(run_partition, params(name='p1', cpus='4-5', devices=[],
                                       preceding=[{'name': 'p1', 'cpus': '4-5', 'memory': '256M'}]), check_mode=True)
    assert not result.get('failed'), result['msg']


def test_an_earlier_partition_half_built_still_counts_its_memory(kernfs, run, monkeypatch):
    """p1 exists with its CPUs but no memory yet (a run killed after cpus): it takes its GiB during this run."""
    boot_log(kernfs, '1:1G', reserved=[(1, 1024)])
    inner = _hostio.Transaction._write_now

    def killed_at_memory(txn, rel, value):
        if rel.endswith('/memory'):
            raise KeyboardInterrupt('killed')
        inner(txn, rel, value)
    monkeypatch.setattr(_hostio.Transaction, '_write_now', killed_at_memory)
    with pytest.raises(KeyboardInterrupt):
        run(run_partition, params(name='p1', cpus='4-5', devices=[]))
    monkeypatch.setattr(_hostio.Transaction, '_write_now', inner)
    assert kernfs.read(ROOT + '/p1/cpus') == '4-5' and not os.path.exists(kernfs.path(ROOT + '/p1/memory'))
    result = run(run_partition, params(name='p2', cpus='6-7', devices=[],
                                       preceding=[{'name': 'p1', 'cpus': '4-5', 'memory': '256M'}]), check_mode=True)
    assert result['failed'] and 'held by p1 (earlier in this run)' in result['msg'], result['msg']


def test_a_partition_replaced_earlier_in_the_run_hands_its_old_cpus_back(kernfs, run):
    run(run_partition, params(name='p1', cpus='6-7', devices=[]))
    # p1 moves to 4-5 (replace) and p2 takes 6-7, which p1 holds now but will not hold then.
    result = run(run_partition, params(name='p2', cpus='6-7', devices=[], min_housekeeping_cores=2,
                                       preceding=[{'name': 'p1', 'cpus': '4-5', 'memory': '256M'}]), check_mode=True)
    assert not result.get('failed'), result['msg']


def test_a_disk_with_a_mounted_filesystem_is_refused_before_mkdir(host, kernfs, run):
    # The data-loss case of issue 10: bind would pull the disk from under /mnt/x.
    host.mount(host.partition('vdb', 1), '/mnt/x')
    before = snapshot(host.root)
    result = run(run_partition, params())
    assert result['failed'] and result['writes'] == 0
    assert '0000:00:03.0 (vdb): /dev/vdb1 is mounted at /mnt/x' in result['msg']
    assert snapshot(host.root) == before
    assert run(run_partition, params(force=True))['changed']


# -- issue 15: what a real Parker Boot Kernel does ---------------------------------------------

def unmount(host):
    host.write('/proc/mounts', 'sysfs /sys sysfs rw 0 0\n')


def fake_mount(host):
    def mount(argv):
        host.mount_parker(argv[-1])
        return 0, '', ''
    return {('mount',): mount}


MOUNT = 'mount -t parker none /sys/fs/parker'


def test_check_mode_on_an_unmounted_kernfs_says_it_would_mount_and_writes_nothing(kernfs, run):
    unmount(kernfs)
    before = snapshot(kernfs.root)
    result = run(run_partition, params(), check_mode=True, commands=fake_mount(kernfs))
    assert not result.get('failed'), result['msg']
    assert result['actions'][0] == MOUNT and result['mounted_kernfs'] is True and result['_ran'] == []
    assert any(w.startswith('would mount /sys/fs/parker') and 'empty kernfs' in w for w in result['warnings'])
    assert 'would create' in result['diff']['after']
    assert snapshot(kernfs.root) == before


def test_an_unmounted_kernfs_is_mounted_as_a_reported_step(kernfs, run):
    unmount(kernfs)
    result = run(run_partition, params(), commands=fake_mount(kernfs))
    assert not result.get('failed'), result['msg']
    assert result['_ran'][0] == ['mount', '-t', 'parker', 'none', ROOT] and result['actions'][0] == MOUNT
    assert result['changed'] and result['mounted_kernfs'] is True and result['cpus'] == '2-3'
    again = run(run_partition, params(), commands=fake_mount(kernfs))
    assert again['changed'] is False and again['mounted_kernfs'] is False and again['_ran'] == []


def test_mounting_can_be_refused_instead(kernfs, run):
    unmount(kernfs)
    before = snapshot(kernfs.root)
    result = run(run_partition, params(mount_kernfs=False), commands=fake_mount(kernfs))
    assert result['failed'] and 'nothing is mounted at /sys/fs/parker' in result['msg']
    assert 'mount_kernfs is false' in result['msg'] and result['_ran'] == []
    assert snapshot(kernfs.root) == before
    os.remove(kernfs.path('/proc/filesystems'))
    result = run(run_partition, params(), commands=fake_mount(kernfs))
    assert result['failed'] and 'no parker filesystem' in result['msg'] and result['_ran'] == []


def test_a_failed_mkdir_leaves_no_stale_record(kernfs, run, monkeypatch):
    import json
    assert run(run_partition, params(name='p0', cpus='4-5', devices=[]))['changed']

    def mkdir(txn, rel):
        txn.actions.append('mkdir %s' % rel)
        raise _hostio.ApplyError('mkdir %s' % rel, errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(_hostio.Transaction, 'mkdir', mkdir)
    result = run(run_partition, params())
    assert result['failed'] and result['errno_name'] == 'ENOSPC' and 'rolled back' in result['msg']
    assert sorted(json.loads(kernfs.read('/run/parker-kernel/partitions.json'))) == ['p0']


def test_enoent_hints_fit_the_path(kernfs):
    from ansible_collections.parker.kernel.plugins.module_utils import _parker
    io = _hostio.HostIO(kernfs.root)
    assert 'partition went away' in _parker.missing_hint(io, ROOT, 'write 2-3 to /sys/fs/parker/p1/cpus')
    unmount(kernfs)
    assert _parker.missing_hint(io, ROOT, 'mkdir /sys/fs/parker/p1').startswith('nothing is mounted at /sys/fs/parker')
    assert _parker.missing_hint(io, ROOT, 'write 1 to /sys/kernel/kexec_loaded') is None


def test_a_claimed_device_keeps_its_host_drivers_link_and_is_still_claimed(kernfs, run):
    """After bind a real kernel leaves driver -> virtio-pci; devices/ is what says the device is claimed."""
    from ansible_collections.parker.kernel.plugins.module_utils import _facts
    first = run(run_partition, params())
    assert first['devices'] == ['0000:00:03.0']
    assert os.path.basename(os.readlink(kernfs.path('/sys/bus/pci/devices/0000:00:03.0/driver'))) == 'virtio-pci'
    facts = _facts.gather(_hostio.HostIO(kernfs.root, environ={}), ('pci', 'parker'), ROOT)
    dev = [d for d in facts['pci']['devices'] if d['address'] == '0000:00:03.0'][0]
    assert dev['claimed_by'] == 'p1' and dev['driver'] == 'virtio-pci'
    other = run(run_partition, params(name='p2', cpus='6-7', devices=['0000:00:03.0']), check_mode=True)
    assert other['failed'] and '0000:00:03.0 is already claimed by another partition' in other['msg']
    assert run(run_partition, params())['changed'] is False
    gone = run(run_partition, params(state='absent'))
    assert gone['returned']['devices'] == ['0000:00:03.0']
    actions = first['actions'] + gone['actions']
    assert not [a for a in actions if 'driver/unbind' in a or 'driver_override' in a or 'drivers_probe' in a]


def test_a_device_back_under_another_name_is_found_by_its_recorded_name(kernfs, run):
    """After rmdir a NIC came back as eth2 and udev renamed it fab1; net=eth1 keeps meaning its address."""
    first = run(run_partition, params(devices=['net=eth1']))
    assert first['devices'] == ['0000:00:06.0'] and first['selectors'] == {'net=eth1': '0000:00:06.0'}
    assert run(run_partition, params(state='absent'))['changed']
    nic = os.path.realpath(kernfs.path('/sys/class/net/eth1'))
    os.remove(kernfs.path('/sys/class/net/eth1'))
    renamed = os.path.join(os.path.dirname(nic), 'fab1')
    os.rename(nic, renamed)
    kernfs.symlink(renamed[len(kernfs.root):], '/sys/class/net/fab1')
    # Another device has taken the old name meanwhile: the selector still follows the address.
    os.makedirs(kernfs.path('/sys/devices/pci0000:00/0000:00:04.0/virtio9/net/eth1'))
    kernfs.symlink('/sys/devices/pci0000:00/0000:00:04.0/virtio9/net/eth1', '/sys/class/net/eth1')
    again = run(run_partition, params(devices=['net=eth1']))
    assert not again.get('failed'), again['msg']
    assert again['devices'] == ['0000:00:06.0'] and again['selectors'] == {'net=eth1': '0000:00:06.0'}


def test_check_mode_start_of_a_missing_partition_is_not_online(kernfs, run):
    kernfs.write('/usr/sbin/kexec', '#!fake')
    result = run(run_partition, params(**STARTED), check_mode=True)
    assert not result.get('failed'), result['msg']
    assert result['online'] is False and result['started'] is True and result['instance_cpus'] is None
    assert 'control page' in result['instance_cpus_note'] and 'health check' in result['instance_cpus_note']


def load_line(result):
    return [a for a in result['_ran'] if '-l' in a][0][3]


def test_nokaslr_and_the_measured_tsc_go_on_the_application_kernels_line(kernfs, run):
    kernfs.kmsg('tsc: Detected 2994.372 MHz processor', 'tsc: Refined TSC clocksource calibration: 2994.001 MHz')
    result = run(run_partition, params(**STARTED), commands=fake_kexec(kernfs))
    assert load_line(result).endswith('memmap=256M@0x100000000 nokaslr tsc_early_khz=2994001'), load_line(result)
    assert result['started'] and result['instance_cpus'] is None


@pytest.mark.parametrize('kw,tail', [
    (dict(nokaslr=False, tsc_early_khz='off'), 'memmap=256M@0x100000000'),
    (dict(tsc_early_khz='3000000'), 'nokaslr tsc_early_khz=3000000'),
    (dict(cmdline=['tsc_early_khz=1', 'kaslr']), 'tsc_early_khz=1 kaslr'),
])
def test_nokaslr_and_tsc_early_khz_can_be_turned_off_or_overridden(kernfs, run, kw, tail):
    kernfs.kmsg('tsc: Detected 2994.372 MHz processor')
    result = run(run_partition, params(**dict(STARTED, **kw)), commands=fake_kexec(kernfs))
    assert load_line(result).endswith(tail), load_line(result)


def test_without_a_measured_tsc_the_line_has_none_and_says_why(kernfs, run):
    result = run(run_partition, params(**STARTED), commands=fake_kexec(kernfs))
    assert 'tsc_early_khz' not in load_line(result)
    assert any('tsc_early_khz=auto' in w for w in result['warnings'])


def test_a_partition_on_the_node_that_got_the_whole_area(kernfs, run):
    """parker_cma=1G on two nodes, node 0's reservation failed: node 1 holds the whole 1G."""
    boot_log(kernfs, '1G', reserved=[(1, 1024)], failed=[0])
    result = run(run_partition, params(cpus='4-5', devices=[]))
    assert not result.get('failed'), result['msg'] and result['changed']


def test_a_refusal_names_the_node_whose_reservation_failed(kernfs, run):
    boot_log(kernfs, '2G', reserved=[(1, 1024)], failed=[0])
    before = snapshot(kernfs.root)
    result = run(run_partition, params(cpus='2-3', devices=[]))
    assert result['failed'] and 'node 0 has no Parker CMA area: its reservation failed at boot' in result['msg']
    assert 'memmap=' in result['msg'] and 'movablecore=' in result['msg'], result['msg']
    assert 'a first CPU on node 1, which has an area' in result['msg']
    assert snapshot(kernfs.root) == before


def test_where_the_kernel_says_nothing_the_check_warns_instead_of_refusing(kernfs, run):
    kernfs.write('/proc/cmdline', 'root=/dev/vda ro parker_cma=1:1G')  # node 0 gets no area, if parker_cma= is right
    result = run(run_partition, params(cpus='2-3', devices=[]))
    assert not result.get('failed'), result['msg']
    assert any('node 0 has no Parker CMA area' in w and 'only expected' in w for w in result['warnings'])


def test_an_enomem_where_the_node_has_no_area_says_so(kernfs, run, monkeypatch):
    kernfs.write('/proc/cmdline', 'root=/dev/vda ro parker_cma=1:1G')
    inner = _hostio.Transaction._write_now

    def no_area(txn, rel, value):
        if rel.endswith('/memory'):
            raise _hostio.ApplyError('write %s to %s' % (value, rel), errno.ENOMEM, os.strerror(errno.ENOMEM))
        inner(txn, rel, value)
    monkeypatch.setattr(_hostio.Transaction, '_write_now', no_area)
    monkeypatch.setattr('time.sleep', lambda _s: None)
    result = run(run_partition, params(cpus='2-3', devices=[], memory_retries=0))
    assert result['failed'] and result['errno_name'] == 'ENOMEM'
    assert 'Hint: node 0 has no Parker CMA area' in result['msg'] and 'memory pressure' not in result['msg']
    assert not os.path.exists(kernfs.path(ROOT + '/p1'))


def test_absent_waits_for_a_powered_off_kernel_to_clear_online(kernfs, run, monkeypatch):
    from ansible_collections.parker.kernel.plugins.module_utils import _parker
    assert run(run_partition, params(devices=[]))['changed']
    kernfs.write(ROOT + '/p1/online', '1')
    assert 'no host-side stop' in run(run_partition, params(state='absent'))['msg']
    reads = []

    def online_of(io, root, name):
        reads.append(name)
        return len(reads) < 3  # clears on the third read, as an Application Kernel powering off does
    monkeypatch.setattr(_parker, 'online_of', online_of)
    monkeypatch.setattr('time.sleep', lambda _s: None)
    result = run(run_partition, params(state='absent', poweroff_timeout=30))
    assert not result.get('failed'), result['msg']
    assert result['changed'] and reads == ['p1'] * 3 and not os.path.exists(kernfs.path(ROOT + '/p1'))


def test_an_area_listed_without_its_size_is_not_refused(kernfs, run):
    kernfs.cma_sysfs(1)  # the counters only (before 6.14), and no parker_cma= on the line to size it
    result = run(run_partition, params(cpus='4-5', devices=[]), check_mode=True)
    assert not result.get('failed'), result['msg']
    assert any('without its size' in w for w in result['warnings'])
    refused = run(run_partition, params(cpus='2-3', devices=[]), check_mode=True)
    assert refused['failed'] and 'node 0 has no Parker CMA area: the kernel reserved none there' in refused['msg']
