"""The committed roles/<role>/README.md files are what tools/role_readme.py generates from the specs.

After changing a role's meta/argument_specs.yml (or meta/main.yml), run tools/role_readme.py and commit the
READMEs. tools/ is repository tooling: where it is absent (an ansible-test staging copy, an installed
collection) these tests are skipped.
"""
import importlib.util
import os
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, 'tools', 'role_readme.py')

pytestmark = pytest.mark.skipif(not os.path.exists(TOOL), reason='tools/role_readme.py is not in this copy')


def load_tool():
    spec = importlib.util.spec_from_file_location('role_readme', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def roles():
    top = os.path.join(REPO, 'roles')
    return sorted(name for name in os.listdir(top)
                  if os.path.exists(os.path.join(top, name, 'meta', 'argument_specs.yml')))


@pytest.mark.parametrize('role', roles())
def test_readme_is_up_to_date(role):
    tool = load_tool()
    role_dir = os.path.join(REPO, 'roles', role)
    readme = os.path.join(role_dir, 'README.md')
    assert os.path.exists(readme), 'roles/%s/README.md is missing: run tools/role_readme.py' % role
    with open(readme) as handle:
        committed = handle.read()
    assert tool.render(role_dir, current=committed) == committed, \
        'roles/%s/README.md is out of date with its meta/argument_specs.yml: run tools/role_readme.py' % role


def make_role(tmp_path, options, readme=None):
    root = tmp_path / 'collection'
    (root / 'roles' / 'demo' / 'meta').mkdir(parents=True)
    (root / 'galaxy.yml').write_text('namespace: acme\nname: tools\nversion: 1.0.0\n')
    (root / 'roles' / 'demo' / 'meta' / 'argument_specs.yml').write_text(textwrap.dedent('''\
        argument_specs:
          main:
            short_description: Demo role
            options:
        ''') + textwrap.indent(options, '      '))
    if readme is not None:
        (root / 'roles' / 'demo' / 'README.md').write_text(readme)
    return str(root / 'roles' / 'demo')


def test_hand_written_sections_survive_and_output_is_stable(tmp_path):
    tool = load_tool()
    role = make_role(tmp_path, 'demo_items:\n  type: list\n  elements: dict\n  default: []\n  options:\n'
                               '    name: {type: str, required: true, description: C(x) or V(y)}\n')
    first = tool.render(role)
    assert '| `demo_items[].name` | str | *required* | `x` or `y` |' in first
    edited = first.replace('Say here what the role is for', 'Hand-written words').replace(
        '  roles:\n    - role: acme.tools.demo\n',
        '  roles:\n    - role: acme.tools.demo\n      vars:\n        demo_items: []\n')
    second = tool.render(role, current=edited)
    assert 'Hand-written words' in second and 'demo_items: []' in second
    assert tool.render(role, current=second) == second


def test_example_with_an_unknown_variable_is_refused(tmp_path):
    tool = load_tool()
    role = make_role(tmp_path, 'demo_name: {type: str}\n')
    stale = tool.render(role).replace('    - role: acme.tools.demo\n',
                                      '    - role: acme.tools.demo\n      demo_old_name: x\n')
    with pytest.raises(tool.ReadmeError, match='demo_old_name'):
        tool.render(role, current=stale)
