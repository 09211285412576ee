"""The notebook order is the dependency order: no module imports one made from a later notebook, directly or through others
(lazy imports and modules named for a later import included); no module imports a name it does not use."""
import ast, json, os, re, subprocess, sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'genre_classification'


def notebook_of(module: Path) -> str | None:
    "The notebook a module is exported from (its header says), e.g. '02c_models'."
    found = re.search(r'File to edit: (?:\.\./)+nbs/([\w.]+)\.ipynb', module.read_text()[:1000])
    return found and found.group(1)


def module_name(module: Path) -> str:
    "A module's dotted name in the package, e.g. 'train' or 'synth.sound'."
    return '.'.join(module.relative_to(PACKAGE).with_suffix('').parts)


def modules() -> dict[str, Path]:
    "The package's modules made from notebooks, subpackages' included, by dotted name."
    return {module_name(p): p for p in sorted(PACKAGE.rglob('*.py')) if '__pycache__' not in p.parts and notebook_of(p)}


def imported_modules(module: Path) -> set[str]:
    "The package's modules (dotted names) that `module` imports, at the top or inside functions; some names may be of no module."
    package = module_name(module).split('.')[:-1]          # the subpackage `module` is in ([] at the top)
    names = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level: base = package[:len(package) - node.level + 1] + (node.module.split('.') if node.module else [])
            elif node.module and (node.module + '.').startswith('genre_classification.'): base = node.module.split('.')[1:]
            else: continue
            names.add('.'.join(base))
            names.update('.'.join(base + [a.name]) for a in node.names)   # `from .synth import genres`: a module too
        elif isinstance(node, ast.Import):
            names.update('.'.join(a.name.split('.')[1:]) for a in node.names if a.name.startswith('genre_classification.'))
    return names


def named_modules(module: Path) -> set[str]:
    "The package's modules that `module` names in a string ('genre_classification.features'), to import later by that name."
    known = modules()
    return {n.value.split('.', 1)[1] for n in ast.walk(ast.parse(module.read_text())) if isinstance(n, ast.Constant)
            and isinstance(n.value, str) and n.value.startswith('genre_classification.') and n.value.split('.', 1)[1] in known}


# Modules named to be imported by name later that come after the module naming them, on purpose; the import graph leaves them out.
UPWARD_BY_NAME = {
    ('cli', 'app'), ('cli', 'serve'),                  # `pipeline app` and `pipeline serve` (09_cli) dispatch to 10_app and 11_serve
    ('parallel', 'synth.genres'), ('parallel', 'features'),    # map_in_processes's fork server imports them first (parallel.WORKER_MODULES)
}


def import_graph() -> dict[str, set[str]]:
    "Each module's edges: the package's modules it imports (at the top or in a function) or names to import, less `UPWARD_BY_NAME`."
    known = modules()
    return {m: ((imported_modules(p) | named_modules(p)) & set(known)) - {m} - {i for n, i in UPWARD_BY_NAME if n == m}
            for m, p in known.items()}


def reached(graph: dict[str, set[str]], start: str) -> dict[str, list[str]]:
    "Every module that importing `start` may import, through any chain of imports: each with one shortest chain from `start`."
    chains, todo = {start: [start]}, [start]
    for module in todo:
        for nxt in sorted(graph[module] - set(chains)): chains[nxt] = chains[module] + [nxt]; todo.append(nxt)
    return {m: chain for m, chain in chains.items() if m != start}


def test_no_module_imports_a_later_notebook():
    notebooks = {name: notebook_of(path) for name, path in modules().items()}
    assert {'core', 'data', 'training_data', 'metrics', 'learner', 'hooks.step', 'hooks.tracker', 'train', 'predict', 'synth.sound',
            'synth.genres', 'datasets'} <= set(notebooks)
    assert all(notebooks[m] == f'02g_{m}' for m in notebooks if m.split('.')[0] == 'hooks')    # hooks.step from 02g_hooks.step
    assert {'hooks.step', 'hooks.tracker', 'hooks.mlflow', 'hooks.progress'} <= imported_modules(PACKAGE / 'train.py')
    assert 'musicnn' in imported_modules(PACKAGE / 'models.py')        # an import inside a function counts too
    assert {'core', 'synth.sound', 'synth.parts'} <= imported_modules(PACKAGE / 'synth' / 'genres.py')   # relative, in a subpackage
    assert {'train', 'serve', 'app'} <= named_modules(PACKAGE / 'cli.py')   # the commands' modules, imported by name
    graph = import_graph()
    assert reached(graph, 'datasets')['synth.sound'] == ['datasets', 'synth.genres', 'synth.sound']      # through another module
    upward = [' imports '.join(f'{m} ({notebooks[m]})' for m in chain) for m in graph for i, chain in reached(graph, m).items()
              if notebooks[i] > notebooks[m]]
    assert not upward, upward
    by_name = {(m, i) for m, p in modules().items() for i in named_modules(p) if notebooks[i] > notebooks[m]}
    assert by_name <= UPWARD_BY_NAME, f'named to import, from a later notebook: {sorted(by_name - UPWARD_BY_NAME)}'


