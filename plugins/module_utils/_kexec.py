# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Loading and unloading kexec images through kexec-tools, for parker.kernel.kexec_load.

The kernel cannot say which image is loaded, only that one is. A digest of
kernel, initrd, command line and placement is kept under /run, where it dies
with the kernel that holds the image, and compared with kexec_loaded.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os

from ansible_collections.parker.kernel.plugins.module_utils._cmdline import split_cmdline, merge_tokens, memparse, \
    SizeError, BOOTLOADER_TOKENS
from ansible_collections.parker.kernel.plugins.module_utils._common import Refused, refuse_all, diff_of
from ansible_collections.parker.kernel.plugins.module_utils._hostio import ApplyError
from ansible_collections.parker.kernel.plugins.module_utils._render import check_no_control, check_tokens, RenderError
from ansible_collections.parker.kernel.plugins.module_utils import _facts

KEXEC_PATHS = ('/usr/sbin/kexec', '/sbin/kexec', '/usr/bin/kexec', '/usr/local/sbin/kexec')
LOCKED = ('integrity', 'confidentiality')


def state_file(kind):
    return '%s/kexec-%s.json' % (_facts.STATE_DIR, kind)


def final_cmdline(params, running_tokens, machine=None):
    """The line to load, checked by the rules of every command line the collection writes (_render.check_tokens)
    before kexec-tools sees it: a newline would otherwise become a separator, an overlong line be cut."""
    try:
        check_no_control('cmdline', params['cmdline'] or '')
        for token in params['cmdline_add'] or []:
            check_no_control('cmdline_add entry', token)
        if params['reuse_cmdline']:
            base = [t for t in running_tokens if t.split('=', 1)[0] not in BOOTLOADER_TOKENS]
        else:
            base = split_cmdline(params['cmdline'] or '')
        tokens = merge_tokens(base, params['cmdline_add'] or [], params['cmdline_remove'] or [])
        check_tokens(tokens, machine, 'kexec command line', trusted=running_tokens if params['reuse_cmdline'] else ())
    except RenderError as exc:
        raise Refused('cmdline refused before kexec ran: %s' % exc)
    return ' '.join(tokens)


def _digest(io, params, cmdline, limits):
    digest = hashlib.sha256()
    for rel in (params['kernel'], params['initrd']):
        digest.update(b'\0')
        if rel:
            with open(io.path(rel), 'rb') as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b''):
                    digest.update(chunk)
    digest.update(('\0%s\0%s\0%s' % (params['type'], cmdline, limits)).encode())
    return digest.hexdigest()


def plan_load(params, io, kexec, kexec_bin):
    problems = []
    locked = kexec['lockdown'] in LOCKED
    if not kexec_bin:
        problems.append('kexec-tools is not installed on this host (no kexec in %s)' % ', '.join(KEXEC_PATHS))
    if kexec['kexec_load_disabled']:
        problems.append('/proc/sys/kernel/kexec_load_disabled is 1: kexec is disabled until the next reboot')
    for key in ('kernel', 'initrd'):
        path = params[key]
        if path and not (io.exists(path) and not io.isdir(path)):
            problems.append('%s %s does not exist or is not a file' % (key, path))
    if params['type'] == 'crash' and not kexec['crash_size']:
        problems.append('type=crash needs a crashkernel= reservation; /sys/kernel/kexec_crash_size is 0')
    limits = {}
    for key in ('mem_min', 'mem_max'):
        if params[key] is not None:
            try:
                limits[key] = memparse(params[key])
            except SizeError as exc:
                problems.append('%s: %s' % (key, exc))
    if 'mem_min' in limits and 'mem_max' in limits and limits['mem_min'] > limits['mem_max']:
        problems.append('mem_min 0x%x is above mem_max 0x%x' % (limits['mem_min'], limits['mem_max']))
    method = params['method']
    if limits:
        # kexec_file_load lets the kernel place segments; only kexec_load honours placement limits.
        if method == 'file':
            problems.append('mem_min/mem_max need the kexec_load syscall; use method legacy or auto')
        method = 'legacy'
    if locked:
        if method == 'legacy':
            problems.append('kernel lockdown is %s: the kexec_load syscall is refused; use method file with a '
                            'signed kernel%s' % (kexec['lockdown'], ' (mem_min/mem_max cannot be honoured)'
                                                 if limits else ''))
        method = 'file'
    refuse_all(problems)
    return method, limits


