"""Every benchmark script runs at a tiny size and prints the tables and figures `make bench` reads (the figures themselves
come from `make bench`; here only their presence, their shape and what must hold whatever the machine: answers that agree,
ratios that match their own figures, accuracies that are accuracies)."""
import concurrent.futures, math, re, subprocess, sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / 'benchmarks'

SMOKE = {'features.py': ['--clips', '4', '--runs', '1', '--memory-clips', '0'],
         # the step table (`gpu.step_table`, its bf16 steps emulated on CPUs without bf16: minutes) runs in gpu.py's smoke run
         'training.py': ['--tracks-per-genre', '3', '--runs', '1', '--step-models'],
         'main_job.py': ['--model', 'small_cnn', '--epochs', '1', '--tracks-per-genre', '3', '--clip-seconds', '4'],
         # each timing once (a median of many is `make bench`'s)
         'predict.py': ['--model', 'small_cnn', '--clips', '2', '--repeat', '1', '--warmup', '0'],
         'predict_command.py': ['--clips', '2', '--song-seconds', '20', '--runs', '1', '--tagger-runs', '1'],
         'batch.py': ['--model', 'small_cnn', '--clips', '2', '--workers', '1'],
         'data_steps.py': ['--workers', '1', '2', '--clips', '20', '--cache-clips', '20', '--feature-clips', '4'],
         'own_labels.py': ['--labels', '3', '--tracks-per-label', '3', '--seconds', '3', '--cnn-epochs', '1', '--probe-epochs', '5',
                           '--mlp-epochs', '5', '--no-real', '--cv-folds', '3', '--cv-tracks', '18'],
         # the GPU benchmark's own code paths, on the CPU: its main-job and data-steps tables are main_job.py's and data_steps.py's
         'gpu.py': ['--device', 'cpu', '--models', 'small_cnn', '--batches', '4', '8', '--steps', '1', '--epochs', '1',
                    '--accuracy-models', 'small_cnn', '--tracks-per-genre', '3', '--only', 'steps', 'accuracy']}

# the tables each script prints (a word of each title) and the columns each must have
TABLES = {'features.py': {'Kaggle features': ['way', 'clips/s', 'ratio']},
          'training.py': {'input pipeline': ['route', 'samples/s']},
          'data_steps.py': {'data steps': ['step', 'workers', 'seconds', 'clips/s', 'speed-up']},
          'batch.py': {'clips of 30 s': ['run', 's', 'files/s', 'x predictors', 'answers']},
          'own_labels.py': {'synthetic collection': ['route', 'test tracks', 'accuracy', 'macro-F1'],
                            'cross-validation': ['route', 'folds', 'accuracy mean ± std', 'out of fold', 'fixed split', 'inputs s', 'training s', 'training share']},
          'predict_command.py': {'real-music model': ['case', 'today s', 'new s', 'ratio', 'today peak MB', 'new peak MB', 'answers'],
                                 'musicnn tagger': ['threads', 'GFLOP/s', 'peak GFLOP/s', 'of peak']},
          'gpu.py': {'training step': [], 'main job accuracy': []}}


def tables(out: str) -> dict[str, list[dict[str, str]]]:
    "The tables `benchmarks/common.table` printed in `out`: title → rows as {column: cell}, split where the dashes are."
    lines, found = out.splitlines(), {}
    for i, line in enumerate(lines):
        if not (i >= 2 and re.fullmatch(r'  -+(  -+)*', line)): continue
        spans = [m.span() for m in re.finditer(r'-+', line)]
        cut = lambda text: [text[a:(spans[j + 1][0] if j + 1 < len(spans) else None)].strip() for j, (a, _) in enumerate(spans)]
        header, rows = cut(lines[i - 1]), []
        for row in lines[i + 1:]:
            aligned = len(row) >= spans[-1][0] and all(row[a - 2:a] == '  ' for a, _ in spans[1:])   # rows are padded to full width
            if not row.startswith('  ') or not aligned: break          # the prose after the table
            rows.append(dict(zip(header, cut(row))))
        found[lines[i - 2]] = rows
    return found


def table_named(found: dict, word: str) -> list[dict[str, str]]:
    titles = [t for t in found if word in t]
    assert titles, f'no table titled with {word!r} in {list(found)}'
    return found[titles[0]]


def number(cell: str) -> float:
    "The leading figure of a cell ('1.23', '2.0x', '0.5 (0.4–0.6) s')."
    return float(re.match(r'\s*(-?[\d.]+(?:e[-+]?\d+)?)', cell).group(1))


def figures(out: str, unit: str) -> list[float]:
    return [float(v) for v in re.findall(rf'(\d+(?:\.\d+)?) ?{re.escape(unit)}\b', out)]


def check_features(out: str, found: dict) -> None:
    reference, ours = table_named(found, 'Kaggle features')
    test_ratio = number(ours['clips/s']) / number(reference['clips/s'])
    assert math.isclose(number(ours['ratio']), test_ratio, rel_tol=0.1, abs_tol=0.1), (ours, reference)
    mismatches, values = map(int, re.search(r'parity .*: (\d+) mismatches in (\d+) values', out).groups())
    assert values > 0 and mismatches <= 0.1 * values, out        # our features are librosa's (a few near-zero MFCCs aside)


def check_main_job(out: str, found: dict) -> None:
    accuracy, f1 = map(float, re.search(r'test track accuracy ([\d.]+), macro-F1 ([\d.]+)', out).groups())
    assert 0 <= accuracy <= 1 and 0 <= f1 <= 1


