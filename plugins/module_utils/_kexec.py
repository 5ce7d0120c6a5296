# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Loading and unloading kexec images through kexec-tools, for parker.kernel.kexec_load and the partition start.

The kernel cannot say which image is loaded, only that one is. A digest of
kernel, initrd, command line and placement is kept under /run (_state.kexec_slot),
where it dies with the kernel that holds the image, and compared with kexec_loaded.
``plan_load`` is pure: it takes the facts ``slot_facts`` read. ``load`` and
``unload`` are the typed calls every caller uses.
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
from ansible_collections.parker.kernel.plugins.module_utils import _facts, _state

KEXEC_PATHS = ('/usr/sbin/kexec', '/sbin/kexec', '/usr/bin/kexec', '/usr/local/sbin/kexec')
LOCKED = ('integrity', 'confidentiality')


def find_kexec(io):
    """The kexec-tools binary on the host, or None."""
    return next((p for p in KEXEC_PATHS if io.exists(p)), None)


def slot_facts(io, kind='normal', files=()):
    """What a load or unload is planned against: kexec_facts, the binary, our record of the slot, and
    whether each of ``files`` (kernel, initrd) is a regular file."""
    facts = dict(_facts.kexec_facts(io))
    facts.update(bin=find_kexec(io), record=_state.load(io, _state.kexec_slot(kind)),
                 files=dict((f, io.exists(f) and not io.isdir(f)) for f in files if f))
    return facts


def final_cmdline(cmdline, add, remove, reuse, running_tokens, machine=None):
    """The line to load, checked by the rules of every command line the collection writes (_render.check_tokens)
    before kexec-tools sees it: a newline would otherwise become a separator, an overlong line be cut."""
    try:
        check_no_control('cmdline', cmdline or '')
        for token in add or []:
            check_no_control('cmdline_add entry', token)
        if reuse:
            base = [t for t in running_tokens if t.split('=', 1)[0] not in BOOTLOADER_TOKENS]
        else:
            base = split_cmdline(cmdline or '')
        tokens = merge_tokens(base, add or [], remove or [])
        check_tokens(tokens, machine, 'kexec command line', trusted=running_tokens if reuse else ())
    except RenderError as exc:
        raise Refused('cmdline refused before kexec ran: %s' % exc)
    return ' '.join(tokens)


def plan_load(kernel, initrd, kind, method, mem_min, mem_max, facts):
    """(method, {'mem_min', 'mem_max'} in bytes) for a load, or Refused listing every problem (pure)."""
    problems = []
    if not facts['bin']:
        problems.append('kexec-tools is not installed on this host (no kexec in %s)' % ', '.join(KEXEC_PATHS))
    if facts['kexec_load_disabled']:
        problems.append('/proc/sys/kernel/kexec_load_disabled is 1: kexec is disabled until the next reboot')
    for key, path in (('kernel', kernel), ('initrd', initrd)):
        if path and not facts['files'].get(path):
            problems.append('%s %s does not exist or is not a file' % (key, path))
    if kind == 'crash' and not facts['crash_size']:
        problems.append('type=crash needs a crashkernel= reservation; /sys/kernel/kexec_crash_size is 0')
    limits = {}
    for key, value in (('mem_min', mem_min), ('mem_max', mem_max)):
        if value is not None:
            try:
                limits[key] = memparse(value)
            except SizeError as exc:
                problems.append('%s: %s' % (key, exc))
    if 'mem_min' in limits and 'mem_max' in limits and limits['mem_min'] > limits['mem_max']:
        problems.append('mem_min 0x%x is above mem_max 0x%x' % (limits['mem_min'], limits['mem_max']))
    if limits:
        # kexec_file_load lets the kernel place segments; only kexec_load honours placement limits.
        if method == 'file':
            problems.append('mem_min/mem_max need the kexec_load syscall; use method legacy or auto')
        method = 'legacy'
    if facts['lockdown'] in LOCKED:
        if method == 'legacy':
            problems.append('kernel lockdown is %s: the kexec_load syscall is refused; use method file with a '
                            'signed kernel%s' % (facts['lockdown'], ' (mem_min/mem_max cannot be honoured)'
                                                 if limits else ''))
        method = 'file'
    refuse_all(problems)
    return method, limits


def unload_argv(kexec_bin, kind, file_syscall=False):
    return [kexec_bin] + (['-p'] if kind == 'crash' else []) + (['-s'] if file_syscall else []) + ['-u']


def load_argv(kexec_bin, kernel, initrd, kind, method, cmdline, limits):
    argv = [kexec_bin, '-p' if kind == 'crash' else '-l', '-s' if method == 'file' else '-c']
    if initrd:
        argv.append('--initrd=%s' % initrd)
    argv.append('--command-line=%s' % cmdline)
    for key in ('mem_min', 'mem_max'):
        if key in limits:
            argv.append('--%s=0x%x' % (key.replace('_', '-'), limits[key]))
    argv.append(kernel)
    return argv


