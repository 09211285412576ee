"The notebook order is the dependency order: no module imports one made from a later notebook (lazy imports included)."
import ast, os, re, subprocess, sys
from pathlib import Path

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


def test_no_module_imports_a_later_notebook():
    notebooks = {name: notebook_of(path) for name, path in modules().items()}
    assert {'core', 'data', 'training_data', 'metrics', 'learner', 'hooks', 'train', 'predict', 'synth.sound', 'synth.genres',
            'datasets'} <= set(notebooks)
    assert 'musicnn' in imported_modules(PACKAGE / 'models.py')        # an import inside a function counts too
    assert {'core', 'synth.sound', 'synth.parts'} <= imported_modules(PACKAGE / 'synth' / 'genres.py')   # relative, in a subpackage
    upward = [f'{m} ({notebooks[m]}) imports {i} ({notebooks[i]})' for m, path in modules().items()
              for i in imported_modules(path) if i in notebooks and notebooks[i] > notebooks[m]]
    assert not upward, upward



def names_imported_from(module: Path) -> dict[str, set[str]]:
    "The names `module` imports from each of the package's modules (at the top or inside functions)."
    found = {}
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and (node.level == 1 or node.module.startswith('genre_classification.')):
            found.setdefault(node.module.split('.')[-1], set()).update(a.name for a in node.names)
    return found


def test_evaluation_and_the_feature_route_take_their_metrics_from_metrics():
    """`evaluate` and `train_features` judge models with `metrics`, not through the training loop: `evaluate` does not import the
    learner's module (or the hooks) at all, and neither takes a name of `metrics` from another module."""
    metric_names = {n.name for n in ast.parse((PACKAGE / 'metrics.py').read_text()).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert {'Evaluation', 'classification_metrics', 'plot_confusion_matrix'} <= metric_names
    assert not {'learner', 'hooks'} & imported_modules(PACKAGE / 'evaluate.py')
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


def test_predicting_the_demo_and_monitoring_need_no_torch(served_models, shared_data, tmp_path):
    song = shared_data / 'gtzan_clips' / 'classical' / 'classical.00000.wav'
    script = WITHOUT_TORCH + f'''
from genre_classification.predict import predictors
assert predictors([{str(song)!r}, '--model', {str(served_models / 'real_music.json')!r}, '--format', 'json']) == 0
from genre_classification.app import analyse
probabilities, timeline, spectrogram, why = analyse({str(song)!r}, {str(served_models / 'small_cnn.onnx')!r})
assert len(probabilities) == 10
from genre_classification.cli import pipeline
code = pipeline(['monitor', {str(shared_data / 'audio_formats')!r}, '--output_dir', {str(tmp_path / 'monitor')!r}])
print('monitor exit code', code)
assert 'torch' not in sys.modules
sys.exit(0 if code in (0, 1) else 3)
'''
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert 'monitor exit code' in done.stdout and (tmp_path / 'monitor').is_dir()


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


def test_without_torch_a_missing_default_model_is_one_line_that_says_what_to_do(tmp_path):
    "A plain install (no `train` extra) with no real-music model yet: predictors and batch-predict say how to get one."
    import soundfile as sf
    from genre_classification.synth.genres import synth_track
    sf.write(tmp_path / 'song.wav', synth_track('jazz', 0, 3.0), 22050)
    script = WITHOUT_TORCH + f'''
from genre_classification.predict import predictors
from genre_classification.cli import pipeline
codes = [predictors([{str(tmp_path / 'song.wav')!r}]), pipeline(['batch-predict', {str(tmp_path / 'song.wav')!r}, '--output', 'out'])]
assert 'torch' not in sys.modules and 'ray' not in sys.modules      # Ray is imported by the batch job itself, not before the model
sys.exit(0 if codes == [2, 2] else 3)
'''
    env = {**os.environ, 'XDG_CACHE_HOME': str(tmp_path / 'cache')}
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and all('needs PyTorch: pip install "genre_classification[train]"' in line for line in lines), lines
