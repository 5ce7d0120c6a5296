"""boot_cmdline stage=next_boot|entry|discard against a fake GRUB: update-grub really runs the drop-ins with
/bin/sh and the staged script, and writes a grub.cfg with Debian 00_header's one-shot; grub-editenv edits
grubenv as GRUB's does."""
import os

import pytest

from ansible_collections.parker.kernel.plugins.module_utils import _staged_boot
from ansible_collections.parker.kernel.tests.unit.unit_helpers import fake_update_grub
from ansible_collections.parker.kernel.plugins.module_utils._bootloader import run_boot_cmdline, grub_cfg_default_tokens

DEFAULT_GRUB = ('GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'
                'GRUB_CMDLINE_LINUX="console=ttyS0,115200 crashkernel=128M"\n')
HEADER = ('if [ -s $prefix/grubenv ]; then\n  load_env\nfi\n'
          'if [ "${next_entry}" ] ; then\n   set default="${next_entry}"\n   set next_entry=\n'
          '   save_env next_entry\n   set boot_once=true\nelse\n   set default="0"\nfi\n')
MOUNTINFO = ('22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n'
             '25 22 0:5 / /proc rw shared:2 - proc proc rw\n')
RUNNING = 'BOOT_IMAGE=/boot/vmlinuz root=LABEL=r ro console=ttyS0,115200 crashkernel=128M quiet\n'
EDITENV = '/usr/bin/grub-editenv'
BLANK_ENV = '# GRUB Environment Block\n' + '#' * 900 + '\n'


def params(**kw):
    base = dict(present=['crashkernel=256M', 'parker_test=1'], absent=['quiet'], bootloader='grub',
                dropin='/etc/default/grub.d/99-parker-kernel.cfg', stage='next_boot', staged_only=['panic=5'])
    base.update(kw)
    return base


@pytest.fixture
def grub(host):
    host.write('/etc/default/grub', DEFAULT_GRUB)
    host.write('/usr/sbin/update-grub', '#!fake')
    host.write(EDITENV, '#!fake')
    host.write('/boot/grub/grubenv', BLANK_ENV)
    host.write('/proc/self/mountinfo', MOUNTINFO)
    host.write('/proc/cmdline', RUNNING)
    host.write('/usr/share/grub/00_header.out', HEADER)
    os.makedirs(host.path('/etc/default/grub.d'), exist_ok=True)
    os.makedirs(host.path('/etc/grub.d'), exist_ok=True)
    calls = []
    update = fake_update_grub(
        host.root, calls,
        "menuentry 'Debian GNU/Linux' --class debian \\$menuentry_id_option 'gnulinux-x' {\\n"
        '\\tinsmod ext2\\n\\tlinux\\t/boot/vmlinuz root=LABEL=r ro %s %s\\n\\tinitrd\\t/boot/initrd.img\\n}\\n'
        "submenu 'Advanced' {\\n\\tmenuentry 'old' {\\n\\t\\tlinux\\t/boot/vmlinuz-old ro\\n\\t}\\n}\\n",
        header='/usr/share/grub/00_header.out', run_grub_d=True)

    def editenv(argv):
        calls.append(argv)
        env = _staged_boot.parse_grubenv(host.read(argv[1]))
        if argv[2] == 'set':
            key, _sep, value = argv[3].partition('=')
            env[key] = value
        else:
            env.pop(argv[3], None)
        text = '# GRUB Environment Block\n' + ''.join('%s=%s\n' % kv for kv in sorted(env.items()))
        host.write(argv[1], text + '#' * (1024 - len(text) - 1) + '\n')
        return 0, '', ''
    update(None)
    calls.clear()
    return {'commands': {('/usr/sbin/update-grub',): update, (EDITENV,): editenv}, 'calls': calls}


def default_tokens(host):
    return grub_cfg_default_tokens(host.read('/boot/grub/grub.cfg'))


def env(host):
    return _staged_boot.parse_grubenv(host.read('/boot/grub/grubenv'))


