# -*- coding: utf-8 -*-
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module util is PRIVATE to the parker.kernel collection.
# It can have breaking changes at any time.

"""Render kernel command lines from layered, structured inventory (pure).

Used on the controller by the cmdline filters and on the host by the modules
that persist or load command lines, so both see the same tokens.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.parker.kernel.plugins.module_utils._cpulist import parse_cpus, format_cpulist, CpulistError
from ansible_collections.parker.kernel.plugins.module_utils._cmdline import format_memmap, token_key

_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.\-]*\Z')
_BAD_VALUE = re.compile(r'[\s"\'`\\;|&<>]')
# Keys the kernel reads more than once; every other key keeps its last value only.
REPEATABLE = ('memmap', 'console', 'ip')
# Only memmap= legitimately carries '$' (reserved ranges); persisting escapes it for GRUB.
DOLLAR_OK = ('memmap',)

# Settings every kernel on one machine shares: the Parker review thread's list
# (split-lock, WBINVD, resctrl, microcode, IOMMU, TSC/clocksource, mitigations).
SYSTEM_WIDE = {
    'split_lock_detect': 'split-lock detection',
    'rdt': 'resctrl (RDT/CAT)',
    'dis_ucode_ldr': 'microcode loading',
    'intel_iommu': 'IOMMU mode', 'amd_iommu': 'IOMMU mode', 'iommu': 'IOMMU mode',
    'iommu.passthrough': 'IOMMU mode', 'iommu.strict': 'IOMMU mode',
    'tsc': 'TSC', 'clocksource': 'clocksource',
    'mitigations': 'mitigations', 'spectre_v2': 'mitigations', 'spectre_v1': 'mitigations',
    'nospectre_v1': 'mitigations', 'nospectre_v2': 'mitigations', 'pti': 'mitigations', 'nopti': 'mitigations',
    'mds': 'mitigations', 'l1tf': 'mitigations', 'retbleed': 'mitigations', 'tsx': 'mitigations',
    'tsx_async_abort': 'mitigations', 'srbds': 'mitigations', 'mmio_stale_data': 'mitigations',
    'gather_data_sampling': 'mitigations', 'spec_store_bypass_disable': 'mitigations',
    'spectre_bhi': 'mitigations', 'reg_file_data_sampling': 'mitigations',
}


# The kernel keeps at most COMMAND_LINE_SIZE - 1 bytes of its line and drops the rest without a word.
COMMAND_LINE_SIZE = {'x86_64': 2048, 'i686': 2048, 'aarch64': 2048, 'armv7l': 1024, 'ppc64le': 2048,
                     's390x': 4096, 'riscv64': 1024}
DEFAULT_COMMAND_LINE_SIZE = 2048
_CONTROL = re.compile(r'[\x00-\x1f\x7f]')


class RenderError(ValueError):
    pass


def check_no_control(what, text):
    """A newline or another control character would silently become a separator or cut the line."""
    text = text if isinstance(text, type(u'')) else '%s' % (text,)   # unicode on Python 2: never str() it
    if _CONTROL.search(text):
        raise RenderError('%s %r holds a newline or another control character' % (what, text))


def check_tokens(tokens, machine=None, what='command line', trusted=()):
    """The rules every value that becomes a kernel command line follows (boot_cmdline's): parameter names,
    no control characters, no quotes or shell metacharacters ("$" only in memmap=), and the whole line
    within the architecture's COMMAND_LINE_SIZE. ``trusted`` tokens (read from the running kernel's own
    line) count toward the length only. Raises RenderError listing every problem."""
    problems = []
    for token in tokens:
        if token in trusted:
            continue
        name, sep, value = ('%s' % (token,)).partition('=')
        try:
            check_no_control('token', token)
            if not _NAME.match(name):
                raise RenderError('%r is not a kernel parameter name' % name)
            if sep:
                _check_value(name, value)
        except RenderError as exc:
            problems.append(str(exc))
    limit = COMMAND_LINE_SIZE.get(machine, DEFAULT_COMMAND_LINE_SIZE)
    length = len(u' '.join(u'%s' % (t,) for t in tokens).encode('utf-8'))
    if length > limit - 1:
        problems.append('the %s is %d bytes; the kernel keeps only %d on %s (COMMAND_LINE_SIZE %d) and would '
                        'drop the rest' % (what, length, limit - 1, machine or 'this architecture', limit))
    if problems:
        raise RenderError('; '.join(problems))
    return list(tokens)


def _check_value(name, value):
    if value is None or isinstance(value, bool):
        raise RenderError('%s: value %r is a YAML boolean or null; quote it (e.g. "on", "off", "1")'
                          % (name, value))
    if isinstance(value, (list, dict)):
        raise RenderError('%s: value must be a string or a number, not %s' % (name, type(value).__name__))
    text = str(value)
    check_no_control(name, text)
    if text == '':
        raise RenderError('%s: empty value; use a bare flag (value omitted) or state: absent' % name)
    if _BAD_VALUE.search(text):
        raise RenderError('%s=%s: spaces, quotes, backslashes and shell metacharacters would break the '
                          'command line' % (name, text))
    if '$' in text and name not in DOLLAR_OK:
        raise RenderError('%s=%s: "$" is only valid in memmap=; GRUB would expand it as a variable' % (name, text))
    return text


def arg_token(arg):
    """One {name, value?, state?} entry -> 'name' or 'name=value' (validated)."""
    if not isinstance(arg, dict) or 'name' not in arg:
        raise RenderError('each argument needs a name: %r' % (arg,))
    name = arg['name']
    if not isinstance(name, str) or not _NAME.match(name) or _CONTROL.search(name):
        raise RenderError('argument name %r is not a kernel parameter name' % (name,))
    if arg.get('state', 'present') not in ('present', 'absent'):
        raise RenderError('%s: state must be present or absent, not %r' % (name, arg.get('state')))
    if 'value' not in arg:
        return name
    return '%s=%s' % (name, _check_value(name, arg['value']))


def merge_layers(*layers):
    """Combine lists of {name, value, state} by name; later layers win.

    Repeatable keys (memmap=, console=) accumulate distinct values instead.
    Returns the combined list in first-seen order.
    """
    combined, order = {}, []
    for layer in layers:
        for arg in layer or []:
            if not isinstance(arg, dict) or 'name' not in arg:
                raise RenderError('each argument needs a name: %r' % (arg,))
            key = arg['name']
            if key in REPEATABLE and arg.get('state', 'present') == 'present':
                key = '%s=%s' % (arg['name'], arg.get('value'))
            if key not in combined:
                order.append(key)
            combined[key] = arg
    return [combined[k] for k in order]


def render(args):
    """Validated, de-duplicated tokens to have present, and keys/tokens to remove."""
    present, absent, problems = [], [], []
    for arg in args:
        try:
            token = arg_token(arg)
        except RenderError as exc:
            problems.append(str(exc))
            continue
        if arg.get('state', 'present') == 'absent':
            absent.append(token)
        elif token not in present:
            present.append(token)
    if problems:
        raise RenderError('; '.join(problems))
    seen = {}
    for token in present:
        key = token_key(token)
        if key in seen and key not in REPEATABLE:
            raise RenderError('%s given twice with different values (%s and %s)' % (key, seen[key], token))
        seen[key] = token
    return {'present': present, 'absent': absent}


def reservation_args(reservations):
    """parker_cma / memmap / crashkernel / extra reservation dict -> argument entries."""
    args = []
    for key in ('parker_cma', 'crashkernel', 'mkkernel_pool', 'movablecore', 'kernelcore'):
        if reservations.get(key) is not None:
            args.append({'name': key, 'value': reservations[key]})
    for entry in reservations.get('memmap') or []:
        args.append({'name': 'memmap', 'value': entry})
    return args


def isolation_args(partition_cpus, possible, flags=('nohz_full', 'rcu_nocbs', 'isolcpus'),
                   isolcpus_flags='domain,managed_irq'):
    """Boot Kernel tuning for the CPUs partitions will take: isolate them, keep IRQs on the rest."""
    try:
        isolated = parse_cpus(partition_cpus) if partition_cpus not in (None, '', []) else set()
        everything = parse_cpus(possible)
    except CpulistError as exc:
        raise RenderError('isolation: %s' % exc)
    if not isolated:
        return []
    if not isolated <= everything:
        raise RenderError('isolation: CPUs %s are outside the host (%s)'
                          % (format_cpulist(isolated - everything), format_cpulist(everything)))
    housekeeping = everything - isolated
    if not housekeeping:
        raise RenderError('isolation: partitions take every CPU; the Boot Kernel needs housekeeping CPUs')
    cpus = format_cpulist(isolated)
    args = []
    for flag in flags:
        value = '%s,%s' % (isolcpus_flags, cpus) if flag == 'isolcpus' and isolcpus_flags else cpus
        args.append({'name': flag, 'value': value})
    args.append({'name': 'irqaffinity', 'value': format_cpulist(housekeeping)})
    return args


def ip_value(spec):
    """{address: 192.0.2.10/24, gateway, hostname, iface} -> the kernel's ip=addr::gw:netmask:host:iface:off value.

    The standard library's ipaddress, so the modules render it on the host as the filter does on the controller.
    """
    import ipaddress   # Python 3 only, like the modules that call this
    try:
        interface = ipaddress.ip_interface(u'%s' % spec['address'])
        gateway = ipaddress.ip_address(u'%s' % spec['gateway']) if spec.get('gateway') else ''
    except (KeyError, ValueError, TypeError) as exc:
        raise RenderError('ip: %s' % exc)
    if interface.version != 4 or (gateway and gateway.version != 4):
        raise RenderError('ip: the kernel ip= parameter takes IPv4 addresses only')
    for key in ('hostname', 'iface'):
        if spec.get(key):
            _check_value(key, spec[key])
    return '%s::%s:%s:%s:%s:off' % (interface.ip, gateway, interface.netmask, spec.get('hostname') or '',
                                    spec.get('iface') or '')


def app_kernel_tokens(control_structure, memory_size, memory_base, console=None, root=None, ip=None, extra=(),
                      machine=None):
    """The Application Kernel's line: parker=, one exactmap RAM range, console, root, ip, tuning."""
    if not re.match(r'^0x[0-9a-fA-F]+$', str(control_structure)):
        raise RenderError('control_structure %r is not a 0x-prefixed physical address' % (control_structure,))
    tokens = ['parker=%s' % control_structure, 'memmap=exactmap',
              'memmap=' + format_memmap(memory_size, memory_base)]
    if console:
        tokens.append('console=%s' % _check_value('console', console))
    if root:
        tokens.append('root=%s' % _check_value('root', root))
    if ip:
        tokens.append('ip=%s' % _check_value('ip', ip))
    rendered = render(list(extra))
    for token in rendered['present']:
        if token_key(token) in ('parker', 'memmap'):
            raise RenderError('%s is set by the partition itself; remove it from the extra arguments' % token)
        tokens.append(token)
    return check_tokens(tokens, machine, 'Application Kernel line')


