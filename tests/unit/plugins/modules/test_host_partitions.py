"""parker.kernel.host_partitions through its main(), against the Parker emulation's model as the kernel."""

import pytest

from ansible_collections.parker.kernel.tests.unit.parker_kernel import ParkerHost, ROOT, run_module
from ansible_collections.parker.kernel.tests.unit.unit_helpers import snapshot
from ansible_collections.parker.kernel.plugins.modules import host_partitions

KERNEL = '/boot/vmlinuz-6.1.0-fake-amd64'
P1 = {'name': 'p1', 'cpus': '2-3', 'memory': '1G', 'devices': ['block=vdb'],
      'network': {'address': '10.77.0.11/24', 'gateway': '10.77.0.1', 'hostname': 'p1'}}
P2 = {'name': 'p2', 'cpus': '4-5', 'memory': '1G', 'devices': ['net=eth1'],
      'network': {'address': '10.77.0.12/24', 'gateway': '10.77.0.1', 'hostname': 'p2'}}


@pytest.fixture
def parker(host, sim, monkeypatch):
    monkeypatch.setenv('SSH_CONNECTION', '10.0.2.2 50000 10.0.2.15 22')
    host.write('/usr/bin/ping', '#!fake')
    return ParkerHost(host, monkeypatch)


@pytest.fixture
def call(parker, monkeypatch):
    def run(partitions=(P1, P2), check=False, diff=False, ping=(0, '', ''), **args):
        args = dict(dict(partitions=[dict(p) for p in partitions], kernel=KERNEL, health_timeout=2,
                         parker_root=ROOT), **args)
        commands = parker.commands({('/usr/bin/ping',): ping})
        return run_module(monkeypatch, host_partitions, args, parker.host.root, check_mode=check, diff=diff,
                          commands=commands)
    run.monkeypatch = monkeypatch
    return run


def test_one_call_builds_starts_and_probes_every_partition(parker, call):
    result = call()
    assert not result.get('failed'), result
    assert result['changed'] and [p['action'] for p in result['partitions']] == ['create', 'create']
    assert all(p['online'] and p['healthy'] for p in result['partitions']), result['partitions']
    view = parker.view()
    assert view['online'] == '0-1,6-7' and 'vdb' not in view['block'] and 'eth1' not in view['net']
    assert view['kexec_loaded'] == '0' and all(p['online'] for p in view['partitions'].values())
    # Each kernel was loaded inside its own partition's memory, with its own control page and address.
    for argv, name in zip(parker.kexec_loads, ('p1', 'p2')):
        info = parker.model.info(name)
        base, size = info['memory']
        assert '--mem-min=0x%x' % base in argv and '--mem-max=0x%x' % (base + size - 1) in argv
        line = [a for a in argv if a.startswith('--command-line=')][0]
        assert 'parker=0x%x' % info['control'] in line and 'ip=10.77.0.1' in line
    assert result['status'] == 'in plan' and result['repaired']


def test_a_second_run_changes_nothing_and_writes_nothing(parker, call):
    call()
    before = snapshot(parker.host.root)
    again = call()
    assert again['changed'] is False and again['actions'] == [], again
    assert again['status'] == 'in plan' and again['drift'] == []
    assert snapshot(parker.host.root) == before


def test_check_mode_returns_the_plan_and_writes_nothing(parker, call):
    before = snapshot(parker.host.root)
    result = call(check=True, diff=True)
    assert not result.get('failed'), result
    assert snapshot(parker.host.root) == before
    assert 'mkdir %s/p1' % ROOT in result['actions'] and 'write %s/p2/bind <- 0000:00:06.0' % ROOT in result['actions']
    assert result['status'] == 'drifted' and [d['kind'] for d in result['drift']] == ['missing', 'missing']
    assert 'p1: cpus=2-3 memory=1G@0x0 devices=0000:00:03.0(virtio-pci) online=unknown' in result['diff']['after']
    assert 'boot kernel: cpus online 0-1,6-7' in result['diff']['after']


def test_partitions_that_fit_alone_but_not_together_are_refused_before_any_write(parker, call):
    """With two housekeeping cores asked for, each alone leaves enough; together they leave one."""
    assert not call(partitions=[dict(P1, cpus='2-3', devices=[])], min_housekeeping_cores=2, check=True).get('failed')
    assert not call(partitions=[dict(P2, cpus='4-7', devices=[])], min_housekeeping_cores=2, check=True).get('failed')
    before = snapshot(parker.host.root)
    result = call(partitions=[dict(P1, cpus='2-3', devices=[]), dict(P2, cpus='4-7', devices=[])],
                  min_housekeeping_cores=2)
    assert result['failed'] and result['writes'] == 0
    assert ('the partitions together would leave 1 whole online core(s) for housekeeping, fewer than '
            'min_housekeeping_cores=2 (Boot Kernel CPUs after: 0-1; p1 takes 2-3; p2 takes 4-7)') in result['msg']
    assert snapshot(parker.host.root) == before


