"""Prediction speed on this machine's CPU: prints its figures (no pass/fail).

For a 30-second clip: decode, log-mel windows and model time separately; onnxruntime vs torch eager on the same weights
at batch 1 and 32; end-to-end time per clip after warm-up; files per second for a folder of 100 clips. Then the pretrained
musicnn tagger (both models, ONNX) and the real-music default model (tagger + feature MLP): a 30 s clip end to end,
files per second over the same folder, and this process's peak memory.

    .venv/bin/python benchmarks/predict.py [--model resnet18] [--clips 100] [--threads N] [--repeat 20] [--warmup 3]

(The smoke test's run times each step once, without warm-up.)
"""
import argparse, statistics, sys, tempfile, time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from genre_classification.core import AudioConfig, GENRES, project_root
from genre_classification.data import load_audio, stream_audio
from genre_classification.export import export_onnx
from genre_classification.models import latest_model_file
from genre_classification.models import build_model
from genre_classification.input_kinds import logmel_windows
from genre_classification.predict import Predictor, make_real_music_model, open_predictor, predict_file, predict_paths
from genre_classification.synth.genres import synth_track

REPEAT, WARMUP = 20, 3          # `--repeat` and `--warmup`


def timed(fn, repeat: int | None = None, warmup: int | None = None) -> float:
    "Median seconds of `repeat` calls of `fn` after `warmup` calls (onnxruntime sizes its memory arena in the first runs)."
    repeat, warmup = repeat or REPEAT, WARMUP if warmup is None else warmup
    for _ in range(warmup): fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times)


def model_files(name: str, workdir: Path) -> tuple[Path, Path, str]:
    "The newest trained model of `name` (as `make train` leaves it) and its ONNX export; else the same architecture untrained."
    try:
        pt = latest_model_file(project_root() / 'checkpoints', name); how = f'trained ({pt.parent.name})'
    except Exception:
        pt = workdir / f'{name}.pt'; how = 'untrained weights (no trained model found; speed is the same)'
        meta = {'model': name, 'classes': GENRES, 'input_kind': 'logmel', 'audio': AudioConfig().model_dump(), 'trained_on': 'nothing', 'synthetic_only': True}
        torch.save({'model': build_model(name).state_dict(), 'meta': meta}, pt)
    return pt, export_onnx(pt, workdir / f'{name}.onnx'), how


