"""The real-music model as users run it: the `predictors` command, start-up included, today's path against the new one.

Side by side in one run, each case run alternately old/new (`--runs` times, median): files/s over a folder of 30 s clips,
seconds for one 5-7 minute stereo mp3 and for a 2 s file, the ratio, the peak memory of the whole command (the sum of the
proportional set sizes of it and its worker processes, sampled), and whether both give the same genre for every file.
Then the musicnn tagger's achieved GFLOP/s against this CPU's measured fp32 peak (numpy's sgemm), one thread and all.

"Today's path" is `--baseline`: `flag` (this checkout, one process, the tagger's sessions on every core, as before
worker processes came: `--workers 1 --threads 0`), or a git ref (say `main~3`), checked out into a temporary worktree
and run as it is there (its imports, its one process).

    .venv/bin/python benchmarks/predict_command.py [--clips 11] [--song-seconds 368] [--runs 2] [--tagger-runs 15] [--baseline flag|REF]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, threading, time
from pathlib import Path

import numpy as np
import soundfile as sf

from common import table
from genre_classification.core import GENRES, BadInputError
from genre_classification.data import ffmpeg_executable
from genre_classification.synth.genres import synth_track

RUN = 'from genre_classification.predict import predictors; predictors.main()'
CHECKOUT = Path(__file__).resolve().parents[1]       # this checkout, wherever the script is run from


def tree_pss_mb(pid: int) -> float:
    "Proportional set size of process `pid` and all its descendants, in MB (Linux; 0 elsewhere)."
    parents = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try: parents[int(stat.parent.name)] = int(stat.read_text().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError, IndexError): pass
    tree, grew = {pid}, True
    while grew:
        more = {p for p, pp in parents.items() if pp in tree} - tree
        tree |= more; grew = bool(more)
    total = 0
    for p in tree:
        try: total += sum(int(l.split()[1]) for l in Path(f'/proc/{p}/smaps_rollup').read_text().splitlines() if l.startswith('Pss:'))
        except OSError: pass
    return total / 1024


def run_command(args: list[str], env: dict) -> tuple[float, float, list[dict], int]:
    "Seconds, peak memory (MB, whole process tree) and JSON records of one `predictors` run; its exit code."
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, '-c', RUN, *args, '--format', 'json'], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
                            cwd=tempfile.gettempdir())   # not in a checkout: `python -c` would import the package there, not PYTHONPATH's
    peak, out = [0.0], []
    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_pss_mb(proc.pid)); time.sleep(0.1)
    watcher = threading.Thread(target=sample, daemon=True); watcher.start()
    out = proc.stdout.read(); proc.wait(); elapsed = time.perf_counter() - t; watcher.join()
    return elapsed, peak[0], json.loads(out) if out.strip() else [], proc.returncode


def inputs(work: Path, n_clips: int, song_seconds: float) -> dict[str, tuple[list[Path], int]]:
    "The three cases: a folder of 30 s clips (the shared GTZAN clips first, then synthetic ones), one long stereo mp3, a 2 s mp3."
    shared = CHECKOUT.parent / 'shared' / 'data'
    folder = work / 'clips'; folder.mkdir()
    real = sorted((shared / 'gtzan_clips').rglob('*.wav'))[:n_clips] if shared.exists() else []
    for p in real: (folder / p.name).symlink_to(p)
    for i in range(n_clips - len(real)): sf.write(folder / f'synth_{GENRES[i % 10]}_{i}.wav', synth_track(GENRES[i % 10], i, 30.0), 22050)
    exe = ffmpeg_executable()
    def mp3(source: Path, target: Path, loops: int = 0, seconds: float | None = None) -> Path:
        cut = ['-t', f'{seconds:g}'] if seconds else []
        subprocess.run([exe, '-loglevel', 'error', '-y', '-stream_loop', str(loops), '-i', str(source), *cut, '-ac', '2', '-b:a', '192k', str(target)], check=True)
        return target
    vibe = shared / 'audio_formats' / 'Kevin_MacLeod_-_Vibe_Ace.hq.ogg'
    if vibe.exists():                      # real music: 61.5 s looped (its start alone where less is asked for: the smoke run)
        song = mp3(vibe, work / 'song.mp3', loops=max(0, round(song_seconds / 61.46) - 1), seconds=song_seconds if song_seconds < 61.46 else None)
    else:
        sf.write(work / 'song.wav', np.stack([synth_track('rock', 0, song_seconds)] * 2, 1), 22050); song = mp3(work / 'song.wav', work / 'song.mp3')
    short = shared / 'audio_formats' / 'fma_keys__000__000010.mp3'
    if not short.exists(): sf.write(work / 'short.wav', synth_track('pop', 1, 2.0), 22050); short = mp3(work / 'short.wav', work / 'short.mp3')
    return {f'folder of {n_clips} clips of 30 s': ([folder], n_clips), f'one {sf.info(str(song)).duration / 60:.1f} min stereo mp3': ([song], 1),
            f'one {sf.info(str(short)).duration:.0f} s mp3': ([short], 1)}


def baseline_env(baseline: str, work: Path) -> tuple[dict, list[str], str]:
    "Environment, extra flags and a description of today's path."
    env = {**os.environ, 'PYTHONPATH': str(CHECKOUT)}
    if baseline == 'flag': return env, ['--workers', '1', '--threads', '0'], 'this checkout with --workers 1 --threads 0 (one process)'
    checkout = work / 'baseline'
    subprocess.run(['git', '-C', str(CHECKOUT), 'worktree', 'add', '--detach', str(checkout), baseline], check=True, capture_output=True)
    env['PYTHONPATH'] = str(checkout)
    return env, [], f'git {baseline} ({checkout})'


def same_answers(old: list[dict], new: list[dict]) -> str:
    "Whether two runs' records name the same genre for every file, and their largest probability difference."
    if [r['path'] for r in old] != [r['path'] for r in new]: return 'different files'
    same = sum(a['genre'] == b['genre'] for a, b in zip(old, new))
    diff = max((abs(x - y) for a, b in zip(old, new) if a['probabilities'] and b['probabilities'] for x, y in zip(a['probabilities'], b['probabilities'])), default=0)
    return f'{same}/{len(old)} same genre, max |dp| {diff:.4f}'


def compare_commands(model: Path, cases: dict, baseline: str, work: Path, runs: int) -> None:
    env_old, flags_old, what = baseline_env(baseline, work)
    env_new = {**os.environ, 'PYTHONPATH': str(CHECKOUT)}
    rows = []
    for case, (paths, n) in cases.items():
        got = {'old': [], 'new': []}
        for _ in range(runs):                                  # alternately, so that both see the same load
            for side, env, flags in (('old', env_old, flags_old), ('new', env_new, [])):
                seconds, mb, records, code = run_command([*map(str, paths), '--model', str(model), *flags], env)
                assert code == 0, f'{side} exit code {code}'
                got[side].append((seconds, mb, records))
        old, new = (statistics.median(s for s, _, _ in got[k]) for k in ('old', 'new'))
        rate = lambda s: f'{n / s:.2f}' if n > 1 else '-'
        rows.append([case, f'{old:.2f}', f'{new:.2f}', f'{old / new:.2f}x', rate(old), rate(new),
                     f"{max(m for _, m, _ in got['old']):.0f}", f"{max(m for _, m, _ in got['new']):.0f}", same_answers(got['old'][0][2], got['new'][0][2])])
    table(f'real-music model, `predictors` with start-up, median of {runs}: today = {what}',
          ['case', 'today s', 'new s', 'ratio', 'today files/s', 'new files/s', 'today peak MB', 'new peak MB', 'answers'], rows)


def tagger_flops(onnx_file: Path, patch: np.ndarray) -> float:
    "Multiply-adds x 2 of one patch through the tagger's Conv and Gemm/MatMul nodes (their output shapes from one run)."
    import onnx, onnxruntime as ort
    proto = onnx.load(str(onnx_file))
    nodes = [n for n in proto.graph.node if n.op_type in ('Conv', 'Gemm', 'MatMul')]
    proto.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n.output[0]) for n in nodes)   # their shapes, as outputs
    session = ort.InferenceSession(proto.SerializeToString(), providers=['CPUExecutionProvider'])
    shapes = dict(zip([o.name for o in session.get_outputs()], (o.shape for o in session.run(None, {'input': patch}))))
    weights = {w.name: list(w.dims) for w in proto.graph.initializer}
    flops = 0.0
    for n in nodes:
        out, w = shapes[n.output[0]], weights[n.input[1]]
        # a Conv output element takes (in channels / group) x kernel multiply-adds, the weight's shape without its first axis
        flops += 2 * np.prod(out[1:]) * np.prod(w[1:]) if n.op_type == 'Conv' else 2 * np.prod(out[1:]) * w[0 if n.op_type == 'MatMul' else 1]
    return float(flops)


def sgemm_peak(threads: int, n: int = 2048, runs: int = 5) -> float:
    "numpy's single-precision matrix product at `threads` threads, in GFLOP/s (best of `runs`): this CPU's practical fp32 peak."
    from threadpoolctl import threadpool_limits
    a, b = (np.random.default_rng(0).standard_normal((n, n)).astype(np.float32) for _ in range(2))
    with threadpool_limits(threads):
        a @ b; best = min(timed(lambda: a @ b) for _ in range(runs))
    return 2 * n ** 3 / best / 1e9


def timed(fn) -> float:
    t = time.perf_counter(); fn(); return time.perf_counter() - t


def tagger_efficiency(tagger: Path, runs: int = 15) -> None:
    "The tagger's ms per patch (median of `runs`, after up to 3 warm-ups) and GFLOP/s, against numpy's peak (best of up to 5)."
    from genre_classification.onnx_files import load_onnx
    from genre_classification.pretrained import musicnn_patches
    patch = next(musicnn_patches([synth_track('rock', 0, 4.0, 16000)]))[None]
    flops, rows, cores = tagger_flops(tagger, patch), [], os.cpu_count() or 1
    for threads in sorted({1, cores}):
        session, _ = load_onnx(tagger, threads)
        for _ in range(min(3, runs)): session.run(None, {'input': patch})
        per_patch = statistics.median(timed(lambda: session.run(None, {'input': patch})) for _ in range(runs))
        achieved, peak = flops / per_patch / 1e9, sgemm_peak(threads, runs=min(5, runs))
        rows.append([threads, f'{per_patch * 1000:.1f}', f'{flops / 1e9:.2f}', f'{achieved:.0f}', f'{peak:.0f}', f'{achieved / peak:.0%}'])
    table('musicnn tagger (both taggers, fp32, one 3 s patch) against this CPU\'s fp32 peak (numpy sgemm 2048)',
          ['threads', 'ms/patch', 'GFLOP/patch', 'GFLOP/s', 'peak GFLOP/s', 'of peak'], rows)


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument('--clips', type=int, default=11); args.add_argument('--song-seconds', type=float, default=368)
    args.add_argument('--runs', type=int, default=2); args.add_argument('--baseline', default='flag')
    args.add_argument('--tagger-runs', type=int, default=15, help="timed runs of the tagger per thread count (median)")
    args.add_argument('--model', default='', help='a real_music.json (default: predictors\' default model)')
    a = args.parse_args()
    from genre_classification.predict import default_model_file, make_real_music_model
    work = Path(tempfile.mkdtemp())
    try: model = Path(a.model).resolve() if a.model else default_model_file(make=False)
    except BadInputError:                  # no default model yet: one made here (seconds), so that no user cache is touched
        model = make_real_music_model(work / 'real')
    print(f'machine: {os.cpu_count()} cores; model: {model}')
    try:
        compare_commands(model, inputs(work, a.clips, a.song_seconds), a.baseline, work, a.runs)
        tagger_efficiency(model.parent / json.loads(model.read_text())['tagger'], max(1, a.tagger_runs))
    finally:
        if (work / 'baseline').exists(): subprocess.run(['git', '-C', str(CHECKOUT), 'worktree', 'remove', '--force', str(work / 'baseline')], capture_output=True)


if __name__ == '__main__':
    sys.exit(main())