def check_predict(out: str, found: dict) -> None:
    rates = figures(out, 'files/s')
    assert len(rates) >= 4 and all(r > 0 for r in rates), rates                 # ONNX folder, tagger, real-music, command
    assert figures(out, 'MB') and all(m > 0 for m in figures(out, 'MB'))


def check_predict_command(out: str, found: dict) -> None:
    rows = table_named(found, 'real-music model')
    assert len(rows) == 3 and all(r['answers'].startswith(('2/2', '1/1')) and 'same genre' in r['answers'] for r in rows), rows   # today's answers
    for r in rows: assert math.isclose(number(r['ratio']), number(r['today s']) / number(r['new s']), rel_tol=0.05, abs_tol=0.02), r
    assert all(0 < number(r['GFLOP/s']) and 0 < number(r['peak GFLOP/s']) for r in table_named(found, 'musicnn tagger'))


def check_batch(out: str, found: dict) -> None:
    rows = table_named(found, 'clips of 30 s')
    assert [r['run'] for r in rows] == ['predictors (one process)', 'batch-predict, 1 actor(s)'], rows
    assert rows[1]['answers'] == 'same genres', rows                           # Ray's answers are predictors'
    assert math.isclose(number(rows[1]['x predictors']), number(rows[1]['files/s']) / number(rows[0]['files/s']), rel_tol=0.05, abs_tol=0.02)


def check_data_steps(out: str, found: dict) -> None:
    rows = table_named(found, 'data steps')
    assert {r['workers'] for r in rows} == {'1', '2'} and all(number(r['clips/s']) > 0 for r in rows), rows
    assert all(r['speed-up'].startswith('1.0') for r in rows if r['workers'] == '1'), rows


def check_own_labels(out: str, found: dict) -> None:
    "The three routes, each with an accuracy and a macro-F1 between 0 and 1 on the same test tracks; the cross-validations by track and by album."
    rows = table_named(found, 'synthetic collection')
    assert [r['route'].split()[0] for r in rows] == ['small_cnn', 'musicnn', 'feature'] and len({r['test tracks'] for r in rows}) == 1
    intervals = [[float(v) for v in re.fullmatch(r'([\d.]+) \[([\d.]+), ([\d.]+)\]', r[c]).groups()] for r in rows for c in ('accuracy', 'macro-F1')]
    assert all(0 <= low <= score <= high <= 1 for score, low, high in intervals), rows      # each score with its 95% interval
    cv = table_named(found, 'cross-validation')
    assert [r['folds'] for r in cv] == ['3 by track', '3 by album'] and cv[0]['fixed split'].endswith('(fault_filtered)'), cv
    assert all(0 < number(r['training share']) <= 100 and number(r['inputs s']) >= 0 for r in cv), cv


CHECKS = {'features.py': check_features, 'main_job.py': check_main_job, 'predict.py': check_predict,
          'batch.py': check_batch, 'data_steps.py': check_data_steps, 'own_labels.py': check_own_labels,
          'predict_command.py': check_predict_command}


def test_table_reader():
    out = 'intro\n\nspeed\n  way  files/s  ratio\n  ---  -------  -----\n  a    1.50     1.0x\n  b c  3.0      2.0x\n\nafter'
    assert tables(out) == {'speed': [{'way': 'a', 'files/s': '1.50', 'ratio': '1.0x'}, {'way': 'b c', 'files/s': '3.0', 'ratio': '2.0x'}]}
    assert number('0.5 (0.4–0.6) s') == 0.5 and figures('3 files/s, 2.5 files/s', 'files/s') == [3, 2.5]


SMOKE_AT_ONCE = 2      # smoke runs side by side: their checks compare a run's figures with each other, never with a clock


@pytest.fixture(scope='module')
def smoke_runs(request, tmp_path_factory) -> dict[str, concurrent.futures.Future]:
    "The smoke run of each script the session selected, `SMOKE_AT_ONCE` at a time, each in a folder of its own: script -> its finished process."
    selected = sorted({item.callspec.params['script'] for item in request.session.items
                       if getattr(item, 'originalname', '') == 'test_benchmark_prints_its_figures'})
    run = lambda script: subprocess.run([sys.executable, str(BENCH / script), *SMOKE[script]], capture_output=True, text=True,
                                        cwd=tmp_path_factory.mktemp(script.removesuffix('.py')), timeout=600)
    with concurrent.futures.ThreadPoolExecutor(SMOKE_AT_ONCE) as pool:
        yield {script: pool.submit(run, script) for script in selected}


@pytest.mark.parametrize('script', sorted(SMOKE))
def test_benchmark_prints_its_figures(script, smoke_runs):
    done = smoke_runs[script].result()
    assert done.returncode == 0, done.stderr[-3000:]
    found = tables(done.stdout)
    for word, columns in TABLES.get(script, {}).items():
        rows = table_named(found, word)
        assert rows and all(set(columns) <= set(r) for r in rows), (word, rows)
    for title, rows in found.items():           # every figure a table shows is a number, and none is NaN
        for row in rows:
            for column, cell in row.items():
                if cell != '-' and re.search(r'/s|seconds|speed-up|ratio|^x ', column): assert math.isfinite(number(cell)) and number(cell) >= 0, (title, row)
    if script in CHECKS: CHECKS[script](done.stdout, found)