def lint(boot_tokens, app_lines, strict=False):
    """Compare system-wide knobs between the Boot Kernel and each Application Kernel line.

    ``app_lines`` maps a partition name to its tokens. Returns a list of
    findings (knob, key, boot value, partition, app value); absent means the
    kernel default, and default differs from any explicit value.
    """
    def knobs(tokens):
        found = {}
        for token in tokens:
            key = token_key(token)
            if key in SYSTEM_WIDE:
                found[key] = token.split('=', 1)[1] if '=' in token else '(set)'
        return found
    boot = knobs(boot_tokens)
    findings = []
    for name in sorted(app_lines):
        app = knobs(app_lines[name])
        for key in sorted(set(boot) | set(app)):
            if boot.get(key) != app.get(key):
                findings.append({'knob': SYSTEM_WIDE[key], 'key': key, 'boot': boot.get(key, '(default)'),
                                 'partition': name, 'application': app.get(key, '(default)')})
    return findings


def grub_escape(token):
    """A token as it must appear inside GRUB_CMDLINE_LINUX="..." in /etc/default/grub.

    The file is sourced by a shell, then grub.cfg is parsed by GRUB, which
    expands $; so memmap=64M$0x30000000 has to be written memmap=64M\\\\\\$0x30000000.
    """
    return token.replace('$', '\\\\\\$')
