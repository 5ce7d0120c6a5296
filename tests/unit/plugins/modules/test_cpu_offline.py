import pytest

from ansible_collections.parker.kernel.tests.unit.unit_helpers import snapshot
from ansible_collections.parker.kernel.plugins.module_utils._cpu import run_cpu_offline


def params(**kw):
    base = dict(cpus=None, state='offline', min_housekeeping_cores=1, allow_smt_split=False,
                force=False, parker_root='/sys/fs/parker')
    base.update(kw)
    return base


def online_files(host):
    return dict((c, host.read('/sys/devices/system/cpu/cpu%d/online' % c)) for c in range(1, host.ncpu))


def test_offline_whole_cores_then_repeat_is_unchanged(host, run):
    result = run(run_cpu_offline, params(cpus='4-7'))
    assert result['changed'] is True
    assert result['changed_cpus'] == '4-7'
    assert result['after'] == {'online': '0-3', 'offline': '4-7'}
    assert [online_files(host)[c] for c in range(4, 8)] == ['0'] * 4
    host.sync_cpu_online()
    again = run(run_cpu_offline, params(cpus='4-7'))
    assert again['changed'] is False and again['actions'] == []


def test_online_restores(host, run):
    run(run_cpu_offline, params(cpus=[2, 3]))
    host.sync_cpu_online()
    result = run(run_cpu_offline, params(cpus='2-3', state='online'))
    assert result['changed_cpus'] == '2-3'
    assert online_files(host)[2] == '1'


def test_check_mode_writes_nothing(host, run):
    before = snapshot(host.root)
    result = run(run_cpu_offline, params(cpus='2-7'), check_mode=True)
    assert result['changed'] is True
    assert result['after']['online'] == '0-1'
    assert snapshot(host.root) == before


def test_diff_lists_before_and_after(host, run):
    result = run(run_cpu_offline, params(cpus='6-7'))
    assert 'online=0-7' in result['diff']['before'] and 'online=0-5' in result['diff']['after']


@pytest.mark.parametrize('cpus,fragment', [
    ('2-x', 'malformed'),
    ('6-9', 'not present'),
    ('0', 'boot CPU'),
    ('0-7', 'boot CPU'),
    ('1-7', 'housekeeping'),
    ('3', 'split the SMT core'),
    ('', 'empty'),
])
def test_refusals_write_nothing(host, run, cpus, fragment):
    before = snapshot(host.root)
    result = run(run_cpu_offline, params(cpus=cpus))
    assert result['failed'] and fragment in result['msg']
    assert result['writes'] == 0
    assert snapshot(host.root) == before


def test_smt_split_allowed_when_asked(host, run):
    result = run(run_cpu_offline, params(cpus='3', allow_smt_split=True))
    assert result['changed_cpus'] == '3'


def test_force_skips_housekeeping_but_not_boot_cpu(host, run):
    assert run(run_cpu_offline, params(cpus='1-7', force=True))['changed_cpus'] == '1-7'
    assert run(run_cpu_offline, params(cpus='0', force=True))['failed']


def test_failure_part_way_rolls_back(host, run, fail_write):
    import errno
    fail_write('cpu5/online', '0', errno.EIO)
    result = run(run_cpu_offline, params(cpus='4-5'))
    assert result['failed'] and result['errno_name'] == 'EIO'
    assert 'rolled back every earlier change' in result['msg']
    assert host.read('/sys/devices/system/cpu/cpu4/online') == '1'


def test_refuses_onlining_parker_claimed_cpus(host, run):
    host.write('/sys/devices/system/cpu/cpu6/online', '0')
    host.write('/sys/devices/system/cpu/cpu7/online', '0')
    host.sync_cpu_online()
    host.parker_kernel().write('/sys/fs/parker/p1/cpus', '6-7')
    result = run(run_cpu_offline, params(cpus='6-7', state='online'))
    assert result['failed'] and 'Parker partition' in result['msg']


def test_topology_cached_for_offline_cpus(host, run):
    import shutil
    from ansible_collections.parker.kernel.plugins.module_utils._hostio import HostIO
    from ansible_collections.parker.kernel.plugins.module_utils._facts import cpu_facts
    run(run_cpu_offline, params(cpus='6-7'))
    for cpu in (6, 7):   # the kernel removes topology/ of an offline CPU
        shutil.rmtree(host.path('/sys/devices/system/cpu/cpu%d/topology' % cpu))
    host.sync_cpu_online()
    facts = cpu_facts(HostIO(host.root))
    cpu7 = facts['list'][7]
    assert cpu7['online'] is False and cpu7['core'] == 1 and cpu7['topology_source'] == 'cached'
