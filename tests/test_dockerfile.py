"""No Docker engine here: the Dockerfile is checked statically, with a real Dockerfile parser (dockerfile-parse)."""
import configparser, re, shlex
from pathlib import Path

from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[1]


def parsed():
    parser = DockerfileParser(path=str(REPO / 'Dockerfile'))
    return parser, parser.structure


def test_the_stages_are_base_awscli_and_dl_pipelines():
    _, structure = parsed()
    stages = [re.split(r'\s+as\s+', i['value'], flags=re.I)[-1] for i in structure if i['instruction'] == 'FROM']
    assert stages == ['base', 'awscli', 'dl_pipelines']
    froms = [i['value'].split()[0] for i in structure if i['instruction'] == 'FROM']
    assert froms[0].startswith('python:3.11') and froms[1:] == ['base', 'awscli']


def test_every_copy_source_exists_in_the_repo_and_is_not_ignored():
    _, structure = parsed()
    ignored = [l.strip().rstrip('/') for l in (REPO / '.dockerignore').read_text().splitlines() if l.strip() and not l.startswith('#')]
    copies = [shlex.split(i['value']) for i in structure if i['instruction'] == 'COPY']
    assert copies
    for args in copies:
        sources = [a for a in args[:-1] if not a.startswith('--')]
        for source in sources:
            if any(c in source for c in '*?['): continue     # an optional file (e.g. dvc.loc[k]): Docker copies what matches
            assert (REPO / source).exists(), f'COPY {source}: not in the repository'
            assert source.rstrip('/') not in ignored, f'COPY {source}: excluded by .dockerignore'


def test_secrets_only_through_buildkit_secret_mounts():
    parser, structure = parsed()
    text = (REPO / 'Dockerfile').read_text()
    assert text.splitlines()[0].startswith('# syntax=docker/dockerfile:')          # BuildKit front end for --mount
    for i in structure:
        value = i['value']
        if i['instruction'] in ('ARG', 'ENV', 'LABEL'):
            assert not re.search(r'AWS|SECRET|PASSWORD|TOKEN|KEY', value, re.I), f"{i['instruction']} {value}"
        if i['instruction'] in ('COPY', 'ADD'): assert '.aws' not in value and 'credentials' not in value
        if i['instruction'] == 'RUN' and re.search(r'\.aws|credentials', value):
            mounts = re.findall(r'--mount=(\S+)', value)
            assert mounts and all('type=secret' in m for m in mounts if '.aws' in m)
    assert any(i['instruction'] == 'RUN' and 'dvc pull' in i['value'] and '--mount=type=secret' in i['value'] for i in structure)
    ignored = (REPO / '.dockerignore').read_text()
    for path in ['.venv/', 'data/', 'runs/', '.dvc/config.local', '.aws/']: assert path in ignored


def test_a_non_root_user_runs_a_declared_console_script():
    _, structure = parsed()
    last_stage = max(n for n, i in enumerate(structure) if i['instruction'] == 'FROM')
    users = [i['value'] for i in structure[last_stage:] if i['instruction'] == 'USER']
    assert users and users[-1] not in ('root', '0')
    cmd = [i for i in structure if i['instruction'] == 'CMD'][-1]['value']
    import json
    program = json.loads(cmd)[0]
    ini = configparser.ConfigParser(); ini.read(REPO / 'settings.ini')
    scripts = [s.split('=')[0] for s in ini['DEFAULT']['console_scripts'].split()]
    assert program in scripts
