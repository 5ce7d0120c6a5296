import pytest

from ansible_collections.parker.kernel.plugins.module_utils import _render


def test_layers_merge_by_name_later_wins_and_repeatables_accumulate():
    defaults = [{'name': 'crashkernel', 'value': '128M'}, {'name': 'memmap', 'value': '64M$0x30000000'}]
    group = [{'name': 'crashkernel', 'value': '256M'}, {'name': 'quiet'}]
    host = [{'name': 'quiet', 'state': 'absent'}, {'name': 'memmap', 'value': '32M$0x20000000'}]
    merged = _render.merge_layers(defaults, group, host)
    rendered = _render.render(merged)
    assert rendered['present'] == ['crashkernel=256M', 'memmap=64M$0x30000000', 'memmap=32M$0x20000000']
    assert rendered['absent'] == ['quiet']


@pytest.mark.parametrize('arg,fragment', [
    ({'name': 'nosmt', 'value': True}, 'YAML boolean'),
    ({'name': 'pti', 'value': None}, 'YAML boolean or null'),
    ({'name': 'console', 'value': 'ttyS0 quiet'}, 'spaces'),
    ({'name': 'root', 'value': '"LABEL=x"'}, 'quotes'),
    ({'name': 'crashkernel', 'value': '256M$x'}, '"$" is only valid in memmap='),
    ({'name': 'bad name'}, 'not a kernel parameter name'),
    ({'name': 'x', 'state': 'maybe'}, 'state must be'),
])
def test_bad_values_are_refused(arg, fragment):
    with pytest.raises(_render.RenderError) as exc:
        _render.render([arg])
    assert fragment in str(exc.value)


def test_conflicting_duplicates_are_refused():
    with pytest.raises(_render.RenderError):
        _render.render([{'name': 'crashkernel', 'value': '1G'}, {'name': 'crashkernel', 'value': '2G'}])


def test_isolation_derives_housekeeping():
    args = _render.isolation_args('2-7', '0-7')
    tokens = _render.render(args)['present']
    assert tokens == ['nohz_full=2-7', 'rcu_nocbs=2-7', 'isolcpus=domain,managed_irq,2-7', 'irqaffinity=0-1']
    with pytest.raises(_render.RenderError):
        _render.isolation_args('0-7', '0-7')


def test_lint_names_knob_and_both_values():
    boot = ['mitigations=auto', 'intel_iommu=on', 'quiet']
    findings = _render.lint(boot, {'p1': ['mitigations=off', 'intel_iommu=on'], 'p2': ['tsc=reliable']})
    assert {'knob': 'mitigations', 'key': 'mitigations', 'boot': 'auto', 'partition': 'p1',
            'application': 'off'} in findings
    assert any(f['partition'] == 'p2' and f['key'] == 'tsc' for f in findings)
    assert not any(f['partition'] == 'p1' and f['key'] == 'intel_iommu' for f in findings)


def test_grub_escape():
    assert _render.grub_escape('memmap=64M$0x30000000') == 'memmap=64M\\\\\\$0x30000000'


@pytest.mark.parametrize('tokens,fragment', [
    (['quiet', 'init=/bin/sh\nroot=/dev/sdb'], 'control character'),
    (['console=ttyS0\t'], 'control character'),
    (['root="/dev/vda1"'], 'quotes'),
    (['acpi=off;reboot'], 'shell metacharacters'),
    (['rd.x=a$b'], '"$" is only valid in memmap='),
    (['-x'], 'not a kernel parameter name'),
    (['a=' + 'x' * 2046], 'kernel keeps only 2047 on x86_64'),
])
def test_every_command_line_follows_one_set_of_rules(tokens, fragment):
    with pytest.raises(_render.RenderError) as exc:
        _render.check_tokens(tokens, 'x86_64')
    assert fragment in str(exc.value)


def test_memmap_dollar_and_a_line_at_the_limit_pass():
    _render.check_tokens(['memmap=64M$0x100000000'], 'x86_64')
    _render.check_tokens(['a=' + 'x' * 2045], 'x86_64')
    # s390x has the larger COMMAND_LINE_SIZE; the running line's own tokens only count toward the length.
    _render.check_tokens(['a=' + 'x' * 3000], 's390x')
    _render.check_tokens(['weird="quoted value"', 'quiet'], 'x86_64', trusted=['weird="quoted value"'])


def test_app_kernel_line_refuses_a_newline_in_console_root_ip_or_extra():
    for kwargs in ({'console': 'ttyS1\nquiet'}, {'root': '/dev/vda1\n'}, {'ip': '10.0.0.2::::h:eth0:off\nx'},
                   {'extra': [{'name': 'nokaslr\ninit', 'value': '/bin/sh'}]}):
        with pytest.raises(_render.RenderError):
            _render.app_kernel_tokens('0x1000', 1 << 30, 1 << 32, **kwargs)
