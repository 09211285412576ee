"The package is what nbdev_export makes of the notebooks, and the notebooks are clean (nbdev_clean changes nothing)."
import json, shutil, subprocess, sys
from pathlib import Path

from conftest import REPO

BIN = Path(sys.executable).parent


def _copy_project(dest: Path) -> Path:
    for name in ['settings.ini', 'setup.py', 'README.md']: shutil.copy(REPO / name, dest / name)
    shutil.copytree(REPO / 'nbs', dest / 'nbs', ignore=shutil.ignore_patterns('.ipynb_checkpoints', '_proc'))
    shutil.copytree(REPO / 'genre_classification', dest / 'genre_classification', ignore=shutil.ignore_patterns('__pycache__'))
    return dest


def _files(root: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob(pattern)) if '__pycache__' not in p.parts}


def test_export_changes_nothing(tmp_path):
    copy = _copy_project(tmp_path)
    for p in (copy / 'genre_classification').glob('*.py'): p.unlink()   # exported from scratch, not over the old files
    subprocess.run([BIN / 'nbdev_export'], cwd=copy, check=True)
    exported, committed = _files(copy / 'genre_classification', '*.py'), _files(REPO / 'genre_classification', '*.py')
    differ = sorted(n for n in exported.keys() | committed.keys() if exported.get(n) != committed.get(n))
    assert not differ, f'nbdev_export would change {differ}: edit the notebooks, run `make clean-notebooks`, commit both'


def test_notebooks_are_clean(tmp_path):
    copy = _copy_project(tmp_path)
    subprocess.run([BIN / 'nbdev_clean', '--fname', copy / 'nbs'], cwd=copy, check=True)
    cleaned, committed = _files(copy / 'nbs', '*.ipynb'), _files(REPO / 'nbs', '*.ipynb')
    differ = sorted(n for n in cleaned if cleaned[n] != committed[n])
    assert not differ, f'nbdev_clean would change {differ}: run `make clean-notebooks` before committing'


def test_papermill_reads_every_parameter():
    "Each assignment of a notebook's `parameters` cell is a parameter that `papermill --help-notebook` shows (a second `=` in a comment hides it)."
    import nbformat
    from papermill.translators import PythonTranslator
    for path in sorted((REPO / 'nbs').glob('*.ipynb')):
        for cell in nbformat.read(path, as_version=4).cells:
            if 'parameters' not in cell.metadata.get('tags', []): continue
            assigned = [line.split('=')[0].strip() for line in cell.source.splitlines() if line.strip() and not line.startswith('#')]
            parsed = PythonTranslator.inspect(cell)
            assert [p.name for p in parsed] == assigned, f'{path.name}: papermill reads {[p.name for p in parsed]}, the cell assigns {assigned}'


def test_readme_is_the_one_front_page():
    "index.ipynb (settings.ini's readme_nb) includes README.md rather than holding a second, drifting copy of its text."
    nb = json.loads((REPO / 'nbs' / 'index.ipynb').read_text())
    prose = [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown']
    assert prose[0] == '{{< include ../README.md >}}' and all(len(p) < 300 for p in prose[1:]), prose
    assert 'readme_nb = index.ipynb' in (REPO / 'settings.ini').read_text()
