"""Run the collection's playbooks against the QEMU test fleet.

The fleet is started by tools/fleet/fleet (scripts/test and .ci/run do it).
Playbooks carry their own assertions; this harness runs them, keeps their
output for a failure report, and times them for docs/testing.md.
"""
import hashlib
import json
import os
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATE_DIR = os.environ.get('PARKER_FLEET_DIR', os.path.join(REPO, '.fleet'))
PLAYBOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'playbooks')
FLEET_CLI = os.path.join(REPO, 'tools', 'fleet', 'fleet')


def fleet_state():
    path = os.path.join(STATE_DIR, 'fleet.json')
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def collections_path():
    """A folder holding ansible_collections/parker/kernel -> this checkout."""
    # One folder per checkout: two clones running at once must not repoint each other's link.
    tag = hashlib.sha256(REPO.encode()).hexdigest()[:12]
    top = os.path.join(tempfile.gettempdir(), 'parker-kernel-collections-%d-%s' % (os.getuid(), tag))
    link = os.path.join(top, 'ansible_collections', 'parker', 'kernel')
    if not os.path.islink(link) or os.readlink(link) != REPO:
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(REPO, link)
    return top


def ansible_env(state_dir=None):
    state_dir = state_dir or STATE_DIR
    env = dict(os.environ)
    env.update({
        'PARKER_FLEET_DIR': state_dir,
        'ANSIBLE_CONFIG': os.path.join(state_dir, 'ansible.cfg'),
        'ANSIBLE_COLLECTIONS_PATH': collections_path(),
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_RETRY_FILES_ENABLED': '0',
    })
    return env


def playbook_argv(name, *args, state_dir=None):
    """ansible-playbook against a fleet. NAME is under tests/fleet/playbooks unless it is absolute."""
    state_dir = state_dir or STATE_DIR
    venv_bin = os.path.join(REPO, '.venv', 'bin')
    command = os.path.join(venv_bin, 'ansible-playbook')
    if not os.path.exists(command):
        command = 'ansible-playbook'
    inventory = os.path.join(state_dir, 'inventory.yml')
    return [command, '-i', inventory, os.path.join(PLAYBOOKS, name)] + list(args)


def run_playbook(name, *args, timeout=1800, state_dir=None):
    """Run a playbook (see playbook_argv) against a fleet; return (rc, output, seconds)."""
    state_dir = state_dir or STATE_DIR
    argv = playbook_argv(name, *args, state_dir=state_dir)
    started = time.time()
    proc = subprocess.run(argv, env=ansible_env(state_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout, check=False)
    seconds = time.time() - started
    record_timing(state_dir, os.path.relpath(name, REPO) if os.path.isabs(name) else name, seconds, proc.returncode)
    return proc.returncode, proc.stdout, seconds


def recap(output):
    """{host: {'ok': n, 'changed': n, 'failed': n, ...}} from a PLAY RECAP."""
    hosts = {}
    for line in output[output.rfind('PLAY RECAP'):].splitlines()[1:]:
        name, sep, counts = line.partition(' : ')
        if sep:
            hosts[name.strip()] = dict((k, int(v)) for k, v in (c.split('=') for c in counts.split()))
    return hosts


def guest_run(guest, command, state_dir=None, timeout=120):
    """Run a shell command line in a guest through `fleet ssh` (the tests' own view of the kernel)."""
    argv = [FLEET_CLI, 'ssh', '--state-dir', state_dir or STATE_DIR, guest['name'], command]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout, check=False)
    return proc.returncode, proc.stdout


def record_timing(state_dir, name, seconds, rc):
    path = os.path.join(state_dir, 'timings.jsonl')
    with open(path, 'a') as handle:
        handle.write(json.dumps({'playbook': name, 'seconds': round(seconds, 1), 'rc': rc,
                                 'when': time.strftime('%Y-%m-%dT%H:%M:%S')}) + '\n')


def fleet_state_at(state_dir):
    with open(os.path.join(state_dir, 'fleet.json')) as handle:
        return json.load(handle)


def wait_for_ssh(guest, state_dir=None, timeout=300):
    """After a reset: True once the guest answers over SSH again."""
    deadline = time.time() + timeout
    time.sleep(5)
    while time.time() < deadline:
        try:
            rc, _out = guest_run(guest, 'true', state_dir=state_dir, timeout=30)
        except subprocess.TimeoutExpired:
            rc = None
        if rc == 0:
            return True
        time.sleep(3)
    return False


def qmp(guest, command, state_dir=None):
    """One QMP command to a guest's QEMU (fleet qmp); returns the CompletedProcess."""
    return subprocess.run([FLEET_CLI, 'qmp', '--state-dir', state_dir or STATE_DIR, guest['name'], command],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
