"""The planner's filters, as Ansible calls them."""
import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.parker.kernel.tests.unit.synthfacts import intel_2s
from ansible_collections.parker.kernel.plugins.filter.plan import FilterModule

FILTERS = FilterModule().filters()
INTENT = {'partitions': [{'name': 'web', 'cpus': 2, 'node': 1, 'memory': '4G', 'devices': [{'class': 'net'}]}]}


def test_filters_are_registered():
    assert sorted(FILTERS) == ['class_svg', 'hardware_classes', 'hardware_fingerprint', 'hardware_outliers',
                               'hardware_summary', 'plan_changes', 'plan_host', 'plan_index_html', 'plan_svg']


def test_plan_changes_name_what_moved_between_two_plans():
    before = {'fingerprint': 'hw-1', 'partitions': [{'name': 'web', 'cpus': '8-11', 'memory': '4G', 'devices': []},
                                                    {'name': 'old', 'cpus': '12', 'memory': '1G'}]}
    after = {'fingerprint': 'hw-1', 'partitions': [{'name': 'web', 'cpus': '8-15', 'memory': '4G', 'devices': []},
                                                   {'name': 'db', 'cpus': '16-19', 'memory': '8G',
                                                    'devices': ['0000:3b:00.0']}]}
    assert FILTERS['plan_changes'](before, after) == [
        'old removed', 'db added: cpus 16-19, memory 8G, devices 0000:3b:00.0', 'web cpus: 8-15, was 8-11']
    assert FILTERS['plan_changes'](None, after) == ['new plan']
    assert FILTERS['plan_changes'](after, after) == []
    refused = dict(after, refused=True, reasons=['node 1 has 6 free whole cores; web asks for 8'], partitions=[])
    assert FILTERS['plan_changes'](after, refused)[0] == 'refused now: node 1 has 6 free whole cores; web asks for 8'


def test_hardware_summary_is_what_host_partitions_compares():
    summary = FILTERS['hardware_summary'](intel_2s())
    assert sorted(summary) == ['cpus', 'memory', 'pci'] and summary['cpus']


def test_plan_host_takes_the_facts_or_ansible_facts():
    facts = intel_2s()
    plan = FILTERS['plan_host'](facts, INTENT, 'h1')
    assert plan['partitions'][0]['cpus'] == '17-18,49-50' and plan['host'] == 'h1'
    assert FILTERS['plan_host']({'parker_kernel': facts}, INTENT, {'name': 'h1'}) == plan
    assert FILTERS['hardware_fingerprint'](facts)['id'] == plan['fingerprint']
    assert FILTERS['hardware_classes']({'h1': plan})[plan['fingerprint']]['hosts'] == ['h1']
    assert FILTERS['hardware_outliers']({'h1': plan, 'h2': plan}) == []
    svg = FILTERS['plan_svg'](plan, facts)
    assert svg.startswith('<svg') and 'web' in svg
    assert 'hardware class' in FILTERS['class_svg'](plan, facts, ['h1'])
    assert '<!DOCTYPE html>' in FILTERS['plan_index_html']({'h1': plan})


def test_errors_become_filter_errors():
    with pytest.raises(AnsibleFilterError) as exc:
        FILTERS['plan_host'](intel_2s(), {'partitions': [{'name': 'x', 'cpus': True, 'memory': '1G'}]}, 'h')
    assert 'parker.kernel.plan_host: parker intent: partitions[0] (x).cpus: expected a number' in str(exc.value)
    with pytest.raises(AnsibleFilterError) as exc:
        FILTERS['plan_host']({'cpus': {}}, INTENT, 'h')
    assert 'expected ansible_facts.parker_kernel' in str(exc.value)
    with pytest.raises(AnsibleFilterError):
        FILTERS['plan_host'](intel_2s(), INTENT, {'name': 'h', 'index': -3})
