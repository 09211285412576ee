"The package is what nbdev_export makes of the notebooks, and the notebooks are clean (nbdev_clean changes nothing)."
import json, re, shutil, subprocess, sys
from pathlib import Path

import pytest

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
    for p in (copy / 'genre_classification').rglob('*.py'): p.unlink()   # exported from scratch (subpackages too), not over the old files
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


# Each notebook with a `parameters` cell, the settings class the cell stands for, and the cell's own extra knobs.
PARAMETER_CELLS = {'03_train.ipynb': ('genre_classification.train', 'TrainConfig', set()),
                   '03a_train_features.ipynb': ('genre_classification.train_features', 'FeatureTrainConfig', {'compare'}),
                   '04_evaluate.ipynb': ('genre_classification.evaluate', 'EvaluateConfig', set()),
                   '04b_cross_validate.ipynb': ('genre_classification.cross_validate', 'CrossValidation', set()),   # and the model's training settings, given by name
                   '05_export.ipynb': ('genre_classification.export', 'ExportConfig', set()),
                   '07_tune.ipynb': ('genre_classification.tune', 'TuneConfig', set())}


def test_each_parameters_cell_is_its_settings_class():
    "A `parameters` cell stays literal (papermill needs that) and assigns every field of its class, in order, the class's default."
    import ast, importlib, nbformat
    found = {}
    for path in sorted((REPO / 'nbs').glob('*.ipynb')):
        for cell in nbformat.read(path, as_version=4).cells:
            if 'parameters' in cell.metadata.get('tags', []): found[path.name] = cell.source
    assert set(found) == set(PARAMETER_CELLS), f'notebooks with a parameters cell: {sorted(found)}; add the new one to PARAMETER_CELLS'
    for name, source in found.items():
        module, cls_name, extra = PARAMETER_CELLS[name]
        cls = getattr(importlib.import_module(module), cls_name)
        body = ast.parse(source).body
        assert all(isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Name) for s in body), f'{name}: only assignments'
        values = {s.targets[0].id: ast.literal_eval(s.value) for s in body}
        assert [n for n in values if n not in extra] == list(cls.model_fields), f'{name}: the cell assigns {list(values)}'
        for field, info in cls.model_fields.items():
            assert values[field] == info.default, f'{name}: {field} = {values[field]!r}, but {cls_name} says {info.default!r}'


def test_each_help_text_is_written_once():
    "A setting's help (its field's description) is written in one place in the package: shared settings use core's annotated types."
    import importlib, inspect, pkgutil
    import genre_classification
    from genre_classification.core import Settings
    source = ''.join(p.read_text() for p in sorted((REPO / 'genre_classification').rglob('*.py')) if p.name != '_modidx.py')
    written = {}
    for info in pkgutil.walk_packages(genre_classification.__path__, 'genre_classification.'):   # subpackages' modules too
        for obj in vars(importlib.import_module(info.name)).values():
            if inspect.isclass(obj) and issubclass(obj, Settings) and obj.__module__ == info.name:
                for field in obj.model_fields.values():
                    if d := field.description:
                        written[d] = sum(source.count(q + t + q) for q in ("'", '"') for t in {d, d.replace(q, '\\' + q)})
    assert written and not {d: n for d, n in written.items() if n != 1}, {d: n for d, n in written.items() if n != 1}


def test_each_command_takes_its_options_from_settings():
    "Every command's options are the fields of a settings class (`options_from`, checked by `check_params`); an extra parameter's comment is written once."
    import importlib, inspect
    from fastcore.docments import docments
    from genre_classification.cli import COMMANDS
    source = ''.join(p.read_text() for p in sorted((REPO / 'genre_classification').rglob('*.py')) if p.name != '_modidx.py')
    commands = [*COMMANDS.values(), ('genre_classification.predict', 'predictors_cli', ''), ('genre_classification.tune', 'worker_cli', '')]
    plain, written = [], {}
    for module, name, _ in commands:
        fn = getattr(importlib.import_module(module), name)
        if not fn.__code__.co_flags & inspect.CO_VARKEYWORDS: plain.append(name)     # `**settings`: options_from made its options
        for doc in docments(fn, full=True, returns=False).values():
            if doc.docment: written[doc.docment] = len(re.findall(r'#\s*' + re.escape(doc.docment) + r'\s*$', source, re.M))
    assert not plain, f'commands whose options are not a settings class: {plain}'
    assert not {d: n for d, n in written.items() if n != 1}, {d: n for d, n in written.items() if n != 1}

def test_params_yaml_is_written_from_the_settings():
    "params.yaml is what `pipeline write-params` makes of dvc.yaml and the settings' defaults (after changing one: rerun it)."
    from genre_classification.cli import params_yaml
    assert (REPO / 'params.yaml').read_text() == params_yaml(REPO / 'dvc.yaml'), 'params.yaml is stale: run `pipeline write-params`'


def test_write_params_refuses_a_bad_option_in_one_line(monkeypatch, capsys):
    "`pipeline write-params --output ''` (the project folder itself) is refused in one line naming it (exit 2), before anything is written."
    import genre_classification.cli as cli
    monkeypatch.setattr(cli, 'params_yaml', lambda *a, **k: pytest.fail('params.yaml was written'))
    assert cli.pipeline_cli(['write-params', '--output', '']) == 2
    assert capsys.readouterr().err == "pipeline write-params: error: bad parameter 'output' = '': String should have at least 1 character\n"


def test_each_notebook_was_executed_by_the_current_code():
    "The outputs committed in each notebook come from its code and the package as they are now; `make test` also re-executes and compares them."
    from notebooks import fingerprint, notebooks, saved_fingerprint
    stale = [p.name for p in notebooks() if saved_fingerprint(p) != fingerprint(p)]
    assert not stale, f'{stale} were executed by other code than the current: run `make notebooks` and commit them'


def test_saved_outputs_are_small_and_without_timings():
    "Each notebook under 1 MB; no standard error (warnings, progress bars) and no throughput or durations in saved outputs."
    from notebooks import notebooks, texts
    timing = re.compile(r'\d\s*(?:samples/s|it/s|s/it|file/s|batch/s)|\d+(?:\.\d+)?\s*(?:ms|seconds?) (?:elapsed|per)|elapsed')
    for p in notebooks():
        assert p.stat().st_size < 1_000_000, f'{p.name} is {p.stat().st_size:,} bytes'
        outputs = [o for c in json.loads(p.read_text())['cells'] for o in c.get('outputs', [])]
        assert not [o for o in outputs if o.get('name') == 'stderr'], f'{p.name} keeps standard error'
        assert not [t for t in texts(outputs) if timing.search(t)], f'{p.name} shows a timing'
