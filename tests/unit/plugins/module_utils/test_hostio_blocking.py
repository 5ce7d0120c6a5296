"""Transaction.write_blocking: the writer is a child process, so a writer the kernel never lets go
cannot keep the module from exiting."""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.parker.kernel.plugins.module_utils._hostio import ApplyError, HostIO, Transaction


def test_the_value_is_written(tmp_path):
    (tmp_path / 'online').write_text('0')
    Transaction(HostIO(str(tmp_path))).write_blocking('/online', '1', 10)
    assert (tmp_path / 'online').read_text() == '1'


def test_the_errno_comes_back(tmp_path):
    with pytest.raises(ApplyError) as exc:
        Transaction(HostIO(str(tmp_path))).write_blocking('/missing/online', '1', 10)
    assert exc.value.errno == errno.ENOENT


def _writer_pids(path):
    """Processes (not this one) whose command line names ``path``: the blocked writers."""
    found = []
    for pid in os.listdir('/proc'):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                    if str(path).encode() in handle.read():
                        found.append(int(pid))
            except OSError:
                pass
    return found


def _kill_writers_of(path):
    """Release writers still blocked on ``path`` so a test leaves nothing behind; returns their pids."""
    pids = _writer_pids(path)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return pids


def test_a_writer_that_never_returns_times_out_and_is_left_alone(tmp_path):
    os.mkfifo(str(tmp_path / 'online'))  # opening a FIFO with no reader blocks, as Parker's online does
    started = time.time()
    with pytest.raises(ApplyError) as exc:
        Transaction(HostIO(str(tmp_path))).write_blocking('/online', '1', 1)
    assert exc.value.errno == errno.ETIMEDOUT and time.time() - started < 5
    assert _kill_writers_of(tmp_path / 'online'), 'the blocked writer should still be there'


def test_the_module_process_ends_and_lets_go_of_its_output_while_the_writer_stays_blocked(tmp_path):
    """What Ansible needs: the process running the module exits and closes the pipe Ansible reads,
    even though the write it started never returns; the writer lives on in another session."""
    os.mkfifo(str(tmp_path / 'online'))
    program = (
        "import sys\n"
        "from ansible_collections.parker.kernel.plugins.module_utils._hostio import ApplyError, HostIO, Transaction\n"
        "try:\n"
        "    Transaction(HostIO(sys.argv[1])).write_blocking('/online', '1', 1)\n"
        "except ApplyError as exc:\n"
        "    print('timed out' if exc.errno == 110 else 'other %s' % exc)\n"
    )
    started = time.time()
    module = subprocess.run([sys.executable, '-c', program, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
                            timeout=30, check=False)
    assert module.stdout.decode().strip() == 'timed out', module.stderr.decode()
    assert time.time() - started < 10
    writers = _writer_pids(tmp_path / 'online')
    try:
        assert writers, 'the blocked writer should outlive the module'
        assert all(os.getsid(pid) == pid for pid in writers), 'the writer should lead its own session'
    finally:
        _kill_writers_of(tmp_path / 'online')


def test_a_rollback_restores_a_file_with_its_own_mode(tmp_path):
    import os
    from ansible_collections.parker.kernel.plugins.module_utils._hostio import HostIO, Transaction
    path = tmp_path / 'etc' / 'secret.cfg'
    path.parent.mkdir()
    path.write_text('old\n')
    os.chmod(str(path), 0o600)
    txn = Transaction(HostIO(str(tmp_path)))
    txn.write_file('/etc/secret.cfg', 'new\n', undo_text='old\n', mode=0o600)
    assert txn.rollback() == []
    assert path.read_text() == 'old\n' and os.stat(str(path)).st_mode & 0o777 == 0o600
    assert sorted(os.listdir(str(path.parent))) == ['secret.cfg']
