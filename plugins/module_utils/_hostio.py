# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""The single I/O layer between the collection and the host kernel.

Reads go anywhere. Every write and every mutating command goes through
``Transaction``, which skips it in check mode, records it for the ``actions``
return value and remembers how to undo it, so a failure part-way is rolled
back before the module fails. A ``root`` prefix lets unit tests point the same
code at a fake sysfs tree.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import time


# Run by write_blocking in a child: one open and one write, the errno on failure.
_BLOCKING_WRITER = (
    "import os, sys\n"
    "try:\n"
    "    fd = os.open(sys.argv[1], os.O_WRONLY)\n"
    "    os.write(fd, sys.argv[2].encode())\n"
    "    os.close(fd)\n"
    "except OSError as exc:\n"
    "    sys.stderr.write('%d %s' % (exc.errno, exc.strerror))\n"
    "    sys.exit(1)\n"
)


_RTM_NEWADDR, _RTM_GETADDR, _NLMSG_ERROR, _NLMSG_DONE = 20, 22, 2, 3
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_IFA_ADDRESS, _IFA_LOCAL = 1, 2


def _netlink_addresses():
    """Dump the kernel's interface addresses over rtnetlink (read-only)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)   # NETLINK_ROUTE
    try:
        sock.bind((0, 0))
        sock.send(struct.pack('=IHHII', 24, _RTM_GETADDR, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0)
                  + struct.pack('=BBBBI', 0, 0, 0, 0, 0))
        found = []
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from('=IH', data, offset)
                if length < 16 or kind in (_NLMSG_DONE, _NLMSG_ERROR):
                    return found
                if kind == _RTM_NEWADDR:
                    family, prefix, _flags, scope, index = struct.unpack_from('=BBBBI', data, offset + 16)
                    attrs, end, raw = offset + 24, offset + length, {}
                    while attrs + 4 <= end:
                        size, attr = struct.unpack_from('=HH', data, attrs)
                        if size < 4:
                            break
                        raw[attr] = data[attrs + 4:attrs + size]
                        attrs += (size + 3) & ~3
                    value = raw.get(_IFA_LOCAL) or raw.get(_IFA_ADDRESS)
                    if value and family in (socket.AF_INET, socket.AF_INET6):
                        found.append({'index': index, 'address': socket.inet_ntop(family, value),
                                      'prefix': prefix, 'scope': scope})
                offset += (length + 3) & ~3
            if not data:
                return found
    finally:
        sock.close()


_COMMON_NODES = ('/dev/null', '/dev/zero', '/dev/pts/', '/dev/tty', '/dev/random', '/dev/urandom', '/dev/ptmx',
                 '/dev/console', '/dev/kmsg', '/dev/fuse', '/dev/shm/', '/dev/mqueue/', '/dev/hugepages/')


class HostIO:
    """Read-only view of a host's /sys, /proc, /boot and /run, rooted at ``root``."""

    def __init__(self, root='/', environ=None):
        self.root = root
        self.environ = os.environ if environ is None else environ

    def path(self, rel):
        return os.path.join(self.root, rel.lstrip('/'))

    def read(self, rel, default=None):
        # os.open/os.read, not open(): facts read tens of thousands of tiny
        # sysfs files on a big host, and the text-file layer triples their cost.
        try:
            fd = os.open(os.path.join(self.root, rel.lstrip('/')), os.O_RDONLY)
        except OSError:
            return default
        try:
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError:
            return default
        finally:
            os.close(fd)
        return b''.join(chunks).decode('utf-8', 'replace').strip()

    def read_records(self, rel):
        """Every record of a /dev/kmsg-like file as text lines, read non-blocking (a plain file in fake trees).

        Each read() of /dev/kmsg returns one record; EAGAIN ends the buffer, EPIPE says a record was
        overwritten while reading (skip on). Never blocks, never raises.
        """
        try:
            fd = os.open(os.path.join(self.root, rel.lstrip('/')), os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return []
        chunks = []
        try:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError as exc:
                    if exc.errno == errno.EPIPE:
                        continue
                    break  # EAGAIN: the end of the buffer
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        return b''.join(chunks).decode('utf-8', 'replace').splitlines()

    def read_bytes(self, rel):
        with open(self.path(rel), 'rb') as handle:
            return handle.read()

    def read_int(self, rel, default=None, base=10):
        text = self.read(rel)
        if text is None or text == '':
            return default
        try:
            return int(text, base)
        except ValueError:
            return default

    def exists(self, rel):
        return os.path.exists(self.path(rel))

    def isdir(self, rel):
        return os.path.isdir(self.path(rel))

    def listdir(self, rel):
        try:
            return sorted(os.listdir(self.path(rel)))
        except (IOError, OSError):
            return []

    def link_name(self, rel):
        """Basename of a symlink's target (driver, iommu_group), or None."""
        try:
            return os.path.basename(os.readlink(self.path(rel)))
        except (IOError, OSError):
            return None

    def realpath(self, rel):
        """Resolved path relative to root, so fake trees resolve like real ones."""
        resolved = os.path.realpath(self.path(rel))
        root = os.path.realpath(self.root)
        if root != '/' and resolved.startswith(root):
            resolved = resolved[len(root):] or '/'
        return resolved

    def open_device_files(self):
        """(pid, comm, key) for every device node a process holds open; key is "b:major:minor" or "c:major:minor"
        on a live host, the node's name in a fake tree (its fd links point at /dev paths that do not exist there)."""
        own = os.getpid()
        for pid in self.listdir('/proc'):
            if not pid.isdigit() or int(pid) == own:
                continue
            fd_dir = self.path('/proc/%s/fd' % pid)
            try:
                fds = os.listdir(fd_dir)
            except (IOError, OSError):
                continue
            comm = None
            for fd in fds:
                link = os.path.join(fd_dir, fd)
                try:
                    target = os.readlink(link)
                except (IOError, OSError):
                    continue
                # Terminals and the null/random nodes every process holds are never a PCI device's.
                if not target.startswith('/dev/') or target.startswith(_COMMON_NODES):
                    continue
                key = os.path.basename(target)
                if self.root == '/':
                    try:
                        st = os.stat(link)
                    except (IOError, OSError):
                        continue
                    if not (stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode)):
                        continue
                    # Block and character numbers are separate spaces: dm's block major is a dynamic char major too.
                    key = '%s:%d:%d' % ('b' if stat.S_ISBLK(st.st_mode) else 'c', os.major(st.st_rdev),
                                        os.minor(st.st_rdev))
                if comm is None:
                    comm = self.read('/proc/%s/comm' % pid, '?')
                yield int(pid), comm, key

    def exclusive_open_busy(self, rel):
        """True when an O_EXCL open of block device ``rel`` fails with EBUSY (mounted, swap, a holder, or a
        kernel user such as a multi-device filesystem); None when it cannot be told. Read-only, closed at once."""
        path = self.path(rel)
        state = self.read('/sys/class/block/%s/device/state' % os.path.basename(rel))
        if state not in (None, 'running', 'live'):
            return None   # a path that is down or resetting would block the open
        try:
            if not stat.S_ISBLK(os.stat(path).st_mode):
                return None
            fd = os.open(path, os.O_RDONLY | os.O_EXCL | os.O_NONBLOCK)
        except (IOError, OSError) as exc:
            return True if exc.errno == errno.EBUSY else None
        os.close(fd)
        return False

    def interface_addresses(self):
        """[{'index', 'address', 'prefix', 'scope'}] of every IPv4/IPv6 address (rtnetlink RTM_GETADDR), None when
        they cannot be read.
        /proc shows no IPv4 addresses; a fake tree provides them as JSON at /.fake/addresses.json."""
        if self.root != '/':
            return self.load_json('/.fake/addresses.json', [])
        try:
            return _netlink_addresses()
        except (IOError, OSError, socket.error, struct.error, ValueError):
            return None   # unknown: the caller must not read it as "no addresses"

    def load_json(self, rel, default):
        try:
            with open(self.path(rel), 'r') as handle:
                return json.load(handle)
        except (IOError, OSError, ValueError):
            return default


