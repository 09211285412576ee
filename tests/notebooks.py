"""Executes the notebooks as `nbdev_test` does (cells flagged `slow` left out) and keeps or checks their outputs.

    python tests/notebooks.py save [NAME ...]   # `make notebooks`: execute and save the outputs into nbs/
    python tests/notebooks.py check             # `make test`: execute every notebook and compare with what was saved

The notebooks are committed executed, so that a reader sees their tables and figures. What is saved: each executed cell's
standard output, results and figures; not its standard error (warnings, logging, progress bars), whose text changes
from run to run. A notebook's metadata records a fingerprint of the code that produced its outputs (its own code cells
and the package); `tests/test_sync.py` fails when the code has changed since, and `check` executes the notebooks again
and compares their text outputs with the saved ones (figures by their description, e.g. `<Figure size 640x480 with 1
Axes>`).

The comparison must hold on any x86-64 CPU and still catch a changed result:
- the words must be equal; white space counts as white space, not as a number of spaces (pandas pads its columns to the
  widest value, so one value printed with more digits moves its neighbours);
- whole numbers (counts, shapes, labels' indices) must be equal;
- a decimal may differ by its printed precision (one unit in its last digit, for rounding) plus
  `REL_TOL` of its size: what CPUs' rounding makes of the notebooks' inference and feature outputs (measured between
  outputs saved on an Intel Xeon with AMX and runs on an AMD EPYC with AVX2, natively and with torch limited to AVX2 and
  to no vector unit, with one and two threads);
- a cell whose numbers depend more on the CPU (a training run's loss drifts by about 0.1% in three epochs) says so with a
  `#| tolerance: R` line (a relative tolerance) and, in the prose before it, why;
- what a model near chance decides for a track near a tie is not a number the CPU can be trusted with: such examples
  show what holds (the loss, which files were answered, a drawn table with checks of its structure) instead.

`python tests/notebooks.py check` under `ATEN_CPU_CAPABILITY` and `ONEDNN_MAX_CPU_ISA` (`make test-notebooks-other-cpu`)
computes as another CPU would: run it before saving notebooks.
"""
from __future__ import annotations
import hashlib, json, math, multiprocessing, os, re, subprocess, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NBS, PACKAGE = REPO / 'nbs', REPO / 'genre_classification'
SHARED = REPO.parent / 'shared' / 'data'   # the real GTZAN material; cells that read it show outputs only where it is
META_KEY = 'genre_classification'     # the notebook metadata key (kept by nbdev_clean: `allowed_metadata_keys` in settings.ini)
SKIP_FLAGS = {'slow'}                 # settings.ini's tst_flags
REL_TOL = 1e-3                        # a decimal's relative tolerance beyond its printed precision
TOLERANCE = 'tolerance'               # the directive of a cell that needs a larger one: `#| tolerance: 0.02`


def notebooks() -> list[Path]:
    "The notebooks `nbdev_test` runs."
    return sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith('_'))


def fingerprint(nb_path: Path) -> str:
    "What a notebook's outputs depend on: its code cells and every file of the package (the generated index aside)."
    h = hashlib.sha256()
    for cell in json.loads(nb_path.read_text())['cells']:
        if cell['cell_type'] == 'code': h.update(''.join(cell['source']).encode() + b'\0')
    for module in sorted(f for f in PACKAGE.rglob('*') if f.is_file()):     # subpackages (synth/, hooks/) and data files (resources/) too
        if module.name != '_modidx.py' and '__pycache__' not in module.parts and module.suffix != '.pyc':
            h.update(module.relative_to(PACKAGE).as_posix().encode() + b'\0' + module.read_bytes())
    return h.hexdigest()[:16]


def saved_fingerprint(nb_path: Path) -> str | None:
    return json.loads(nb_path.read_text())['metadata'].get(META_KEY, {}).get('executed_with')


def _runs(cell) -> bool:
    "Whether nbdev_test executes this cell."
    if cell.cell_type != 'code' or 'nbdev_export' + '(' in cell.source: return False
    directives = getattr(cell, 'directives_', {}) or {}
    if directives.get('eval:', [''])[0].lower() == 'false': return False
    return not SKIP_FLAGS & directives.keys()


