# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Glue shared by every module: facts -> plan -> apply -> verify, with one failure path."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import sys

from ansible_collections.parker.kernel.plugins.module_utils._hostio import HostIO, Transaction, ApplyError
from ansible_collections.parker.kernel.plugins.module_utils._state import PARKER_ROOT


# What to do next, by the errno the kernel gave.
ERRNO_HINTS = {
    'EBUSY': 'the kernel could not release it now (pages in use, a driver holding the device); '
             'pick other resources or retry when the host is quieter',
    'EINVAL': 'the kernel rejected the value; re-gather facts: the resource may span holes or zones, '
              'or the running kernel may not support this operation',
    'EPERM': 'run the task as root (become: true); kernel lockdown can also forbid this',
    'EACCES': 'run the task as root (become: true)',
    'ENODEV': 'the device or driver disappeared; re-gather facts',
    'ENOENT': 'the file is missing: this kernel lacks the feature, or the filesystem holding it is not mounted '
              '(check partition_facts kernel.config and parker.mounted)',
    'ENOMEM': 'the kernel is short of memory; free caches or choose less',
    'EAGAIN': 'the kernel asked to retry; run the task again',
}


# Options of the parker.kernel.attributes.SAFETY doc fragment, for every module that extends it.
SAFETY_ARGUMENT_SPEC = dict(
    force=dict(type='bool', default=False),
    parker_root=dict(type='path', default=PARKER_ROOT),
)


# The oldest Python the modules run on (tests/config.yml): they need Python 3's gzip.decompress,
# subprocess.DEVNULL and Popen(start_new_session=True) / wait(timeout).
OLDEST_TARGET_PYTHON = (3, 6)


def require_target_python(module, version=None):
    """Refuse, before reading the host, a managed node whose Python is older than the floor."""
    version = tuple(version or sys.version_info[:3])
    if version[:2] < OLDEST_TARGET_PYTHON:
        module.fail_json(
            msg='parker.kernel modules need Python %d.%d or later on the managed node, and %s here is Python %s; '
                'set ansible_python_interpreter to a Python 3 on this host (for example /usr/bin/python3)'
                % (OLDEST_TARGET_PYTHON + (sys.executable or 'the interpreter', '.'.join(str(v) for v in version))),
            changed=False, writes=0)


class Refused(Exception):
    """The request was refused during validation: nothing has been written."""

    def __init__(self, msg, **details):
        self.msg = msg
        self.details = details
        super(Refused, self).__init__(msg)


def refuse_all(problems):
    """Raise one Refused listing every problem, so a user fixes them in one pass."""
    if problems:
        if len(problems) == 1:
            raise Refused(problems[0], problems=problems)
        raise Refused('refused, nothing was changed: ' + '; '.join(problems), problems=problems)


def diff_of(header, before, after):
    return {'before_header': header, 'after_header': header,
            'before': before if before.endswith('\n') else before + '\n',
            'after': after if after.endswith('\n') else after + '\n'}


def execute(module, operation, root='/'):
    """Run ``operation(params, io, txn)`` and exit the module with its result.

    ``operation`` validates everything before its first ``txn`` call and returns
    the result dict. On a refusal nothing was written; on an ApplyError the
    transaction is rolled back before failing, with the kernel's errno.
    """
    require_target_python(module)
    io = HostIO(root)

    def runner(argv):
        # handle_exceptions=False: a missing executable must reach our rollback, not fail_json directly.
        try:
            return module.run_command(argv, environ_update={'LC_ALL': 'C', 'LANG': 'C'}, handle_exceptions=False)
        except OSError as exc:
            return 127, '', '%s: %s' % (argv[0], exc.strerror)
    txn = Transaction(io, check_mode=module.check_mode, runner=runner)
    try:
        try:
            result = operation(module.params, io, txn)
        except OSError as exc:
            raise ApplyError(getattr(exc, 'filename', None) or 'file operation', exc.errno, exc.strerror)
    except Refused as exc:
        if txn.has_undo():
            # A refusal after the first write is a bug in the plan's ordering; never leave the host half-changed.
            failures = txn.rollback()
            undone = ('what this step had done' if txn.committed else 'every earlier change') if not failures \
                else 'partly, FAILED for: ' + '; '.join(failures)
            module.fail_json(msg='%s; rolled back %s' % (exc.msg, undone), changed=bool(failures) or txn.committed,
                             actions=txn.actions, rollback_failures=failures)
        if txn.committed:   # units of work done before the refusal stay (a started partition cannot be undone)
            module.fail_json(msg=exc.msg, changed=True, actions=txn.actions, **exc.details)
        module.fail_json(msg=exc.msg, changed=False, writes=0, **exc.details)
    except ApplyError as exc:
        had_undo = txn.has_undo()
        failures = txn.rollback()
        msg = str(exc)
        if had_undo:
            msg += '; ' + (('rolled back what this step had done' if txn.committed else 'rolled back every earlier '
                            'change') if not failures else 'rollback FAILED for: ' + '; '.join(failures))
        hint = getattr(exc, 'hint', None) or ERRNO_HINTS.get(exc.errno_name)
        if hint:
            msg += '. Hint: ' + hint
        # left_in_place: the operation chose not to undo (a start that timed out): the host did change.
        module.fail_json(msg=msg, changed=bool(failures) or getattr(exc, 'left_in_place', False) or txn.committed,
                         errno=exc.errno, errno_name=exc.errno_name,
                         actions=txn.actions, rollback_failures=failures)
    result.setdefault('changed', txn.changed)
    result['actions'] = txn.actions
    # Warnings go through module.warn: Ansible shows them, and the result carries no 'warnings' key of its own.
    for warning in result.pop('warnings', None) or []:
        module.warn(warning)
    module.exit_json(**result)
