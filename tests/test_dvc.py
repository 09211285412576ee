"""The DVC pipeline (dvc.yaml) end to end on a tiny configuration, in a temporary copy of the repository: `dvc repro`, a second
`dvc repro` that runs nothing, `dvc metrics show`, `dvc plots show`, a push/pull round trip through a folder remote, and
`dvc exp run -S` re-running exactly the stages that read the changed parameters: a tiny Hugging Face model (built offline from
a configuration) trained, evaluated and exported through the same train stage, with its settings in params.yaml."""
import json, os, shutil, subprocess, sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

BIN = Path(sys.executable).parent
TINY = {'data': {'source': '', 'tracks_per_genre': 3, 'seconds': 4.0, 'seed': 0},
        'train': {'model': 'small_cnn', 'criterion': 'cross_entropy', 'optimizer': 'adamw', 'lr': 0.003, 'weight_decay': 0.0001,
                  'epochs': 1, 'batch_size': 8, 'split': 'random', 'augment': False, 'seed': 0, 'device': 'cpu',
                  'hf_model': '', 'hf_mode': 'probe', 'hf_layer': -1, 'trust_remote_code': False, 'frozen_layers': 0, 'backbone_lr': 1e-5},
        'evaluate': {'split': 'test'}}
OUTPUTS = ['data/gtzan', 'data/images', 'checkpoints/pipeline', 'models/pipeline.onnx']


def run(args: list[str], cwd: Path, timeout: int = 900) -> str:
    "Run a command of the project's environment in `cwd`; its output, or a failure that shows the output."
    env = {**os.environ, 'PATH': f"{BIN}{os.pathsep}{os.environ['PATH']}", 'MPLBACKEND': 'Agg'}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{output[-6000:]}"
    return output


def contents(repo: Path) -> dict[str, bytes]:
    "The bytes of every file of the pipeline's DVC-tracked outputs."
    files = [p for out in OUTPUTS for p in ([repo / out] if (repo / out).is_file() else sorted((repo / out).rglob('*')))]
    return {str(p.relative_to(repo)): p.read_bytes() for p in files if p.is_file()}


@pytest.fixture(scope='module')
def pipeline_repo(tmp_path_factory) -> Path:
    "A git repository holding the project's files (as a fresh clone has them) with tiny pipeline parameters."
    repo = tmp_path_factory.mktemp('dvc') / 'repo'
    files = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard', '-z'], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split('\0')
    for name in filter(None, files):
        if (REPO / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(REPO / name, repo / name)
    (repo / 'params.yaml').write_text(yaml.safe_dump(TINY, sort_keys=False))
    for args in (['git', 'init', '-q'], ['git', 'config', 'user.email', 'test@example.com'], ['git', 'config', 'user.name', 'test'],
                 ['git', 'add', '-A'], ['git', 'commit', '-qm', 'tiny pipeline']):
        run(args, repo)
    run([str(BIN / 'dvc'), 'remote', 'add', '--local', '-d', 'scratch', str(repo.parent / 'remote')], repo)
    return repo


@pytest.fixture(scope='module')
def reproduced(pipeline_repo) -> Path:
    run([str(BIN / 'dvc'), 'repro'], pipeline_repo)
    return pipeline_repo


def test_repro_runs_every_stage_and_leaves_the_outputs(reproduced):
    for out in OUTPUTS: assert (reproduced / out).exists(), out
    assert list((reproduced / 'checkpoints' / 'pipeline').glob('small_cnn-*/model.pt'))
    assert len(list((reproduced / 'data' / 'images').rglob('*.png'))) == 30
    for name in ['learning_curve.csv', 'confusion.csv']: assert (reproduced / 'reports' / name).stat().st_size > 0
    lock = yaml.safe_load((reproduced / 'dvc.lock').read_text())
    assert set(lock['stages']) == {'data', 'features', 'train', 'evaluate', 'export'}


def test_a_second_repro_does_nothing(reproduced):
    output = run([str(BIN / 'dvc'), 'repro'], reproduced)
    assert 'Running stage' not in output, output
    assert 'Data and pipelines are up to date' in run([str(BIN / 'dvc'), 'status'], reproduced)


def test_metrics_and_plots_show(reproduced):
    metrics = json.loads(run([str(BIN / 'dvc'), 'metrics', 'show', '--json'], reproduced).strip().splitlines()[-1])
    by_file = {Path(k).name: v['data'] for k, v in next(iter(metrics.values()))['data'].items()}
    assert 0 <= by_file['train.json']['test_track_accuracy'] <= 1
    assert 0 <= by_file['evaluate.json']['test_track_macro_f1'] <= 1
    assert by_file['export.json']['max_probability_difference'] < 1e-4
    run([str(BIN / 'dvc'), 'plots', 'show', '-o', 'plots'], reproduced)
    html = (reproduced / 'plots' / 'index.html').read_text()
    assert 'learning_curve' in html and 'confusion_matrix' in html


def test_push_and_pull_round_trip_the_data_and_checkpoints(reproduced):
    run([str(BIN / 'dvc'), 'push'], reproduced)
    before = contents(reproduced)
    for out in OUTPUTS:
        path = reproduced / out
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(reproduced / '.dvc' / 'cache')
    run([str(BIN / 'dvc'), 'pull'], reproduced)
    assert contents(reproduced) == before
    assert 'Data and pipelines are up to date' in run([str(BIN / 'dvc'), 'status'], reproduced)


def last_json(output: str):
    "The JSON a `dvc ... --json` command printed (its last line)."
    return json.loads(output.strip().splitlines()[-1])


def test_an_experiment_trains_a_hugging_face_model_rerunning_only_what_its_parameters_touch(reproduced, tmp_path):
    "`dvc exp run -S train.model=hf -S train.hf_model=FOLDER`: train, evaluate and export run again (data and features do not); the metrics and parameters are recorded."
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor
    from test_hf import TINY as HF_TINY, WAVEFORM_TINY
    torch.manual_seed(0)
    HubertModel(HubertConfig(**HF_TINY, **WAVEFORM_TINY)).save_pretrained(tmp_path / 'hubert')
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(tmp_path / 'hubert')
    dvc = str(BIN / 'dvc')
    output = run([dvc, 'exp', 'run', '-S', 'train.model=hf', '-S', f"train.hf_model={tmp_path / 'hubert'}", '-S', 'train.epochs=3'], reproduced)
    ran = {s for s in ['data', 'features', 'train', 'evaluate', 'export'] if f"Running stage '{s}'" in output}
    assert ran == {'train', 'evaluate', 'export'}, output
    assert len(list((reproduced / 'checkpoints' / 'pipeline').glob('hf-*/model.pt'))) == 1
    report = json.loads((reproduced / 'reports' / 'evaluate.json').read_text())
    assert 0 <= report['test_track_accuracy'] <= 1, report
    assert json.loads((reproduced / 'reports' / 'export.json').read_text())['max_probability_difference'] < 1e-4
    shown = last_json(run([dvc, 'exp', 'show', '--json'], reproduced))
    experiments = [rev['data'] for row in shown for exp in row.get('experiments') or [] for rev in exp['revs']]
    assert any(e['params']['params.yaml']['data']['train']['model'] == 'hf'
               and 0 <= e['metrics']['reports/evaluate.json']['data']['test_track_accuracy'] <= 1 for e in experiments), shown