def execute(nb_path: Path) -> dict[str, list]:
    "Execute `nb_path` as nbdev_test does; the outputs of each cell (by cell id), standard error left out. Raises on an error."
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.processors import FrontmatterProc, NBProcessor
    os.environ['IN_TEST'] = '1'
    os.environ['GENRE_CLASSIFICATION_STEP_SETTINGS'] = 'table'   # the step the table gives: outputs that do not depend on the machine
    os.environ.update(COLUMNS='80', LINES='24')   # pandas and argparse size their text to the terminal: the same everywhere
    nb = NBProcessor(nb_path, procs=FrontmatterProc, process=True).nb
    for cell in nb.cells:      # execnb leaves a cell's saved outputs in place when it prints nothing now
        if cell.cell_type == 'code': cell['outputs'] = []
    shell = CaptureShell(nb_path, mpl_format='png')      # not nbdev_test's 'retina': figures at a quarter of the bytes
    with working_directory(nb_path.parent):
        try: shell.run_all(nb, exc_stop=True, preproc=lambda cell: not _runs(cell))
        except Exception: raise RuntimeError(f'{nb_path.name} failed:\n{shell.prettytb(fname=nb_path)}') from None
    return {cell.id: [_plain(o) for o in cell.get('outputs', []) if not (o.get('output_type') == 'stream' and o.get('name') == 'stderr')]
            for cell in nb.cells if cell.cell_type == 'code' and _runs(cell)}


def _plain(output) -> dict:
    "An output as plain JSON, without per-run metadata."
    out = json.loads(json.dumps(output, default=dict))
    out.pop('metadata', None); out.pop('execution_count', None)
    if out['output_type'] in ('display_data', 'execute_result'): out['metadata'] = {}
    if out['output_type'] == 'execute_result': out['execution_count'] = None
    return out


def save(nb_path: Path) -> str:
    "Execute `nb_path` and write its outputs and fingerprint into it (cells not executed lose theirs); what happened."
    try: outputs = execute(nb_path)
    except RuntimeError as e: return f'{e}\n{nb_path.name}: NOT saved'
    nb = json.loads(nb_path.read_text())
    for cell in nb['cells']:
        if cell['cell_type'] == 'code': cell['outputs'] = outputs.get(cell.get('id'), [])
    nb['metadata'][META_KEY] = {'executed_with': fingerprint(nb_path)}
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    return f'{nb_path.name}: saved'


# what differs from run to run in the text itself: temporary folders, object addresses (which nbdev_clean removes from
# saved outputs), and names made from them (hashes of a run's settings, which include its temporary paths)
_RUN_SPECIFIC = [(re.compile(r'/tmp/[\w.-]+'), '<tmp>'), (re.compile(r' at 0x[0-9a-fA-F]+'), ''),
                 (re.compile(r'(?<!\.)\b(?=[0-9a-f]*[a-f])[0-9a-f]{12,}\b'), '<hash>')]   # not a float's digits: 1.4901161193847656e-08
_NUMBER = re.compile(r'-?\d+(?:\.\d+)?(?:e[-+]?\d+)?')


def texts(outputs: list) -> list[str]:
    "The text of each output: standard output, results' plain text (a figure's is its size), errors."
    found = []
    for o in outputs:
        if o['output_type'] == 'stream': found.append(''.join(o['text']))
        elif o['output_type'] == 'error': found.append(f"{o['ename']}: {o['evalue']}")
        else: found.append(''.join(o.get('data', {}).get('text/plain', '')))
    for pattern, placeholder in _RUN_SPECIFIC: found = [pattern.sub(placeholder, t) for t in found]
    return found