def test_next_boot_stages_the_new_line_once_and_leaves_the_default(host, run, grub):
    before = default_tokens(host)
    result = run(run_boot_cmdline, params(), commands=grub['commands'])
    assert result['changed'] and result['persisted'] is False and result['reboot_required']
    assert result['default_current'] is False
    staged = result['staged']
    assert staged['tokens'] == ['root=LABEL=r', 'ro', 'console=ttyS0,115200', 'crashkernel=256M', 'parker_test=1',
                                'panic=5']
    assert staged['default_tokens'] == before and staged['kernel'] == '/boot/vmlinuz'
    assert staged['initrd'] == '/boot/initrd.img' and staged['next_boot'] is True
    assert default_tokens(host) == before                       # the default entry is untouched
    assert not os.path.exists(host.path('/etc/default/grub.d/99-parker-kernel.cfg'))
    entries = dict(_staged_boot.top_level_entries(host.read('/boot/grub/grub.cfg')))
    assert list(entries) == ['Debian GNU/Linux', 'parker.kernel staged boot (next boot only)']
    assert _staged_boot.entry_tokens(entries['parker.kernel staged boot (next boot only)'])[1] == staged['tokens']
    assert env(host)['next_entry'] == _staged_boot.ENTRY_ID
    again = run(run_boot_cmdline, params(), commands=grub['commands'])
    assert not again['changed'] and again['staged_found']['next_boot'] is True


def test_check_mode_says_what_it_would_stage_and_writes_nothing(host, run, grub):
    snapshot = dict((p, host.read(p)) for p in ('/boot/grub/grub.cfg', '/boot/grub/grubenv'))
    result = run(run_boot_cmdline, params(), check_mode=True, commands=grub['commands'])
    assert result['changed'] and result['staged']['tokens'][-1] == 'panic=5'
    assert 'parker_test=1' in result['diff']['after'] and grub['calls'] == []
    assert snapshot == dict((p, host.read(p)) for p in snapshot)
    assert not os.path.exists(host.path(_staged_boot.SCRIPT))


def test_promotion_persists_the_default_and_removes_the_staged_entry_in_one_update(host, run, grub):
    run(run_boot_cmdline, params(), commands=grub['commands'])
    del grub['calls'][:]
    promoted = run(run_boot_cmdline, params(stage='none', staged_only=[]), commands=grub['commands'])
    assert not promoted.get('failed'), promoted.get('msg')
    assert promoted['changed'] and promoted['persisted'] and promoted['staged_found']['next_boot']
    assert not os.path.exists(host.path(_staged_boot.SCRIPT)) and 'next_entry' not in env(host)
    assert [c[0] for c in grub['calls']].count('/usr/sbin/update-grub') == 1
    tokens = default_tokens(host)
    assert 'crashkernel=256M' in tokens and 'parker_test=1' in tokens and 'quiet' not in tokens
    assert 'panic=5' not in tokens                                # staged_only never reaches the default
    assert _staged_boot.top_level_entries(host.read('/boot/grub/grub.cfg'))[0][0] == 'Debian GNU/Linux'
    assert len(_staged_boot.top_level_entries(host.read('/boot/grub/grub.cfg'))) == 1
    # Rebooted into the promoted default: the next staged run has nothing to stage or promote.
    host.write('/proc/cmdline', 'BOOT_IMAGE=/boot/vmlinuz ' + ' '.join(tokens) + '\n')
    steady = run(run_boot_cmdline, params(), commands=grub['commands'])
    assert not steady['changed'] and steady['staged'] is None and steady['default_current'] is True
    assert run(run_boot_cmdline, params(stage='entry'), check_mode=True,
               commands=grub['commands'])['default_current'] is True


def test_discard_restores_grub_cfg_byte_for_byte(host, run, grub):
    cfg, grubenv = host.read('/boot/grub/grub.cfg'), host.read('/boot/grub/grubenv')
    run(run_boot_cmdline, params(), commands=grub['commands'])
    discarded = run(run_boot_cmdline, params(stage='discard'), commands=grub['commands'])
    assert discarded['changed'] and discarded['staged_found']['tokens'][-1] == 'panic=5'
    assert host.read('/boot/grub/grub.cfg') == cfg and 'next_entry' not in env(host)
    assert _staged_boot.parse_grubenv(grubenv) == env(host)
    assert not run(run_boot_cmdline, params(stage='discard'), commands=grub['commands'])['changed']


