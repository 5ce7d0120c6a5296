#!/usr/bin/env python3
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate roles/<role>/README.md from roles/<role>/meta/argument_specs.yml.

    tools/role_readme.py                 # rewrite every role's README.md
    tools/role_readme.py --check         # exit 1 (and show a diff) when a README is out of date
    tools/role_readme.py roles/cmdline   # only these roles

The README is generated from the role's argument specs (title, short description, description, every
option and suboption with its type, default, choices and description) and meta/main.yml (requirements,
license, author). Two sections are hand-written and kept as they are on every run, between their markers:
the introduction and the example play. The example must be a YAML playbook in a ```yaml block; every
variable it passes to the role must be an option of the spec, so a renamed option fails the run instead of
leaving a stale example. A missing README gets placeholder hand-written sections to fill in.

The output depends only on those files: running it twice changes nothing. Needs PyYAML only.
"""

import argparse
import difflib
import os
import re
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

INTRO_BEGIN = '<!-- BEGIN HAND-WRITTEN INTRO: tools/role_readme.py keeps this section as it is -->'
INTRO_END = '<!-- END HAND-WRITTEN INTRO -->'
EXAMPLE_BEGIN = '<!-- BEGIN HAND-WRITTEN EXAMPLE: a YAML playbook; tools/role_readme.py checks its role variables -->'
EXAMPLE_END = '<!-- END HAND-WRITTEN EXAMPLE -->'

# Keys of a `roles:` entry that are play keywords, not role variables.
ROLE_ENTRY_KEYWORDS = {'role', 'name', 'vars', 'tags', 'when', 'become', 'become_user', 'become_method',
                       'delegate_to', 'environment', 'no_log', 'ignore_errors', 'check_mode', 'diff',
                       'any_errors_fatal', 'collections', 'connection', 'debugger', 'module_defaults',
                       'run_once', 'throttle', 'timeout', 'vars_from', 'tasks_from', 'defaults_from',
                       'handlers_from', 'allow_duplicates', 'public', 'apply', 'rolespec_validate'}
INCLUDE_ROLE_ACTIONS = {'include_role', 'import_role', 'ansible.builtin.include_role',
                        'ansible.builtin.import_role', 'ansible.legacy.include_role', 'ansible.legacy.import_role'}


class ReadmeError(Exception):
    pass


# -- Ansible documentation markup -> Markdown -----------------------------------------------------------------

def _option_ref(text):
    """O(opt), O(opt=value), O(fqcn#type:opt=value) -> Markdown."""
    plugin = None
    if '#' in text and ':' in text.split('#', 1)[1]:
        plugin, _sep, rest = text.partition('#')
        text = rest.split(':', 1)[1]
    code = '`%s`' % text
    return '%s of `%s`' % (code, plugin) if plugin else code


_MARKUP = [
    (re.compile(r'\bL\(([^)]+?),\s*([^)]+)\)'), lambda m: '[%s](%s)' % (m.group(1), m.group(2))),
    (re.compile(r'\bU\(([^)]+)\)'), lambda m: '<%s>' % m.group(1)),
    (re.compile(r'\bR\(([^)]+?),\s*([^)]+)\)'), lambda m: m.group(1)),
    (re.compile(r'\bI\(([^)]+)\)'), lambda m: '*%s*' % m.group(1)),
    (re.compile(r'\bB\(([^)]+)\)'), lambda m: '**%s**' % m.group(1)),
    (re.compile(r'\b[MP]\(([^)#]+)(?:#[^)]*)?\)'), lambda m: '`%s`' % m.group(1)),
    (re.compile(r'\bO\(([^)]+)\)'), lambda m: _option_ref(m.group(1))),
    (re.compile(r'\b(?:C|V|E|RV)\(([^)]+)\)'), lambda m: '`%s`' % m.group(1)),
    (re.compile(r'\bHORIZONTALLINE\b'), lambda m: '---'),
]


def markup(text):
    text = ' '.join(str(text).split())
    for pattern, replace in _MARKUP:
        text = pattern.sub(replace, text)
    return text


def paragraphs(value):
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [markup(item) for item in items if str(item).strip()]


def cell(text):
    return text.replace('|', '\\|')


def literal(value):
    """A default or choice as it would be written in YAML, in a code span."""
    if isinstance(value, str):
        text = value if value != '' else '""'
    else:
        text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
        if text.endswith('\n...'):
            text = text[:-4]
        elif text.endswith('...'):
            text = text[:-3].strip()
    return '`%s`' % text.replace('`', "'")