class ApplyError(Exception):
    """A write or command failed. Carries the kernel's errno when there is one."""

    def __init__(self, action, errno_value, detail):
        self.action = action
        self.errno = errno_value
        self.errno_name = errno.errorcode.get(errno_value, '') if errno_value else ''
        self.detail = detail
        self.hint = None  # set by an operation that knows better than the errno alone what to do next
        super(ApplyError, self).__init__(action, errno_value, detail)

    def __str__(self):
        # Built when shown: a caller may add to the detail on the way up (the partitions kept before a failure).
        return '%s failed: %s%s' % (self.action, self.detail, ' (%s)' % self.errno_name if self.errno_name else '')


class Transaction:
    """Ordered writes with undo, gated by check mode.

    ``runner`` runs an argv list and returns (rc, stdout, stderr); the module
    passes AnsibleModule.run_command so commands never go through a shell.
    """

    def __init__(self, io, check_mode=False, runner=None):
        self.io = io
        self.check_mode = check_mode
        self.runner = runner
        self.actions = []
        self._undo = []
        self.committed = False

    # -- primitives -------------------------------------------------------
    def _write_now(self, rel, value):
        data = value if isinstance(value, bytes) else str(value).encode()
        try:
            fd = os.open(self.io.path(rel), os.O_WRONLY)
        except OSError as exc:
            raise ApplyError('write %r to %s' % (value, rel), exc.errno, exc.strerror)
        try:
            # One write() call: sysfs attributes take the whole value at once.
            os.write(fd, data)
        except OSError as exc:
            raise ApplyError('write %r to %s' % (value, rel), exc.errno, exc.strerror)
        finally:
            try:
                os.close(fd)
            except OSError:
                pass

    def _run_now(self, argv):
        rc, out, err = self.runner(argv)
        if rc != 0:
            raise ApplyError(' '.join(argv), None, (err or out or 'rc=%d' % rc).strip())
        return out

    # -- planned operations ------------------------------------------------
    def write(self, rel, value, undo=None, retry_errnos=(), retry_timeout=0.0):
        """Write ``value`` to ``rel``; ``undo`` is (rel, value) restoring it, or (rel, value, errnos) where those
        errnos mean the undo has nothing left to do (an unbind answering ENODEV: the probe never bound it).

        EBUSY-style errors listed in ``retry_errnos`` are retried until
        ``retry_timeout`` seconds have passed (memory offlining needs this).
        """
        self.actions.append('write %s <- %s' % (rel, str(value).strip() or "''"))
        if self.check_mode:
            return
        deadline = time.time() + retry_timeout
        delay = 0.2
        while True:
            try:
                self._write_now(rel, value)
                break
            except ApplyError as exc:
                if exc.errno in retry_errnos and time.time() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                raise
        if undo is not None:
            self._undo.append(('write',) + tuple(undo))

    def run(self, argv, undo=None):
        """Run a mutating command (skipped in check mode); ``undo`` is an argv."""
        self.actions.append(' '.join(argv))
        if self.check_mode:
            return ''
        out = self._run_now(argv)
        if undo is not None:
            self._undo.append(('run', undo))
        return out

    def mkdir(self, rel):
        """Create a directory (a Parker partition); undo removes it again."""
        self.actions.append('mkdir %s' % rel)
        if self.check_mode:
            return
        try:
            os.mkdir(self.io.path(rel))
        except OSError as exc:
            raise ApplyError('mkdir %s' % rel, exc.errno, exc.strerror)
        self._undo.append(('rmdir', rel))

    def rmdir(self, rel):
        self.actions.append('rmdir %s' % rel)
        if not self.check_mode:
            self._rmdir_now(rel)

    def _rmdir_now(self, rel):
        try:
            os.rmdir(self.io.path(rel))
        except OSError as exc:
            raise ApplyError('rmdir %s' % rel, exc.errno, exc.strerror)

    def write_blocking(self, rel, value, timeout, on_spawn=None):
        """A write the kernel may block on (Parker's online): give up waiting after ``timeout`` seconds.

        The write runs in a child process of its own session. Parker's online loop
        never checks for signals, so a writer stuck in it can neither be killed nor
        exit; were it a thread of this module, the module could not exit either and
        the Ansible task would hang past the timeout. The child is left stuck, and
        the failure says the kernel may hold its lock until the host is reset.
        ``on_spawn(pid)`` is called before the wait, so a caller killed while waiting has recorded it.
        """
        self.actions.append('write %s <- %s (wait up to %ds)' % (rel, value, timeout))
        if self.check_mode:
            return
        # Not AnsibleModule.run_command (ansible-test >= 2.21 asks for it in module code): run_command
        # waits for its command to exit and has no timeout, and this writer may never exit.
        writer = subprocess.Popen(  # pylint: disable=ansible-bad-function
            [sys.executable, '-c', _BLOCKING_WRITER, self.io.path(rel), str(value)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            close_fds=True, start_new_session=True, cwd='/')
        if on_spawn is not None:
            on_spawn(writer.pid)
        try:
            writer.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ApplyError('write %s to %s' % (value, rel), errno.ETIMEDOUT,
                             'still blocked after %d s; the kernel may hold its lock until the host is reset' % timeout)
        if writer.returncode != 0:
            err = writer.stderr.read().decode('utf-8', 'replace').strip()
            code, _sep, text = err.partition(' ')
            if not code.isdigit():
                code, text = None, err  # not the writer's own report (a crash): keep all of it
            raise ApplyError('write %s to %s' % (value, rel), int(code) if code else None,
                             text or 'writer exited with %d' % writer.returncode)

    def probe(self, argv):
        """Run a read-only command; it runs in check mode too. Returns (rc, out, err)."""
        return self.runner(argv)

    def _replace_file(self, rel, text, mode, dir_mode):
        """Write ``text`` beside ``rel`` and rename it into place, so readers never see half a file."""
        path = self.io.path(rel)
        tmp = path + '.parker-kernel.tmp'
        try:
            directory = os.path.dirname(path)
            if not os.path.isdir(directory):
                os.makedirs(directory, dir_mode)
            if mode is None:
                try:
                    mode = os.stat(path).st_mode & 0o7777
                except OSError:
                    mode = 0o644
            with open(tmp, 'w') as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.rename(tmp, path)
            # The rename itself must reach the disk too: a reset now leaves the old file or the new, never neither.
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            except OSError as exc:
                if exc.errno != errno.EINVAL:   # some filesystems cannot fsync a directory; the rename is done
                    raise
            finally:
                os.close(dir_fd)
        except OSError as exc:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise ApplyError('write %s' % rel, exc.errno, exc.strerror)

    def save_json(self, rel, data, undo=False):
        """Replace a collection state file (under /run).

        With ``undo`` a rollback puts back what the file held before (or removes it), so a
        failed run leaves no record of what it did not build; without, the record stays.
        """
        self.actions.append('save state %s' % rel)
        if self.check_mode:
            return
        before = None
        if undo:
            try:
                with open(self.io.path(rel), 'r') as handle:
                    before = handle.read()
            except (IOError, OSError):
                before = None
        self._replace_file(rel, json.dumps(data, indent=1, sort_keys=True), 0o600, 0o700)
        if undo:
            self._undo.append(('file', rel, before))

    def write_file(self, rel, text, undo_text=None, mode=0o644):
        """Replace a regular file; undo restores ``undo_text`` or removes it."""
        self.actions.append('write file %s' % rel)
        if not self.check_mode:
            # Recorded first: a failure after the rename (the directory fsync) is still undone.
            self._undo.append(('file', rel, undo_text))
            self._replace_file(rel, text, mode, 0o755)

    def remove_file(self, rel, undo_text):
        """Remove a regular file; undo writes ``undo_text`` back with the file's mode."""
        self.actions.append('remove file %s' % rel)
        if not self.check_mode:
            try:
                mode = os.stat(self.io.path(rel)).st_mode & 0o7777
                os.remove(self.io.path(rel))
            except OSError as exc:
                raise ApplyError('remove %s' % rel, exc.errno, exc.strerror)
            self._undo.append(('file', rel, undo_text, mode))

    def rollback(self):
        """Undo completed operations in reverse order; return what could not be undone."""
        failures = []
        while self._undo:
            step = self._undo.pop()
            try:
                if step[0] == 'write':
                    try:
                        self._write_now(step[1], step[2])
                    except ApplyError as exc:
                        if exc.errno not in (step[3] if len(step) > 3 else ()):
                            raise
                elif step[0] == 'file':
                    self._restore_file(*step[1:])
                elif step[0] == 'rmdir':
                    self._rmdir_now(step[1])
                else:
                    self._run_now(step[1])
            except ApplyError as exc:
                failures.append(str(exc))
        return failures

    def _restore_file(self, rel, text, mode=None):
        if text is not None:
            self._replace_file(rel, text, mode, 0o755)   # mode None keeps the file's own mode
            return
        try:
            os.remove(self.io.path(rel))
        except OSError as exc:
            raise ApplyError('restore %s' % rel, exc.errno, exc.strerror)

    def on_rollback(self, argv):
        """Register a command to run during rollback, after the undo steps registered later."""
        if not self.check_mode:
            self._undo.append(('run', argv))

    def discard_undo(self):
        """Forget the undo steps: used when undoing would do more harm than the failure."""
        self._undo = []

    def commit(self):
        """End a unit of work: what was done stays even if a later unit fails and is rolled back."""
        if not self.check_mode and self.actions:
            self.committed = True
        self._undo = []

    def has_undo(self):
        return bool(self._undo)

    @property
    def changed(self):
        return bool(self.actions)
