import pytest

from ansible_collections.parker.kernel.tests.unit.unit_helpers import snapshot
from ansible_collections.parker.kernel.plugins.module_utils._kexec import run_kexec_load

KERNEL = '/boot/vmlinuz-6.1.0-fake-amd64'
INITRD = '/boot/initrd.img-6.1.0-fake-amd64'


def params(**kw):
    base = dict(kernel=KERNEL, initrd=INITRD, cmdline='', reuse_cmdline=False, cmdline_add=None,
                cmdline_remove=None, state='loaded', type='normal', mem_min=None, mem_max=None, method='auto')
    base.update(kw)
    return base


@pytest.fixture
def kexec(host):
    """A fake kexec-tools that flips the kernel's loaded flag like the syscall would."""
    host.write('/usr/sbin/kexec', '#!fake')
    behaviour = {'refuse_file': False}

    def reply(argv):
        slot = '/sys/kernel/kexec_crash_loaded' if '-p' in argv else '/sys/kernel/kexec_loaded'
        if '-s' in argv and behaviour['refuse_file']:
            return 255, '', 'kexec_file_load failed: Operation not permitted'
        host.write(slot, '0' if '-u' in argv else '1')
        return 0, '', ''
    commands = {('/usr/sbin/kexec',): reply}
    commands_behaviour[id(commands)] = behaviour
    return commands


commands_behaviour = {}


def test_load_then_repeat_is_unchanged_then_unload(host, run, kexec):
    result = run(run_kexec_load, params(cmdline='console=ttyS0 quiet'), commands=kexec)
    assert result['changed'] and result['method'] == 'file'
    assert host.read('/sys/kernel/kexec_loaded') == '1'
    argv = result['_ran'][-1]
    assert argv[:3] == ['/usr/sbin/kexec', '-l', '-s'] and '--command-line=console=ttyS0 quiet' in argv
    again = run(run_kexec_load, params(cmdline='console=ttyS0 quiet'), commands=kexec)
    assert again['changed'] is False and again['_ran'] == []
    changed_line = run(run_kexec_load, params(cmdline='console=ttyS0'), commands=kexec)
    assert changed_line['changed'] and changed_line['previous'] == result['digest']
    gone = run(run_kexec_load, params(state='unloaded'), commands=kexec)
    assert gone['changed'] and host.read('/sys/kernel/kexec_loaded') == '0'
    assert run(run_kexec_load, params(state='unloaded'), commands=kexec)['changed'] is False


def test_reuse_cmdline_adds_and_removes_tokens(host, run, kexec):
    result = run(run_kexec_load, params(reuse_cmdline=True, cmdline_add=['crashkernel=256M', 'quiet'],
                                        cmdline_remove=['console']), commands=kexec)
    assert result['cmdline'] == 'root=/dev/vda ro crashkernel=256M quiet'


def test_auto_falls_back_to_legacy(host, run, kexec):
    commands_behaviour[id(kexec)]['refuse_file'] = True
    result = run(run_kexec_load, params(), commands=kexec)
    assert result['method'] == 'legacy' and '-c' in result['_ran'][-1]


def test_placement_limits_force_legacy(host, run, kexec):
    result = run(run_kexec_load, params(mem_min='0x100000000', mem_max='0x11fffffff'), commands=kexec)
    argv = result['_ran'][-1]
    assert '-c' in argv and '--mem-min=0x100000000' in argv and '--mem-max=0x11fffffff' in argv


def test_check_mode_runs_nothing(host, run, kexec):
    before = snapshot(host.root)
    result = run(run_kexec_load, params(), check_mode=True, commands=kexec)
    assert result['changed'] and result['_ran'] == []
    assert snapshot(host.root) == before


@pytest.mark.parametrize('setup,kw,fragment', [
    (None, dict(kernel='/boot/missing'), 'does not exist'),
    (('/proc/sys/kernel/kexec_load_disabled', '1'), {}, 'kexec_load_disabled'),
    (('/sys/kernel/security/lockdown', 'none [integrity] confidentiality'), dict(method='legacy'), 'lockdown'),
    (('/sys/kernel/kexec_crash_size', '0'), dict(type='crash'), 'crashkernel='),
    (None, dict(method='file', mem_min='0x1000'), 'need the kexec_load syscall'),
    (None, dict(mem_min='0x2000', mem_max='0x1000'), 'above mem_max'),
])
def test_refusals_run_nothing(host, run, kexec, setup, kw, fragment):
    if setup:
        host.write(*setup)
    result = run(run_kexec_load, params(**kw), commands=kexec)
    assert result['failed'] and fragment in result['msg'], result['msg']
    assert result['_ran'] == []


def test_lockdown_auto_uses_file(host, run, kexec):
    host.write('/sys/kernel/security/lockdown', 'none [integrity] confidentiality')
    result = run(run_kexec_load, params(), commands=kexec)
    assert result['method'] == 'file'


def test_crash_slot(host, run, kexec):
    result = run(run_kexec_load, params(type='crash'), commands=kexec)
    assert result['changed'] and host.read('/sys/kernel/kexec_crash_loaded') == '1'
    assert result['_ran'][-1][1] == '-p'


@pytest.mark.parametrize('kw,fragment', [
    (dict(cmdline='console=ttyS0\ninit=/bin/sh'), 'control character'),
    (dict(cmdline='quiet', cmdline_add=['panic=10\n']), 'control character'),
    (dict(cmdline='root="/dev/vda"'), 'quotes'),
    (dict(cmdline='a=' + 'x' * 2100), 'COMMAND_LINE_SIZE'),
])
def test_a_bad_cmdline_is_refused_before_kexec_runs(host, kexec, run, kw, fragment, monkeypatch):
    monkeypatch.setattr('os.uname', lambda: ('Linux', 'h', '6.1', '#1', 'x86_64'))
    before = snapshot(host.root)
    result = run(run_kexec_load, params(**kw))
    assert result['failed'] and fragment in result['msg'] and result['writes'] == 0
    assert result['_ran'] == [] and snapshot(host.root) == before