def type_of(spec):
    kind = spec.get('type', 'str')
    if kind == 'list' and spec.get('elements'):
        return 'list of %s' % spec['elements']
    return kind


# -- the README ---------------------------------------------------------------------------------------------

def option_rows(options, prefix=''):
    rows = []
    for name, spec in options.items():
        spec = spec or {}
        path = prefix + name
        description = ' '.join(paragraphs(spec.get('description')))
        if spec.get('choices'):
            choices = spec['choices']
            values = choices if isinstance(choices, list) else list(choices)
            description += '%sChoices: %s.' % (' ' if description else '', ', '.join(literal(v) for v in values))
        if 'default' in spec:
            default = literal(spec['default'])
        elif spec.get('required'):
            default = '*required*'
        else:
            default = ''
        rows.append('| `%s` | %s | %s | %s |' % (cell(path), cell(type_of(spec)), cell(default), cell(description)))
        suboptions = spec.get('options') or spec.get('suboptions')
        if suboptions:
            child = path + ('[].' if spec.get('type') == 'list' else '.')
            rows.extend(option_rows(suboptions, child))
    return rows


def section(text, begin, end):
    """The hand-written text between the markers, or None when the README has no such section."""
    if text is None or begin not in text:
        return None
    start = text.index(begin) + len(begin)
    if end not in text[start:]:
        raise ReadmeError('%s is not closed by %s' % (begin, end))
    return text[start:text.index(end, start)].strip('\n')


def example_vars(example, role_fqcn, role_name):
    """Variables the example playbook passes to the role: {entry point: set of names}."""
    match = re.search(r'```ya?ml\n(.*?)```', example, re.S)
    if not match:
        raise ReadmeError('the example section needs a ```yaml block with a playbook')
    try:
        plays = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        raise ReadmeError('the example playbook is not valid YAML: %s' % exc)
    if not isinstance(plays, list) or not all(isinstance(p, dict) for p in plays):
        raise ReadmeError('the example must be a playbook: a list of plays')
    used = {}

    def names_role(name):
        return name in (role_fqcn, role_name)

    for play in plays:
        for entry in play.get('roles') or []:
            if isinstance(entry, dict) and names_role(entry.get('role', entry.get('name'))):
                keys = set(k for k in entry if k not in ROLE_ENTRY_KEYWORDS) | set(entry.get('vars') or {})
                used.setdefault('main', set()).update(keys)
        tasks = []
        for key in ('pre_tasks', 'tasks', 'post_tasks'):
            tasks.extend(play.get(key) or [])
        while tasks:
            task = tasks.pop(0)
            if not isinstance(task, dict):
                continue
            for key in ('block', 'rescue', 'always'):
                tasks.extend(task.get(key) or [])
            for action in INCLUDE_ROLE_ACTIONS & set(task):
                args = task[action] or {}
                if names_role(args.get('name')):
                    used.setdefault(args.get('tasks_from', 'main'), set()).update(task.get('vars') or {})
    if not used:
        raise ReadmeError('the example playbook does not use %s' % role_fqcn)
    return used


def default_example(role_fqcn):
    return '\n'.join([
        '```yaml',
        '- name: Apply %s' % role_fqcn,
        '  hosts: all',
        '  become: true',
        '  roles:',
        '    - role: %s' % role_fqcn,
        '```',
    ])


