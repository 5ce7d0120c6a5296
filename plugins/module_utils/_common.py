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

from ansible_collections.parker.kernel.plugins.module_utils._hostio import HostIO, Transaction, ApplyError


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
    io = HostIO(root)
    txn = Transaction(io, check_mode=module.check_mode,
                      runner=lambda argv: module.run_command(argv, environ_update={'LC_ALL': 'C', 'LANG': 'C'}))
    try:
        result = operation(module.params, io, txn)
    except Refused as exc:
        module.fail_json(msg=exc.msg, changed=False, writes=0, **exc.details)
    except ApplyError as exc:
        failures = txn.rollback()
        msg = '%s; %s' % (exc, 'rolled back every earlier change' if not failures
                          else 'rollback FAILED for: ' + '; '.join(failures))
        module.fail_json(msg=msg, changed=bool(failures), errno=exc.errno, errno_name=exc.errno_name,
                         actions=txn.actions, rollback_failures=failures)
    result.setdefault('changed', txn.changed)
    result['actions'] = txn.actions
    module.exit_json(**result)