def _digest(io, kernel, initrd, kind, cmdline, limits):
    digest = hashlib.sha256()
    for rel in (kernel, initrd):
        digest.update(b'\0')
        if rel:
            with open(io.path(rel), 'rb') as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b''):
                    digest.update(chunk)
    digest.update(('\0%s\0%s\0%s' % (kind, cmdline, limits)).encode())
    return digest.hexdigest()


def _loaded_key(kind):
    return 'crash_loaded' if kind == 'crash' else 'loaded'


def load(io, txn, facts, kernel, initrd, cmdline, kind='normal', method='auto', mem_min=None, mem_max=None):
    """Load ``kernel`` into the slot unless the same image is there; returns the module's result fields."""
    method, limits = plan_load(kernel, initrd, kind, method, mem_min, mem_max, facts)
    is_loaded, saved = facts[_loaded_key(kind)], facts['record']
    limit_text = ','.join('%s=0x%x' % kv for kv in sorted(limits.items()))
    digest = _digest(io, kernel, initrd, kind, cmdline, limit_text)
    wanted = {'digest': digest, 'kernel': kernel, 'initrd': initrd, 'cmdline': cmdline, 'limits': limit_text}
    result = {'loaded': True, 'type': kind, 'cmdline': cmdline, 'digest': digest, 'kernel': kernel, 'initrd': initrd}
    if is_loaded and saved.get('digest') == digest:
        result.update(changed=False, method=saved.get('method'),
                      diff=diff_of('kexec %s slot' % kind, _describe(saved), _describe(saved)))
        return result
    # Undo a load only when the slot was empty: an unknown earlier image cannot be restored.
    undo = unload_argv(facts['bin'], kind) if not is_loaded else None
    used = method
    if method == 'auto':
        try:
            txn.run(load_argv(facts['bin'], kernel, initrd, kind, 'file', cmdline, limits), undo=undo)
            used = 'file'
        except ApplyError:
            # kexec_file_load refuses some images (unsigned under KEXEC_SIG_FORCE, odd formats); try kexec_load.
            txn.run(load_argv(facts['bin'], kernel, initrd, kind, 'legacy', cmdline, limits), undo=undo)
            used = 'legacy'
    else:
        txn.run(load_argv(facts['bin'], kernel, initrd, kind, method, cmdline, limits), undo=undo)
    wanted['method'] = used
    txn.save_json(_state.kexec_slot(kind), wanted)
    _verify(io, txn, kind, True)
    result.update(changed=True, method=used, previous=saved.get('digest'),
                  diff=diff_of('kexec %s slot' % kind, _describe(saved) if is_loaded else 'empty', _describe(wanted)))
    return result


def unload(io, txn, facts, kind='normal'):
    """Empty the slot; returns the module's result fields."""
    saved = facts['record']
    if not facts[_loaded_key(kind)]:
        return {'changed': False, 'loaded': False, 'type': kind,
                'diff': diff_of('kexec %s slot' % kind, 'empty', 'empty')}
    if not facts['bin']:
        raise Refused('kexec-tools is not installed on this host')
    txn.run(unload_argv(facts['bin'], kind, facts['lockdown'] in LOCKED or saved.get('method') == 'file'))
    txn.save_json(_state.kexec_slot(kind), {})
    _verify(io, txn, kind, False)
    return {'changed': True, 'loaded': False, 'type': kind, 'previous': saved.get('digest'),
            'diff': diff_of('kexec %s slot' % kind, _describe(saved), 'empty')}


def run_kexec_load(params, io, txn):
    """parker.kernel.kexec_load: its options mapped onto load() and unload()."""
    kind = params['type']
    facts = slot_facts(io, kind, (params['kernel'], params['initrd']))
    if params['state'] == 'unloaded':
        return unload(io, txn, facts, kind)
    cmdline = final_cmdline(params['cmdline'], params['cmdline_add'], params['cmdline_remove'],
                            params['reuse_cmdline'], _facts.running_cmdline(io), os.uname()[4])
    return load(io, txn, facts, params['kernel'], params['initrd'], cmdline, kind, params['method'],
                params['mem_min'], params['mem_max'])


def _describe(state):
    if not state:
        return 'unknown image (not loaded by parker.kernel)'
    return 'kernel=%s\ninitrd=%s\ncmdline=%s\nlimits=%s\ndigest=%s' % (
        state.get('kernel'), state.get('initrd'), state.get('cmdline'), state.get('limits'), state.get('digest'))


def _verify(io, txn, kind, expected):
    if txn.check_mode:
        return
    key = _loaded_key(kind)
    if _facts.kexec_facts(io)[key] != expected:
        raise ApplyError('verify /sys/kernel/kexec_%s' % key, None,
                         'kexec reported success but the kernel says %s=%d' % (key, not expected))