def render(role_dir, collection=None, current=None):
    """The README.md text for the role at role_dir. ``current`` is the README's present text (or None)."""
    role_dir = os.path.abspath(role_dir)
    role_name = os.path.basename(role_dir)
    if collection is None:
        collection = collection_name(os.path.dirname(os.path.dirname(role_dir)))
    role_fqcn = '%s.%s' % (collection, role_name) if collection else role_name
    with open(os.path.join(role_dir, 'meta', 'argument_specs.yml')) as handle:
        specs = (yaml.safe_load(handle) or {}).get('argument_specs') or {}
    if 'main' not in specs:
        raise ReadmeError('%s: meta/argument_specs.yml has no main entry point' % role_dir)
    galaxy_info = {}
    main_yml = os.path.join(role_dir, 'meta', 'main.yml')
    if os.path.exists(main_yml):
        with open(main_yml) as handle:
            galaxy_info = (yaml.safe_load(handle) or {}).get('galaxy_info') or {}

    intro = section(current, INTRO_BEGIN, INTRO_END)
    if intro is None:
        intro = 'Say here what the role is for and how it fits with the rest of the collection.'
    example = section(current, EXAMPLE_BEGIN, EXAMPLE_END)
    if example is None:
        example = default_example(role_fqcn)
    entry_points = ['main'] + sorted(name for name in specs if name != 'main')
    for entry_point, names in sorted(example_vars(example, role_fqcn, role_name).items()):
        if entry_point not in specs:
            raise ReadmeError('%s: the example uses entry point %s, which meta/argument_specs.yml does not have'
                              % (role_fqcn, entry_point))
        unknown = sorted(names - set(specs[entry_point].get('options') or {}))
        if unknown:
            raise ReadmeError('%s: the example passes %s, not options of entry point %s in meta/argument_specs.yml'
                              % (role_fqcn, ', '.join(unknown), entry_point))

    main = specs['main']
    out = ['# %s' % role_fqcn, '',
           '<!-- Generated by tools/role_readme.py from meta/argument_specs.yml and meta/main.yml: edit those, or',
           '     the hand-written sections below, then run tools/role_readme.py again. -->', '']
    if main.get('short_description'):
        out += [markup(main['short_description']).rstrip('.') + '.', '']
    out += [INTRO_BEGIN, intro, INTRO_END, '']
    if main.get('description'):
        out += ['## Description', '']
        for text in paragraphs(main['description']):
            out += [text, '']

    requirements = []
    if galaxy_info.get('min_ansible_version'):
        requirements.append('- ansible-core %s or later' % galaxy_info['min_ansible_version'])
    platforms = []
    for platform in galaxy_info.get('platforms') or []:
        versions = platform.get('versions') or []
        platforms.append('%s%s' % (platform.get('name'), (' ' + ', '.join(str(v) for v in versions)) if versions else ''))
    if platforms:
        requirements.append('- Platforms: %s' % '; '.join(platforms))
    if requirements:
        out += ['## Requirements', ''] + requirements + ['']

    out += ['## Role variables', '']
    nested = False
    for entry_point in entry_points:
        spec = specs[entry_point] or {}
        if len(entry_points) > 1:
            out += ['### Entry point `%s`' % entry_point, '']
            if entry_point != 'main' and spec.get('short_description'):
                out += [markup(spec['short_description']).rstrip('.') + '.', '']
        options = spec.get('options') or {}
        if not options:
            out += ['This entry point takes no variables.', '']
            continue
        out += ['| Variable | Type | Default | Description |', '|---|---|---|---|']
        rows = option_rows(options)
        out += rows + ['']
        nested = nested or any('[].' in row.split('|')[1] for row in rows)
    if nested:
        out += ['Keys of the items of a list of dictionaries are shown as `variable[].key`.', '']

    out += ['## Example playbook', '', EXAMPLE_BEGIN, example, EXAMPLE_END, '']
    if galaxy_info.get('license'):
        out += ['## License', '', str(galaxy_info['license']), '']
    author = main.get('author') or galaxy_info.get('author')
    if author:
        out += ['## Author', '', ', '.join(author) if isinstance(author, list) else str(author), '']
    return '\n'.join(out).rstrip('\n') + '\n'


def collection_name(root):
    path = os.path.join(root, 'galaxy.yml')
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        galaxy = yaml.safe_load(handle) or {}
    return '%s.%s' % (galaxy['namespace'], galaxy['name'])


def role_dirs(root=REPO):
    roles = os.path.join(root, 'roles')
    return [os.path.join(roles, name) for name in sorted(os.listdir(roles))
            if os.path.exists(os.path.join(roles, name, 'meta', 'argument_specs.yml'))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('roles', nargs='*', help='role directories (default: every role under roles/)')
    parser.add_argument('--check', action='store_true', help='change nothing; exit 1 if a README is out of date')
    args = parser.parse_args(argv)
    stale = 0
    for role_dir in args.roles or role_dirs():
        readme = os.path.join(role_dir, 'README.md')
        current = None
        if os.path.exists(readme):
            with open(readme) as handle:
                current = handle.read()
        try:
            wanted = render(role_dir, current=current)
        except ReadmeError as exc:
            print('role_readme: %s' % exc, file=sys.stderr)
            return 2
        if wanted == current:
            continue
        if args.check:
            stale += 1
            sys.stdout.writelines(difflib.unified_diff((current or '').splitlines(True), wanted.splitlines(True),
                                                       readme + ' (committed)', readme + ' (generated)'))
        else:
            with open(readme, 'w') as handle:
                handle.write(wanted)
            print('role_readme: wrote %s' % os.path.relpath(readme))
    if stale:
        print('role_readme: %d README(s) out of date; run tools/role_readme.py' % stale, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
