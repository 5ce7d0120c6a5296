"""The cmdline role on a guest that boots through its own GRUB from disk.

Only a disk boot proves that a persisted command line is what the kernel
really boots with, so this test starts its own GRUB-booting guest.
"""
import os
import signal
import subprocess

import pytest

import harness

DISK_STATE = os.environ.get('PARKER_DISK_FLEET_DIR', os.path.join(harness.REPO, '.fleet-disk'))


@pytest.fixture(scope='module')
def disk_fleet(fleet):
    fleet_cli = os.path.join(harness.REPO, 'tools', 'fleet', 'fleet')
    up = subprocess.run([fleet_cli, 'up', '--count', '1', '--boot', 'disk', '--state-dir', DISK_STATE,
                         '--port-base', os.environ.get('PARKER_DISK_FLEET_PORT_BASE', '2260')],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    try:
        assert up.returncode == 0, 'disk-boot guest did not come up:\n' + up.stdout[-6000:]
        yield DISK_STATE
    finally:
        subprocess.run([fleet_cli, 'down', '--state-dir', DISK_STATE], check=False)


def test_cmdline_role_cold_and_kexec_reboots(disk_fleet):
    rc, output, seconds = harness.run_playbook('cmdline.yml', state_dir=disk_fleet)
    assert rc == 0, 'cmdline.yml failed (rc=%d, %.0fs):\n%s' % (rc, seconds, output[-8000:])


def _disk_guest(state_dir):
    return harness.fleet_state_at(state_dir)['guests'][0]


def test_a_reset_during_a_boot_line_change_boots_the_old_line_or_the_new(disk_fleet):
    """Fault matrix (docs/reliability.md): QMP system_reset while update-grub regenerates grub.cfg. GRUB must
    find the old file or the new one, never half of one; the next run converges on the new line."""
    guest = _disk_guest(disk_fleet)
    rc, old = harness.guest_run(guest, 'cat /proc/cmdline', state_dir=disk_fleet)
    assert rc == 0, old
    # A kexec reboot has no BOOT_IMAGE=, a GRUB boot adds it: compare the rest.
    old_tokens = [t for t in old.split() if not t.startswith('BOOT_IMAGE=')]
    argv = harness.playbook_argv('cmdline_change.yml', '-e', 'change_value=reset', state_dir=disk_fleet)
    proc = subprocess.Popen(argv, env=harness.ansible_env(disk_fleet), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    # Blocks in the guest until grub-mkconfig runs, then the host resets the guest at once.
    rc, seen = harness.guest_run(guest, 'for i in $(seq 1200); do pgrep -x grub-mkconfig >/dev/null && '
                                 'echo seen && exit 0; sleep 0.05; done; exit 1', state_dir=disk_fleet, timeout=180)
    reset = harness.qmp(guest, '{"execute": "system_reset"}', state_dir=disk_fleet)
    assert rc == 0 and 'seen' in seen, 'update-grub never ran'
    assert reset.returncode == 0, reset.stdout
    assert harness.wait_for_ssh(guest, disk_fleet, timeout=400), 'the guest did not boot after the reset'
    # The run whose host was reset ends unreachable (ServerAliveInterval in the fleet's ansible.cfg).
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode != 0, output[-4000:]
    rc, after = harness.guest_run(guest, 'cat /proc/cmdline; grub-script-check /boot/grub/grub.cfg && echo cfg-ok',
                                  state_dir=disk_fleet)
    lines = after.strip().splitlines()
    booted = [t for t in lines[0].split() if not t.startswith('BOOT_IMAGE=')]
    assert 'cfg-ok' in lines, 'grub.cfg is broken after the reset:\n' + after
    new_tokens = [t for t in old_tokens if not t.startswith('parker_test=')] + ['parker_test=reset']
    assert sorted(booted) in (sorted(old_tokens), sorted(new_tokens)), (old_tokens, booted)
    harness.record_timing(disk_fleet, 'reset during update-grub: booted the %s line'
                          % ('new' if 'parker_test=reset' in booted else 'old'), 0, 0)
    rc, output, _s = harness.run_playbook('cmdline_change.yml', '-e', 'change_value=reset', state_dir=disk_fleet)
    assert rc == 0, output[-6000:]
    rc, cfg = harness.guest_run(guest, "grep -c 'parker_test=reset' /boot/grub/grub.cfg", state_dir=disk_fleet)
    assert rc == 0 and int(cfg.strip()) > 0, cfg


def _staged(disk_fleet, expect, *args):
    rc, output, seconds = harness.run_playbook('cmdline_staged.yml', '-e', 'expect=%s' % expect, *args,
                                               state_dir=disk_fleet)
    harness.record_timing(disk_fleet, 'cmdline_staged.yml %s' % ' '.join((expect,) + args[1::2]), seconds, rc)
    assert rc == 0, 'cmdline_staged.yml expect=%s failed (rc=%d, %.0fs):\n%s' % (expect, rc, seconds, output[-8000:])
    return output


def test_a_staged_change_in_check_mode_touches_no_bootloader_file(disk_fleet):
    _staged(disk_fleet, 'check', '-e', 'staged_value=check')


def test_an_interrupted_staged_run_is_reported_and_the_next_converges_and_promotes(disk_fleet):
    """The controller is killed once the staged entry's script exists; the next run reports the entry, boots the
    staged line once, gates it and promotes it (the next test's GRUB boot shows the default then carries it)."""
    guest = _disk_guest(disk_fleet)
    argv = harness.playbook_argv('cmdline_staged.yml', '-e', 'expect=promoted', '-e', 'staged_value=good',
                                 state_dir=disk_fleet)
    proc = subprocess.Popen(argv, env=harness.ansible_env(disk_fleet), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True, start_new_session=True)
    rc, seen = harness.guest_run(guest, 'for i in $(seq 3000); do [ -e /etc/grub.d/42_parker_kernel_staged ] && '
                                 'echo seen && exit 0; sleep 0.05; done; exit 1', state_dir=disk_fleet, timeout=240)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert rc == 0 and 'seen' in seen, 'the staged entry never appeared'
    assert harness.wait_for_ssh(guest, disk_fleet, timeout=420), 'the guest did not come back'
    output = _staged(disk_fleet, 'promoted', '-e', 'staged_value=good')
    assert 'Found a staged boot entry from an earlier run' in output, output[-6000:]


def test_a_staged_line_that_cannot_boot_reverts_by_itself_and_fails_the_host(disk_fleet):
    """Also the ordinary reboot after the promotion above: the guest comes back through GRUB's default, which
    must carry the promoted parker_test=good and not the staged-only panic=."""
    _staged(disk_fleet, 'reverted', '-e', 'failure=boot', '-e', 'staged_value=bad', '-e', 'default_has=parker_test=good')


def test_a_staged_line_that_fails_its_gate_is_reverted_and_fails_the_host(disk_fleet):
    _staged(disk_fleet, 'reverted', '-e', 'failure=gate', '-e', 'staged_value=gate')
