import pytest

from ansible_collections.parker.kernel.plugins.module_utils._cpulist import (
    parse_cpulist, parse_cpus, format_cpulist, CpulistError)


@pytest.mark.parametrize('text,last,expected', [
    ('', None, set()),
    ('3', None, {3}),
    ('0-3,8', None, {0, 1, 2, 3, 8}),
    ('100-130:2/25', None, {100, 101, 125, 126}),
    ('4-N', 7, {4, 5, 6, 7}),
    ('all', 3, {0, 1, 2, 3}),
    ('ALL:1/2', 7, {0, 2, 4, 6}),
    (' 1 , 2 ', None, {1, 2}),
])
def test_parse_valid(text, last, expected):
    assert parse_cpulist(text, last) == expected


@pytest.mark.parametrize('text', ['2-x', '3-1', '1,,2', '0-7:0/2', '0-7:3/2', 'abc', '-1', '1-', 'N', '5:1/2', '1 2'])
def test_parse_invalid(text):
    with pytest.raises(CpulistError):
        parse_cpulist(text)


def test_parse_cpus_accepts_lists_and_rejects_booleans():
    assert parse_cpus([1, '3-4', 7]) == {1, 3, 4, 7}
    with pytest.raises(CpulistError):
        parse_cpus(True)


@pytest.mark.parametrize('cpus,text', [(set(), ''), ({5}, '5'), ({0, 1, 2, 3, 8, 10, 11}, '0-3,8,10-11')])
def test_format_roundtrip(cpus, text):
    assert format_cpulist(cpus) == text
    assert parse_cpulist(text) == cpus
