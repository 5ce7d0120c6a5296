#!/usr/bin/env python3
# Copyright (c) parker.kernel contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate the docs site's guides, docs/docsite/rst/<guide>.rst, from the Markdown in docs/<guide>.md.

    tools/docsite_guides.py            # rewrite every guide's RST
    tools/docsite_guides.py --check    # exit 1 (and show a diff) when one is out of date

The Markdown files stay the source (the README and reviews link them); antsibull-docs takes a collection's
extra docs only as RST under docs/docsite/rst/, listed in docs/docsite/extra-docs.yml, and that is what Galaxy,
Automation Hub and the Ansible docs site render from the shipped collection. Conversion is pandoc's (the
pandoc that the pypandoc-binary wheel ships, pinned in tools/docsite/requirements.txt, so the output does not
change under us): GitHub-flavoured Markdown to RST, with no heading labels of its own (antsibull-docs wants
every label to start with ansible_collections.parker.kernel.docsite.), one label per guide, and links between
guides turned into references to those labels. Needs pypandoc (scripts/docs-site's .venv-docs has it):

    .venv-docs/bin/python tools/docsite_guides.py      # or: scripts/docs-site --update-guides
"""

import argparse
import difflib
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# docs/<name>.md, in the order of the site's Guides section (docs/docsite/extra-docs.yml lists the same).
GUIDES = ('architecture', 'planner', 'reliability', 'testing', 'benchmarks')
LABEL = 'ansible_collections.parker.kernel.docsite.%s'
HEADER = """..
  Generated from docs/%(name)s.md by tools/docsite_guides.py: edit the Markdown, then run
  tools/docsite_guides.py (scripts/docs-site fails while this file is out of date).

.. _%(label)s:

"""
# `text <planner.md>`__ or `text <planner.md#section>`__ as pandoc writes a link to another guide
GUIDE_LINK = re.compile(r'`([^`<]+?)\s*<(%s)\.md(?:#[^>]*)?>`__' % '|'.join(GUIDES))


def convert(name):
    import pypandoc  # pylint: disable=import-outside-toplevel
    source = os.path.join(REPO, 'docs', name + '.md')
    rst = pypandoc.convert_file(source, 'rst', format='gfm-gfm_auto_identifiers',
                                extra_args=['--wrap=preserve', '--columns=120'])
    rst = GUIDE_LINK.sub(lambda m: ':ref:`%s <%s>`' % (m.group(1), LABEL % m.group(2)), rst)
    rst = '\n'.join(line.rstrip() for line in rst.splitlines()).strip('\n') + '\n'
    return HEADER % {'name': name, 'label': LABEL % name} + rst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--check', action='store_true', help='only report guides whose RST is out of date')
    args = parser.parse_args(argv)
    stale = []
    for name in GUIDES:
        path = os.path.join(REPO, 'docs', 'docsite', 'rst', name + '.rst')
        wanted = convert(name)
        try:
            with open(path, encoding='utf-8') as handle:
                current = handle.read()
        except FileNotFoundError:
            current = ''
        if current == wanted:
            continue
        if args.check:
            stale.append(path)
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), wanted.splitlines(True),
                                                       os.path.relpath(path, REPO), 'generated', n=1))
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'w', encoding='utf-8') as handle:
                handle.write(wanted)
            print('wrote %s' % os.path.relpath(path, REPO))
    if stale:
        print('\n%d guide(s) out of date: run tools/docsite_guides.py (scripts/docs-site --update-guides) and '
              'commit docs/docsite/rst/' % len(stale))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