def test_a_running_line_that_already_has_it_stages_nothing_and_clears_a_leftover(host, run, grub):
    run(run_boot_cmdline, params(), commands=grub['commands'])
    # The staged boot happened, the run that did it was cut off before promotion.
    host.write('/proc/cmdline', 'BOOT_IMAGE=/boot/vmlinuz root=LABEL=r ro console=ttyS0,115200 crashkernel=256M '
                                'parker_test=1 panic=5\n')
    result = run(run_boot_cmdline, params(), commands=grub['commands'])
    assert not result['reboot_required'] and result['staged'] is None and result['changed']
    assert result['staged_found']['tokens'][-2:] == ['parker_test=1', 'panic=5']
    assert not os.path.exists(host.path(_staged_boot.SCRIPT)) and 'next_entry' not in env(host)


def test_entry_writes_no_one_shot_for_a_kexec_into_it(host, run, grub):
    result = run(run_boot_cmdline, params(stage='entry'), commands=grub['commands'])
    assert result['staged']['next_boot'] is False and 'next_entry' not in env(host)
    assert os.path.exists(host.path(_staged_boot.SCRIPT))


def test_a_grubenv_grub_cannot_write_is_refused_before_any_file(host, run, grub):
    host.write('/proc/self/mountinfo', '22 1 254:1 / / rw - btrfs /dev/vda1 rw\n')
    result = run(run_boot_cmdline, params(), commands=grub['commands'])
    assert result['failed'] and 'GRUB cannot clear its one-shot' in result['msg'] and grub['calls'] == []
    host.write('/proc/self/mountinfo', '22 1 254:1 / / rw - ext4 /dev/mapper/vg-root rw\n')
    result = run(run_boot_cmdline, params(), commands=grub['commands'])
    assert result['failed'] and 'LVM, MD or device-mapper' in result['msg']
    # A kexec into the entry needs no grubenv write.
    assert not run(run_boot_cmdline, params(stage='entry'), commands=grub['commands']).get('failed')


def test_a_default_it_cannot_identify_is_refused(host, run, grub):
    host.write('/boot/grub/grubenv', '# GRUB Environment Block\nsaved_entry=Advanced>old\n')
    cfg = host.read('/boot/grub/grub.cfg')
    host.write('/boot/grub/grub.cfg', cfg.replace('set default="0"', 'set default="${saved_entry}"'))
    result = run(run_boot_cmdline, params(), commands=grub['commands'])
    assert result['failed'] and 'cannot tell which top-level entry' in result['msg'] and grub['calls'] == []


def test_a_failing_update_grub_rolls_the_staged_entry_back(host, run, grub):
    cfg = host.read('/boot/grub/grub.cfg')
    update = grub['commands'][('/usr/sbin/update-grub',)]
    state = {'n': 0}

    def fails_once(argv):
        state['n'] += 1
        return (1, '', 'grub-mkconfig: disk full') if state['n'] == 1 else update(argv)
    commands = dict(grub['commands'])
    commands[('/usr/sbin/update-grub',)] = fails_once
    result = run(run_boot_cmdline, params(), commands=commands)
    assert result['failed'] and 'disk full' in result['msg']
    assert not os.path.exists(host.path(_staged_boot.SCRIPT)) and host.read('/boot/grub/grub.cfg') == cfg
    assert 'next_entry' not in env(host)


def test_staging_is_refused_on_grubby(host, run, grub):
    result = run(run_boot_cmdline, params(bootloader='grubby'), commands=grub['commands'])
    assert result['failed'] and 'needs GRUB' in result['msg']


def test_a_run_cut_off_before_update_grub_regenerates_grub_cfg_next_time(host, run, grub):
    # The script was written, then the run died before update-grub: grub.cfg has no staged entry yet.
    first = run(run_boot_cmdline, params(), check_mode=True, commands=grub['commands'])
    host.write(_staged_boot.SCRIPT, first['diff']['after'])
    os.chmod(host.path(_staged_boot.SCRIPT), 0o755)
    result = run(run_boot_cmdline, params(), commands=grub['commands'])
    assert result['changed'] and ['/usr/sbin/update-grub'] in grub['calls']
    assert any(_staged_boot.ENTRY_ID in b[0] for _t, b in _staged_boot.top_level_entries(host.read('/boot/grub/grub.cfg')))
    # And the other way: the script removed, grub.cfg not regenerated yet.
    os.remove(host.path(_staged_boot.SCRIPT))
    del grub['calls'][:]
    discarded = run(run_boot_cmdline, params(stage='discard'), commands=grub['commands'])
    assert discarded['changed'] and ['/usr/sbin/update-grub'] in grub['calls']
    assert _staged_boot.ENTRY_ID not in host.read('/boot/grub/grub.cfg')