def test_an_smt_core_split_between_two_partitions_is_refused_unless_allowed(parker, call):
    split = [dict(P1, cpus='2', devices=[]), dict(P2, cpus='3', devices=[])]
    result = call(partitions=split)
    assert result['failed'] and 'the SMT core 2-3 would be split between p1 and p2' in result['msg']
    assert not call(partitions=split, allow_smt_split=True, health_check=False).get('failed')


def test_cpus_and_devices_asked_twice_are_refused(parker, call):
    result = call(partitions=[P1, dict(P2, cpus='3-4', devices=['0000:00:03.0'])])
    assert 'CPU 3 is asked for by both p1 and p2' in result['msg']
    assert 'device 0000:00:03.0 is asked for by both p1 and p2' in result['msg']


def test_memory_must_fit_each_nodes_area_counted_for_the_whole_run(parker, call):
    """parker_cma=4G on two nodes: 2G per node; every allocation takes whole GiB."""
    three = [dict(P1, devices=[]), dict(P2, name='p2', cpus='0-1', devices=[])]
    result = call(partitions=[dict(P1, cpus='2', memory='1G', devices=[]), dict(P2, cpus='3', memory='1G',
                                                                                devices=[]),
                              dict(P2, name='p3', cpus='1', memory='128M', devices=[])], allow_smt_split=True,
                  min_housekeeping_cores=0)
    assert result['failed'] and result['writes'] == 0
    assert ("memory: node 0's Parker CMA area is 2G, 0 of it held by nothing; p1 (1G, first CPU 2), p2 (1G, first "
            "CPU 3), p3 (128M, first CPU 1) would take 3G more") in result['msg']
    assert three


def test_a_failure_undoes_that_partition_only_and_names_the_ones_kept(parker, call, fail_write):
    fail_write('%s/p2/bind' % ROOT, None, 19)   # ENODEV
    result = call()
    assert result['failed'] and result['changed'] is True
    assert 'kept, as built before it: p1 (started)' in result['msg']
    view = parker.view()
    assert list(view['partitions']) == ['p1'] and view['partitions']['p1']['online']
    assert view['online'] == '0-1,4-7' and 'eth1' in view['net']
    assert list(parker.records()) == ['p1']


def test_a_silent_application_kernel_fails_the_run_after_its_start(parker, call):
    result = call(partitions=[P1], ping=(1, '', ''))
    assert result['failed'] and result['changed'] is True
    assert 'does not answer' in result['msg'] and 'p1 at 10.77.0.11 no ICMP echo reply' in result['msg']
    assert parker.view()['partitions']['p1']['online']


# -- drift ------------------------------------------------------------------------------

def kinds(result):
    return [(d['kind'], d['partition'], d['repair']) for d in result['drift']]


def test_a_cpu_back_online_is_drift_and_the_apply_offlines_it_again(parker, call):
    call()
    parker.host.write('/sys/devices/system/cpu/cpu3/online', '1')
    parker.host.sync_cpu_online()
    verdict = call(check=True)
    assert verdict['status'] == 'drifted' and kinds(verdict) == [('cpu_online', 'p1', 'repair')]
    assert 'write /sys/devices/system/cpu/cpu3/online <- 0' in verdict['actions']
    assert parker.view()['online'] == '0-1,3,6-7'
    repaired = call()
    assert repaired['changed'] and repaired['repaired'] == [verdict['drift'][0]['message']]
    assert parker.view()['online'] == '0-1,6-7'
    assert call(check=True)['status'] == 'in plan'


def test_a_device_a_host_driver_took_back_is_refused_naming_it(parker, call):
    call()
    parker.backend.pci_reprobe('0000:00:03.0')   # behind Parker's back: vdb is in the Boot Kernel again
    verdict = call(check=True)
    assert verdict['failed'] and verdict['status'] == 'drifted'
    assert kinds(verdict) == [('device_returned', 'p1', 'refuse')]
    result = call()
    assert result['failed'] and result['writes'] == 0
    assert '0000:00:03.0 (vdb) of p1 is back in the Boot Kernel' in result['msg']