def _unit(number: str) -> float:
    "The place of a printed number's last digit: 0.01 for '2.97', 1e-05 for '3.2e-04' (0.1 of 1e-04)."
    mantissa, _, exponent = number.lower().partition('e')
    decimals = len(mantissa.partition('.')[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def _numbers_close(saved: str, fresh: str, rel_tol: float = REL_TOL) -> bool:
    "Whole numbers equal; decimals within the printed precision of both plus `rel_tol` of their size."
    if not any(c in n for n in (saved, fresh) for c in '.eE'): return saved == fresh
    a, b = float(saved), float(fresh)
    if math.isnan(a) or math.isnan(b): return math.isnan(a) and math.isnan(b)
    # printed to the same place, two values a rounding apart differ by one unit there; pandas prints a column's exact
    # values short ('0.3' beside another run's '0.300000'), so the finer side's place is the one that counts
    return abs(a - b) <= min(_unit(saved), _unit(fresh)) + rel_tol * max(abs(a), abs(b))


_SPACE = re.compile(r'\s+')


def same_text(saved: str, fresh: str, rel_tol: float = REL_TOL) -> bool:
    "Whether two outputs say the same: equal words (white space as white space), equal whole numbers, decimals within the tolerance."
    words = lambda text: _SPACE.sub(' ', _NUMBER.sub('#', text)).strip()
    if words(saved) != words(fresh): return False
    return all(_numbers_close(a, b, rel_tol) for a, b in zip(_NUMBER.findall(saved), _NUMBER.findall(fresh)))


def rel_tol_of(source: str) -> float:
    "A cell's relative tolerance: its `#| tolerance: R` line, or `REL_TOL`."
    m = re.search(rf'^#\|\s*{TOLERANCE}:\s*(\S+)', source, re.M)
    return float(m.group(1)) if m else REL_TOL


def differences(nb_path: Path, fresh: dict[str, list]) -> list[str]:
    "How the outputs saved in `nb_path` differ from `fresh` ones, cell by cell."
    found = []
    for i, cell in enumerate(json.loads(nb_path.read_text())['cells']):
        if cell['cell_type'] != 'code': continue
        if not SHARED.is_dir() and 'shared' in ''.join(cell['source']): continue
        saved, now, rel_tol = texts(cell['outputs']), texts(fresh.get(cell.get('id'), [])), rel_tol_of(''.join(cell['source']))
        if len(saved) != len(now) or not all(same_text(a, b, rel_tol) for a, b in zip(saved, now)):
            found.append(f'{nb_path.name}, cell {i} ({cell.get("id")}):\n  saved: {saved!r}\n  now:   {now!r}')
    return found


def check(nb_path: Path) -> list[str]:
    "Execute `nb_path`; what differs from its saved outputs, or the error that stopped it."
    try: return differences(nb_path, execute(nb_path))
    except RuntimeError as e: return [str(e)]


def _in_pool(fn, paths: list[Path], workers: int) -> list:
    # as nbdev_test: worker processes (which may start processes of their own), each notebook in a fresh shell
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context('fork')) as pool: return list(pool.map(fn, paths))


def main(argv: list[str]) -> int:
    command, names = (argv[0] if argv else 'check'), argv[1:]
    paths = [NBS / (n if n.endswith('.ipynb') else n + '.ipynb') for n in names] or notebooks()
    workers = int(os.environ.get('NB_WORKERS', '2'))
    if command == 'save':
        done = _in_pool(save, paths, workers)
        for line in done: print(line)
        subprocess.run([Path(sys.executable).parent / 'nbdev_clean'], cwd=REPO, check=True)   # as committed notebooks are
        return 0 if all(line.endswith(': saved') for line in done) else 1
    if command == 'check':
        problems = [p for found in _in_pool(check, paths, workers) for p in found]
        for p in problems: print(p)
        print(f'{len(paths)} notebooks executed; ' + (f'{len(problems)} cells show other outputs than saved: run `make notebooks`'
                                                     if problems else 'their outputs are the saved ones'))
        return 1 if problems else 0
    print(__doc__); return 2


if __name__ == '__main__':
    # run from the module imported by name: IPython replaces `__main__` while a notebook runs, so the worker processes
    # could not find functions pickled as `__main__.save`
    sys.path.insert(0, str(Path(__file__).parent))
    import notebooks
    sys.exit(notebooks.main(sys.argv[1:]))