def main():
    global REPEAT, WARMUP
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument('--model', default='resnet18'); args.add_argument('--clips', type=int, default=100)
    args.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    args.add_argument('--repeat', type=int, default=REPEAT, help='timed calls of each step (median); the real-music ones half as many')
    args.add_argument('--warmup', type=int, default=WARMUP, help='untimed calls of each step before them')
    a = args.parse_args()
    REPEAT, WARMUP = max(1, a.repeat), max(0, a.warmup)
    if a.threads: torch.set_num_threads(a.threads)
    work = Path(tempfile.mkdtemp())
    shared = project_root().parent / 'shared' / 'data' / 'gtzan_clips' / 'blues' / 'blues.00000.wav'
    clip = shared if shared.exists() else work / 'clip.wav'
    if not shared.exists(): sf.write(clip, synth_track('blues', 0, 30.0), 22050)
    pt, onnx_file, how = model_files(a.model, work)
    onnx_pred, torch_pred = Predictor(onnx_file), Predictor(pt)
    audio = onnx_pred.audio
    print(f'machine: {torch.get_num_threads()} torch threads; model: {a.model}, {how}; clip: {clip.name} (30 s)')

    y = load_audio(clip)
    decode = timed(lambda: load_audio(clip))
    windows = np.stack(list(logmel_windows([y], audio)))[:, None]
    features = timed(lambda: np.stack(list(logmel_windows([y], audio))))
    print(f'\n30 s clip, {len(windows)} windows of {audio.segment_seconds:g} s')
    print(f'  decode + resample to 22050 Hz mono : {decode * 1000:7.1f} ms')
    print(f'  log-mel windows                    : {features * 1000:7.1f} ms')

    print(f'\nmodel time (same weights), median of {REPEAT}' + (' after warm-up:' if WARMUP else ':'))
    for batch in (1, 32):
        x = np.repeat(windows, -(-batch // len(windows)), axis=0)[:batch]
        t_onnx = timed(lambda: onnx_pred.run(x)); t_torch = timed(lambda: torch_pred.run(x))
        if batch == 1: torch_time_b1 = t_torch
        print(f'  batch {batch:2d}: onnxruntime {t_onnx * 1000:7.1f} ms   torch eager {t_torch * 1000:7.1f} ms   '
              f'speed-up {t_torch / t_onnx:4.1f}x')
    import onnxruntime as ort
    spinning = ort.InferenceSession(str(onnx_file), providers=['CPUExecutionProvider'])   # onnxruntime's default threading
    t_spin = timed(lambda: spinning.run(None, {'input': windows[:1]}))
    print(f'  batch  1, onnxruntime with its default spinning threads: {t_spin * 1000:.1f} ms, {torch_time_b1 / t_spin:.1f}x torch eager '
          f'(predictors turns spinning off: the spinning threads slow decoding and features between batches)')
    t_clip_onnx = timed(lambda: onnx_pred.run(windows)); t_clip_torch = timed(lambda: torch_pred.run(windows))
    print(f'  one clip ({len(windows)} windows in one batch): onnxruntime {t_clip_onnx * 1000:.1f} ms, torch eager {t_clip_torch * 1000:.1f} ms')

    end_to_end = timed(lambda: predict_file(clip, onnx_pred))
    print(f'\nend to end, one 30 s clip (decode + features + ONNX model): {end_to_end * 1000:.1f} ms (target < 100 ms)')

    folder = work / 'clips'; folder.mkdir()
    for i in range(a.clips): sf.write(folder / f'clip{i:03d}.wav', y, 22050)
    t = time.perf_counter(); results = predict_paths([folder], onnx_pred, progress=False); elapsed = time.perf_counter() - t
    assert all(r.error is None for r in results)
    print(f'folder of {a.clips} clips of 30 s: {elapsed:.1f} s, {a.clips / elapsed:.1f} files/s (one process)')
    real_music(clip, folder, work, a.clips)


def real_music(clip: Path, folder: Path, work: Path, n_clips: int) -> None:
    "The musicnn tagger alone and the real-music default (tagger + feature MLP), end to end, on the same clip and folder."
    real = open_predictor(make_real_music_model(work / 'real'))        # made here (the packaged feature MLP) so that no user cache is touched
    tags = timed(lambda: real.tag_activations(clip), repeat=max(1, REPEAT // 2))
    n_patches = len(real.tag_activations(clip))
    both = timed(lambda: predict_file(clip, real), repeat=max(1, REPEAT // 2))
    print(f'\nmusicnn tagger (MTT + MSD, ONNX), one 30 s clip end to end (decode at 16 kHz, {n_patches} log-mel patches, both taggers): '
          f'{tags * 1000:.1f} ms (target < 250 ms)')
    print(f'real-music default (tagger + Kaggle features + feature MLP), one 30 s clip end to end: {both * 1000:.1f} ms')
    for name, fn in [('tagger alone', lambda f: real.tag_activations(f)), ('real-music default', lambda f: predict_file(f, real))]:
        files = sorted(folder.iterdir())
        t = time.perf_counter()
        for f in files: fn(f)
        elapsed = time.perf_counter() - t
        print(f'folder of {n_clips} clips of 30 s, {name}: {elapsed:.1f} s, {n_clips / elapsed:.1f} files/s (one process)')
    import subprocess
    predictors = Path(sys.executable).parent / 'predictors'
    # a small helper process runs the command and reports its child's peak memory: measured from here, a child forked from
    # this large process would count the pages it shared with us before its exec
    helper = ('import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); '
              'print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)')
    t = time.perf_counter()
    done = subprocess.run([sys.executable, '-c', helper, str(predictors), str(folder), '--model', str(real.model_file), '--format', 'csv'],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    assert done.returncode == 0, done.stderr[-2000:]
    print(f'`predictors` command, real-music default, the same folder: {elapsed:.1f} s with start-up, {n_clips / elapsed:.1f} files/s; '
          f'peak memory {int(done.stdout.split()[-1]) / 1024:.0f} MB')


if __name__ == '__main__':
    sys.exit(main())