def test_an_application_kernel_that_stopped_or_does_not_answer_is_refused(parker, call):
    call()
    silent = call(check=True, ping=(1, '', ''))
    assert kinds(silent) == [('not_answering', 'p1', 'refuse'), ('not_answering', 'p2', 'refuse')]
    parker.poweroff('p2')
    stopped = call()
    assert stopped['failed'] and kinds(stopped) == [('stopped', 'p2', 'refuse')]
    assert 'single-use' in stopped['msg']
    # replace rebuilds it: rmdir, a new partition, a new start.
    rebuilt = call(replace=True)
    assert not rebuilt.get('failed'), rebuilt
    assert [p['action'] for p in rebuilt['partitions']] == ['keep', 'replace']
    assert parker.view()['partitions']['p2']['online']


def test_a_partition_missing_is_built_and_one_not_in_the_plan_is_refused(parker, call):
    call(partitions=[P1])
    extra = call(partitions=[P2])
    assert extra['failed'] and ('extra', 'p1', 'refuse') in kinds(extra) and ('missing', 'p2', 'repair') in kinds(extra)
    assert 'partition p1 (cpus 2-3, running) is not in the plan' in extra['msg']
    assert not call(partitions=[P2], exclusive=False).get('failed')


def test_a_boot_line_token_missing_from_proc_cmdline_is_drift(parker, call):
    result = call(check=True, boot_tokens=['parker_cma=4G', 'isolcpus=2-5'])
    assert kinds(result)[-1] == ('cmdline', None, 'refuse') and 'lacks isolcpus=2-5' in result['msg']


def test_changed_hardware_is_refused_until_accepted(parker, call):
    call()
    parker.host.add_pci_devices([('0000:00:09.0', '1af4', '1000', '0x020000', 'virtio-pci', 'net:eth9')])
    verdict = call(check=True)
    assert verdict['status'] == 'hardware changed'
    assert verdict['hardware']['changes'] == ['PCI device 0000:00:09.0 1af4:1000 0x020000 is new']
    assert 'Re-plan for this host' in call()['msg']
    assert not call(accept_hardware=True).get('failed')
    assert call(check=True)['status'] == 'in plan'


def test_the_metrics_say_the_same_as_the_status(parker, call):
    call()
    parker.poweroff('p2')
    metrics = call(check=True)['metrics']
    assert 'parker_kernel_in_plan 0' in metrics and 'parker_kernel_drift{kind="stopped"} 1' in metrics
    assert 'parker_kernel_partition_online{' not in metrics   # a refusal lists no partitions


# -- absent -------------------------------------------------------------------------------

def test_absent_removes_what_powered_off_and_refuses_what_runs(parker, call):
    call()
    before = parker.view()
    running = call(state='absent')
    assert running['failed'] and running['writes'] == 0 and 'runs an Application Kernel' in running['msg']
    parker.poweroff('p1')
    parker.poweroff('p2')
    gone = call(state='absent')
    assert gone['changed'] and [p['action'] for p in gone['partitions']] == ['remove', 'remove']
    assert gone['partitions'][0]['returned']['cpus'] == '2-3'
    view = parker.view()
    assert view['online'] == '0-7' and view['partitions'] == {} and 'vdb' in view['block'] and 'eth1' in view['net']
    assert parker.records() == {} and before['partitions']
    assert call(state='absent')['changed'] is False


# -- found in review --------------------------------------------------------------------------

def test_replaced_partitions_go_before_any_build(parker, call):
    """old holds 2-3 and moves to 4-5 while new takes 2-3: the plan counts 2-3 as free, so old's rmdir runs first."""
    call(partitions=[dict(P1, name='old', devices=[])], health_check=False)
    parker.poweroff('old')
    result = call(partitions=[dict(P1, name='new', devices=[]), dict(P2, name='old', devices=[], cpus='4-5')],
                  replace=True, health_check=False)
    assert not result.get('failed'), result['msg']
    assert [p['action'] for p in result['partitions']] == ['create', 'replace']
    assert result['actions'].index('rmdir %s/old' % ROOT) < result['actions'].index('mkdir %s/new' % ROOT)
    assert parker.model.info('new')['cpus'] == [2, 3] and parker.model.info('old')['cpus'] == [4, 5]


def test_a_failure_after_the_start_keeps_the_running_partition_and_its_single_use(parker, call):
    def kexec(argv):
        if '-u' in argv:
            return 1, '', 'kexec: unload failed'
        parker.host.write('/sys/kernel/kexec_loaded', '1')
        return 0, '', ''
    result = run_module_with(parker, call, {('/usr/sbin/kexec',): kexec}, partitions=[P1], health_check=False)
    assert result['failed'] and result['changed'] is True and 'unload failed' in result['msg']
    assert parker.model.info('p1')['online'] and parker.records()['p1']['started'] is True