def unload_argv(kexec_bin, kind, file_syscall=False):
    return [kexec_bin] + (['-p'] if kind == 'crash' else []) + (['-s'] if file_syscall else []) + ['-u']


def kexec_argv(kexec_bin, params, method, cmdline, limits):
    argv = [kexec_bin, '-p' if params['type'] == 'crash' else '-l', '-s' if method == 'file' else '-c']
    if params['initrd']:
        argv.append('--initrd=%s' % params['initrd'])
    argv.append('--command-line=%s' % cmdline)
    for key in ('mem_min', 'mem_max'):
        if key in limits:
            argv.append('--%s=0x%x' % (key.replace('_', '-'), limits[key]))
    argv.append(params['kernel'])
    return argv


def find_kexec(io):
    """The kexec-tools binary on the host, or None."""
    return next((p for p in KEXEC_PATHS if io.exists(p)), None)


def run_kexec_load(params, io, txn):
    kexec = _facts.kexec_facts(io)
    kind = params['type']
    loaded_key = 'crash_loaded' if kind == 'crash' else 'loaded'
    is_loaded = kexec[loaded_key]
    saved = io.load_json(state_file(kind), {})
    kexec_bin = find_kexec(io)

    if params['state'] == 'unloaded':
        if not is_loaded:
            return {'changed': False, 'loaded': False, 'type': kind,
                    'diff': diff_of('kexec %s slot' % kind, 'empty', 'empty')}
        if not kexec_bin:
            raise Refused('kexec-tools is not installed on this host')
        locked = kexec['lockdown'] in LOCKED or saved.get('method') == 'file'
        txn.run(unload_argv(kexec_bin, kind, locked))
        txn.save_json(state_file(kind), {})
        _verify(io, txn, loaded_key, False)
        return {'changed': True, 'loaded': False, 'type': kind, 'previous': saved.get('digest'),
                'diff': diff_of('kexec %s slot' % kind, _describe(saved), 'empty')}

    method, limits = plan_load(params, io, kexec, kexec_bin)
    cmdline = final_cmdline(params, _facts.running_cmdline(io), os.uname()[4])
    limit_text = ','.join('%s=0x%x' % kv for kv in sorted(limits.items()))
    digest = _digest(io, params, cmdline, limit_text)
    wanted = {'digest': digest, 'kernel': params['kernel'], 'initrd': params['initrd'], 'cmdline': cmdline,
              'limits': limit_text}
    result = {'loaded': True, 'type': kind, 'cmdline': cmdline, 'digest': digest, 'kernel': params['kernel'],
              'initrd': params['initrd']}
    if is_loaded and saved.get('digest') == digest:
        result.update(changed=False, method=saved.get('method'),
                      diff=diff_of('kexec %s slot' % kind, _describe(saved), _describe(saved)))
        return result

    # Undo a load only when the slot was empty: an unknown earlier image cannot be restored.
    undo = unload_argv(kexec_bin, kind) if not is_loaded else None
    used = method
    if method == 'auto':
        try:
            txn.run(kexec_argv(kexec_bin, params, 'file', cmdline, limits), undo=undo)
            used = 'file'
        except ApplyError:
            # kexec_file_load refuses some images (unsigned under KEXEC_SIG_FORCE, odd formats); try kexec_load.
            txn.run(kexec_argv(kexec_bin, params, 'legacy', cmdline, limits), undo=undo)
            used = 'legacy'
    else:
        txn.run(kexec_argv(kexec_bin, params, method, cmdline, limits), undo=undo)
    wanted['method'] = used
    txn.save_json(state_file(kind), wanted)
    _verify(io, txn, loaded_key, True)
    result.update(changed=True, method=used, previous=saved.get('digest'),
                  diff=diff_of('kexec %s slot' % kind, _describe(saved) if is_loaded else 'empty', _describe(wanted)))
    return result


def _describe(state):
    if not state:
        return 'unknown image (not loaded by parker.kernel)'
    return 'kernel=%s\ninitrd=%s\ncmdline=%s\nlimits=%s\ndigest=%s' % (
        state.get('kernel'), state.get('initrd'), state.get('cmdline'), state.get('limits'), state.get('digest'))


def _verify(io, txn, loaded_key, expected):
    if txn.check_mode:
        return
    if _facts.kexec_facts(io)[loaded_key] != expected:
        raise ApplyError('verify /sys/kernel/kexec_%s' % loaded_key, None,
                         'kexec reported success but the kernel says %s=%d' % (loaded_key, not expected))