FAMILIES_FOUND = """
import json, sys
import genre_classification.evaluate
before = sorted(m for m in ('genre_classification.train', 'genre_classification.train_features') if m in sys.modules)
from genre_classification.families import family_of
print(json.dumps([before, {m: family_of(m).name for m in ('resnet18', 'musicnn_probe', 'feature_mlp')}]))
"""


def test_evaluate_finds_every_family_through_the_entry_points_that_declare_their_modules():
    "`evaluate` imports no training module itself: `family_of` loads the modules the package declares (entry points) on first need."
    done = subprocess.run([sys.executable, '-c', FAMILIES_FOUND], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    before, found = json.loads(done.stdout)
    assert before == [] and found == {'resnet18': 'cnn', 'musicnn_probe': 'musicnn_probe', 'feature_mlp': 'feature_mlp'}, (before, found)


LOADED = """
import importlib, json, os, sys
found = {}
for module in sys.argv[1:]:       # each in a fresh child: what importing it alone loads
    r, w = os.pipe()
    if (pid := os.fork()) == 0:
        importlib.import_module(f'genre_classification.{module}')
        os.write(w, json.dumps(sorted(m for m in sys.modules if m.startswith(('genre_classification.', 'torch')))).encode()); os._exit(0)
    os.close(w)
    with os.fdopen(r) as f: found[module] = json.loads(f.read())
    assert os.waitpid(pid, 0)[1] == 0, module
print(json.dumps(found))
"""


def loaded_by(*names: str) -> dict[str, set[str]]:
    "What `import genre_classification.NAME` loads, for each name in a fresh process: the package's modules (dotted names), and torch."
    done = subprocess.run([sys.executable, '-c', LOADED, *names], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return {n: {m.removeprefix('genre_classification.') for m in ms if m == 'torch' or m.startswith('genre_classification.')}
            for n, ms in json.loads(done.stdout).items()}


def test_what_a_module_loads_is_in_its_import_graph_and_predicting_loads_no_training():
    "The import graph misses nothing Python loads; and `predict` (ONNX models, no `train` extra) loads no torch and no training code."
    graph, loaded = import_graph(), loaded_by('predict', 'monitor', 'cli')
    for name, modules_loaded in loaded.items(): assert modules_loaded - {'torch'} <= {name, *reached(graph, name)}, name
    assert not {'torch', 'learner', 'train', 'train_features', 'tune', 'training_data', 'models'} & loaded['predict']
    assert not [m for m in loaded['predict'] if m.split('.')[0] == 'hooks'], loaded['predict']     # nor any hook
    assert {'core', 'data', 'predictor'} <= loaded['predict']



def names_imported_from(module: Path) -> dict[str, set[str]]:
    "The names `module` imports from each of the package's modules (at the top or inside functions)."
    found = {}
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and (node.level == 1 or node.module.startswith('genre_classification.')):
            found.setdefault(node.module.split('.')[-1], set()).update(a.name for a in node.names)
    return found


def test_evaluation_and_the_feature_route_take_their_metrics_from_metrics():
    """`evaluate` and `train_features` judge models with `metrics`, not through the training loop: neither takes a name of `metrics`
    from another module (that `evaluate` loads no learner or hooks at all is `test_evaluate_loads_neither_the_learner_nor_the_hooks`)."""
    metric_names = {n.name for n in ast.parse((PACKAGE / 'metrics.py').read_text()).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert {'Evaluation', 'classification_metrics', 'plot_confusion_matrix'} <= metric_names
    for module in ['evaluate', 'train_features']:
        imported = names_imported_from(PACKAGE / f'{module}.py')
        assert imported.get('metrics'), f'{module} takes no metrics from metrics'
        elsewhere = {f'{name} from {source}' for source, names in imported.items() if source != 'metrics' for name in names & metric_names}
        assert not elsewhere, f'{module} imports {sorted(elsewhere)}'


WITHOUT_TORCH = """
import sys
class NoTorch:             # `import torch` (or torchvision) raises ImportError, as where it is not installed
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision'): raise ModuleNotFoundError(f"No module named '{name}' (made unimportable)")
sys.meta_path.insert(0, NoTorch())
"""


def test_making_the_default_model_predicting_the_demo_and_monitoring_need_no_torch(served_models, shared_data, tmp_path):
    """A plain install (no `train` extra), no model anywhere yet: the first `predictors` makes the real-music model (the tagger written
    from the fetched weights, the packaged feature MLP) and answers, `pipeline build-real-music-model` makes the same files, a bad file is
    one line; the demo and monitoring run."""
    from genre_classification.pretrained import musicnn_weights_dir
    song, bad = shared_data / 'gtzan_clips' / 'classical' / 'classical.00000.wav', tmp_path / 'notes.mp3'
    bad.write_text('this is not audio')
    script = WITHOUT_TORCH + f'''
from genre_classification.predict import predictors
from genre_classification.cli import pipeline
codes = [predictors([{str(song)!r}, '--format', 'json', '--output', 'first.json']),       # no model yet: made first
         pipeline(['build-real-music-model', '--models_dir', 'built']),
         predictors([{str(bad)!r}, '--model', 'built/real_music.json', '--format', 'json'])]
from genre_classification.app import analyse
probabilities, timeline, spectrogram, why = analyse({str(song)!r}, {str(served_models / 'small_cnn.onnx')!r})
assert len(probabilities) == 10
code = pipeline(['monitor', {str(shared_data / 'audio_formats')!r}, '--output_dir', {str(tmp_path / 'monitor')!r}])
print('monitor exit code', code)
assert 'torch' not in sys.modules
sys.exit(0 if codes == [0, 0, 1] and code in (0, 1) else 3)
'''
    # the weights as a first call fetches them (pip download, once for the whole test session), named as a folder
    env = {**os.environ, 'XDG_CACHE_HOME': str(tmp_path / 'cache'), 'GENRE_CLASSIFICATION_MUSICNN': str(musicnn_weights_dir())}
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert 'monitor exit code' in done.stdout and (tmp_path / 'monitor').is_dir()
    [first] = json.loads((tmp_path / 'first.json').read_text())
    assert first['genre'] == 'classical' and first['tags'][0][0] == 'classical (MTT)', first
    made, built = tmp_path / 'cache' / 'genre_classification', tmp_path / 'built'
    for name in ('real_music.json', 'musicnn_tagger.onnx', 'gtzan_features_mlp.onnx'): assert (made / name).read_bytes() == (built / name).read_bytes(), name
    assert done.stderr.count('making the real-music default model once') == 1 and 'Traceback' not in done.stderr, done.stderr
    assert sum(bad.name in line and 'not a readable audio file' in line for line in done.stderr.splitlines()) == 1, done.stderr


def test_no_default_is_a_project_found_at_import_time():
    "A `ProjectPaths()` default would fix the project root when the module is imported; functions take `None` and look then."
    import importlib, inspect
    from genre_classification.core import ProjectPaths
    frozen = []
    for module in modules():
        if module in ('app', 'serve', 'tune', 'monitor'): continue      # their optional extras may be absent; checked below by source
        for name, fn in inspect.getmembers(importlib.import_module(f'genre_classification.{module}'), inspect.isfunction):
            frozen += [f'{module}.{name}({p})' for p in inspect.signature(fn).parameters.values() if isinstance(p.default, ProjectPaths)]
    assert not frozen, frozen
    assert not [p.name for p in PACKAGE.rglob('*.py') if re.search(r'ProjectPaths\s*=\s*ProjectPaths\(', p.read_text())]


def test_no_module_imports_a_name_it_does_not_use():
    "pyflakes (the `dev` extra) finds no unused import in the package; an import for its side effect says so here, with why."
    api, messages = pytest.importorskip('pyflakes.api'), pytest.importorskip('pyflakes.messages')
    for_effect = set()                # (module, name): none imports a name only for its side effect today
    class Found:
        def __init__(self): self.unused = []
        def flake(self, m):
            if isinstance(m, messages.UnusedImport): self.unused.append((module_name(Path(m.filename)), m.message_args[0]))
        def unexpectedError(self, filename, msg): raise AssertionError(f'{filename}: {msg}')
        syntaxError = unexpectedError
    found = Found()
    for path in modules().values(): api.checkPath(str(path), found)
    unused = sorted(set(found.unused) - for_effect)
    assert not unused, f'unused imports (module, name): {unused}'
