import os

import pytest

from ansible_collections.parker.kernel.tests.unit.unit_helpers import fake_update_grub, snapshot
from ansible_collections.parker.kernel.plugins.module_utils._bootloader import run_boot_cmdline, grub_cfg_default_tokens

DEFAULT_GRUB = ('GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n'
                'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'
                'GRUB_CMDLINE_LINUX="console=ttyS0,115200 crashkernel=128M memmap=64M\\\\\\$0x30000000"\n')


def params(**kw):
    base = dict(present=[], absent=[], bootloader='auto', dropin='/etc/default/grub.d/99-parker-kernel.cfg')
    base.update(kw)
    return base


@pytest.fixture
def grub(host):
    """A fake update-grub that really sources the files with /bin/sh, as grub-mkconfig does."""
    host.write('/etc/default/grub', DEFAULT_GRUB)
    host.write('/usr/sbin/update-grub', '#!fake')
    os.makedirs(host.path('/etc/default/grub.d'), exist_ok=True)
    calls = []
    update = fake_update_grub(host.root, calls, 'menuentry x {\\n\\tlinux\\t/boot/vmlinuz root=LABEL=r ro %s %s\\n}\\n')
    update(None)
    calls.clear()
    return {('/usr/sbin/update-grub',): update, 'calls': calls}


def cfg_tokens(host):
    return grub_cfg_default_tokens(host.read('/boot/grub/grub.cfg'))


def commands(grub):
    return dict((k, v) for k, v in grub.items() if k != 'calls')


def test_apply_replaces_owned_keys_and_keeps_everything_else(host, run, grub):
    assert cfg_tokens(host) == ['root=LABEL=r', 'ro', 'console=ttyS0,115200', 'crashkernel=128M',
                                'memmap=64M$0x30000000', 'quiet']
    result = run(run_boot_cmdline, params(present=['crashkernel=256M', 'memmap=32M$0x20000000', 'parker_test=1'],
                                          absent=['quiet']), commands=commands(grub))
    assert result['changed'] and result['bootloader'] == 'grub' and result['persisted'] is True
    tokens = cfg_tokens(host)
    assert 'crashkernel=256M' in tokens and 'crashkernel=128M' not in tokens
    assert 'memmap=64M$0x30000000' in tokens and 'memmap=32M$0x20000000' in tokens
    assert 'quiet' not in tokens and 'console=ttyS0,115200' in tokens
    assert tokens.count('crashkernel=256M') == 1
    assert result['reboot_required'] is True and 'parker_test=1' in result['running_missing']
    # GRUB sees \$ so it does not expand $0x...
    assert 'memmap=32M\\$0x20000000' in host.read('/boot/grub/grub.cfg')
    assert host.read('/etc/default/grub') == DEFAULT_GRUB.strip()


def test_second_run_changes_nothing(host, run, grub):
    p = params(present=['crashkernel=256M', 'parker_test=1'], absent=['quiet'])
    run(run_boot_cmdline, p, commands=commands(grub))
    grub['calls'].clear()
    again = run(run_boot_cmdline, p, commands=commands(grub))
    assert again['changed'] is False and again['actions'] == [] and grub['calls'] == []


def test_check_mode_leaves_every_file_identical(host, run, grub):
    before = snapshot(host.root)
    result = run(run_boot_cmdline, params(present=['crashkernel=256M']), check_mode=True, commands=commands(grub))
    assert result['changed'] and 'parker-kernel.cfg' in result['diff']['after_header']
    assert 'crashkernel=256M' in result['diff']['after'] and result['diff']['before'] == '\n'
    assert grub['calls'] == [] and snapshot(host.root) == before
    assert result['persisted'] is False


@pytest.mark.parametrize('present,fragment', [
    (['nosmt=yes please'], 'spaces'),
    (['crashkernel=1G', 'crashkernel=2G'], 'given twice'),
    (['root="x"'], 'quotes'),
    (['isolcpus=$1'], '"$" is only valid'),
])
def test_bad_values_touch_no_file(host, run, grub, present, fragment):
    before = snapshot(host.root)
    result = run(run_boot_cmdline, params(present=present), commands=commands(grub))
    assert result['failed'] and fragment in result['msg'] and 'before touching any file' in result['msg']
    assert snapshot(host.root) == before and grub['calls'] == []


def test_running_kernel_already_honours(host, run, grub):
    host.write('/proc/cmdline', 'root=/dev/vda ro console=ttyS0 crashkernel=256M')
    result = run(run_boot_cmdline, params(present=['crashkernel=256M']), commands=commands(grub))
    assert result['reboot_required'] is False


def test_grubby_updates_every_entry(host, run):
    host.write('/boot/loader/entries/a.conf', '')
    host.write('/usr/sbin/grubby', '#!fake')
    info = ('index=0\nkernel="/boot/vmlinuz-a"\nargs="ro crashkernel=auto quiet"\n'
            'index=1\nkernel="/boot/vmlinuz-b"\nargs="ro crashkernel=256M"\n')
    cmds = {('grubby', '--info=ALL'): (0, info, ''), ('grubby', '--update-kernel=ALL'): (0, '', '')}
    result = run(run_boot_cmdline, params(present=['crashkernel=256M'], absent=['quiet']), commands=cmds)
    assert result['bootloader'] == 'grubby'
    assert ['grubby', '--update-kernel=ALL', '--remove-args=crashkernel quiet'] in result['_ran']
    assert ['grubby', '--update-kernel=ALL', '--args=crashkernel=256M'] in result['_ran']