def run_module_with(parker, call, commands, **args):
    from ansible_collections.parker.kernel.tests.unit.parker_kernel import run_module
    merged = dict(dict(partitions=[], kernel=KERNEL, health_timeout=2, parker_root=ROOT), **args)
    answers = parker.commands(commands)
    return run_module(call.monkeypatch, host_partitions, merged, parker.host.root, commands=answers)


def test_a_refusal_that_is_not_drift_is_not_in_plan(parker, call):
    call()
    result = call(check=True, min_housekeeping_cores=4)   # nothing drifted; the host cannot have this plan
    assert result['failed'] and result['drift'] == [] and result['status'] == 'refused'
    assert 'parker_kernel_in_plan 0' in result['metrics']


def test_half_built_never_started_and_a_loaded_slot_are_drift_the_apply_repairs(parker, call):
    parker.model.mkdir('p1')   # a run killed after cpus
    parker.model.write('p1', 'cpus', '2-3')
    parker.render()
    verdict = call(partitions=[P1], check=True)
    assert kinds(verdict) == [('not_started', 'p1', 'repair'), ('incomplete', 'p1', 'repair')]
    assert not call(partitions=[P1]).get('failed')
    assert call(partitions=[P1], check=True)['status'] == 'in plan'
    parker.host.write('/sys/kernel/kexec_loaded', '1')   # as if killed between online and kexec -u
    control = '0x%x' % parker.model.info('p1')['control']
    parker.host.write('/run/parker-kernel/kexec-normal.json', '{"cmdline": "parker=%s memmap=exactmap"}' % control)
    assert kinds(call(partitions=[P1], check=True)) == [('slot_loaded', 'p1', 'repair')]
    assert call(partitions=[P1])['changed'] and parker.view()['kexec_loaded'] == '0'


def test_the_partition_module_neither_reads_nor_needs_the_hardware_record(parker, call, monkeypatch):
    from ansible_collections.parker.kernel.plugins.modules import partition
    from ansible_collections.parker.kernel.tests.unit.parker_kernel import run_module
    call()
    parker.host.add_pci_devices([('0000:00:09.0', '1af4', '1000', '0x020000', 'virtio-pci',
                                  'net:eth9')])
    assert call(check=True)['status'] == 'hardware changed'
    one = run_module(monkeypatch, partition, dict(name='p3', cpus='6-7', memory='1G', parker_root=ROOT),
                     parker.host.root, commands=parker.commands())
    assert not one.get('failed'), one['msg']


def test_replacing_a_partition_by_one_thread_of_its_core_is_an_smt_split(parker, call):
    call(partitions=[dict(P1, devices=[])], health_check=False)
    parker.poweroff('p1')
    result = call(partitions=[dict(P1, devices=[], cpus='2')], replace=True, health_check=False, check=True)
    assert result['failed'] and 'the SMT core 2-3 would be split between p1 and the Boot Kernel' in result['msg']


def test_a_mount_then_a_refusal_reports_the_mount(host, sim, monkeypatch):
    monkeypatch.setenv('SSH_CONNECTION', '10.0.2.2 50000 10.0.2.15 22')
    unmounted = ParkerHost(host, monkeypatch, mounted=False)
    from ansible_collections.parker.kernel.tests.unit.parker_kernel import run_module
    result = run_module(monkeypatch, host_partitions, dict(partitions=[dict(P1, cpus='0-7')], parker_root=ROOT),
                        host.root, commands=unmounted.commands())
    assert result['failed'] and result['changed'] is True and result['actions'] == ['mount -t parker none %s' % ROOT]


def test_absent_clears_an_image_a_killed_start_left_in_the_slot(parker, call):
    call(partitions=[P1], health_check=False)
    parker.host.write('/sys/kernel/kexec_loaded', '1')
    control = '0x%x' % parker.model.info('p1')['control']
    parker.host.write('/run/parker-kernel/kexec-normal.json', '{"cmdline": "parker=%s memmap=exactmap"}' % control)
    parker.poweroff('p1')
    gone = call(partitions=[P1], state='absent')
    assert not gone.get('failed'), gone['msg']
    assert '/usr/sbin/kexec -u' in gone['actions'] and parker.view()['kexec_loaded'] == '0'


def test_check_mode_shows_a_replaced_partitions_new_memory(parker, call):
    call(partitions=[dict(P1, devices=[])], health_check=False)
    parker.poweroff('p1')
    plan = call(partitions=[dict(P1, devices=[], memory='2G')], replace=True, check=True, diff=True)
    assert 'p1: cpus=2-3 memory=2G@0x0' in plan['diff']['after'], plan['diff']
