"""Kaggle features of 20 real-length clips (30 s): our extractor vs the reference way (one librosa call per feature on the
raw signal, librosa.effects.hpss, files one after another), same run, same machine; values compared with the parity tolerance.

    .venv/bin/python benchmarks/features.py [--clips 20] [--runs 3] [--memory-clips 200]
"""
import argparse, sys, tempfile
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf

from common import fmt, peak_rss_mb, repeat, table
from genre_classification.core import GENRES, project_root
from genre_classification.data import find_tracks
from genre_classification.features import KAGGLE_FEATURES, extract_features, feature_mismatches
from genre_classification.datasets import make_default_dataset

SR = 22050


def reference_features(path) -> dict:
    "The straightforward way: librosa.load, then one librosa call per feature, HPSS with librosa.effects.hpss."
    y, sr = librosa.load(path, sr=SR)
    out = {}
    def summarise(name, values): out[f'{name}_mean'], out[f'{name}_var'] = float(np.mean(values)), float(np.var(values))
    summarise('chroma_stft', librosa.feature.chroma_stft(y=y, sr=sr))
    summarise('rms', librosa.feature.rms(y=y))
    summarise('spectral_centroid', librosa.feature.spectral_centroid(y=y, sr=sr))
    summarise('spectral_bandwidth', librosa.feature.spectral_bandwidth(y=y, sr=sr))
    summarise('rolloff', librosa.feature.spectral_rolloff(y=y, sr=sr))
    summarise('zero_crossing_rate', librosa.feature.zero_crossing_rate(y))
    harmony, percussive = librosa.effects.hpss(y)
    summarise('harmony', harmony); summarise('perceptr', percussive)
    out['tempo'] = float(np.atleast_1d(librosa.beat.beat_track(y=y, sr=sr)[0])[0])
    for i, row in enumerate(librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20), 1): summarise(f'mfcc{i}', row)
    return out


def clips(n: int, work: Path) -> pd.DataFrame:
    "n clips of 30 s: the shared real GTZAN clips, then built-in synthetic ones."
    shared = project_root().parent / 'shared' / 'data' / 'gtzan_clips'
    real = find_tracks(shared) if shared.exists() else pd.DataFrame(columns=['track_id', 'genre', 'path'])
    per_genre = -(-(n - len(real)) // len(GENRES))
    synthetic = find_tracks(make_default_dataset(work / 'synthetic', tracks_per_genre=max(per_genre, 3), seconds=30.0, progress=False))
    return pd.concat([real, synthetic]).head(n).reset_index(drop=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--clips', type=int, default=20); p.add_argument('--runs', type=int, default=3)
    p.add_argument('--memory-clips', type=int, default=200, help='clips for the memory figure (0: skip)')
    a = p.parse_args()
    work = Path(tempfile.mkdtemp())
    tracks = clips(a.clips, work)
    n = len(tracks)
    print(f'{n} clips of 30 s ({(tracks.path.str.contains("gtzan_clips")).sum()} real GTZAN, the rest built-in synthetic)')

    reference_rows = {}
    def reference(): reference_rows.update({p: reference_features(p) for p in tracks.path})
    counter = iter(range(10**6))
    def ours(): extract_features(tracks, work / f'ours{next(counter)}.csv', n_workers=2, progress=False)
    t_ref = repeat(reference, a.runs)
    t_ours = repeat(ours, a.runs)
    ours_table = pd.read_csv(work / 'ours0.csv').set_index('source')
    mismatched = {}
    for path, ref in reference_rows.items():
        row = ours_table.loc[path, KAGGLE_FEATURES].to_dict()
        for k in feature_mismatches(row, ref): mismatched[k] = mismatched.get(k, 0) + 1
    table('Kaggle features (57 + length), 30 s clips', ['way', 'time per run', 'clips/s', 'ratio'],
          [['reference (librosa per feature, serial)', fmt(t_ref), f'{n / t_ref[0]:.2f}', '1.0x'],
           ['ours (shared STFT, HPSS once, 2 processes)', fmt(t_ours), f'{n / t_ours[0]:.2f}', f'{t_ref[0] / t_ours[0]:.1f}x']])
    print(f'  parity (1% relative; 1e-4 absolute for harmony_mean and perceptr_mean): '
          f'{sum(mismatched.values())} mismatches in {n * len(KAGGLE_FEATURES)} values' + (f': {mismatched}' if mismatched else ''))
    print(f'  peak memory: this process {peak_rss_mb():.0f} MB, largest worker process {peak_rss_mb(children=True):.0f} MB')

    if a.memory_clips:
        many = find_tracks(make_default_dataset(work / 'many', tracks_per_genre=-(-a.memory_clips // 10), seconds=30.0, progress=False))
        extract_features(many, work / 'many.csv', n_workers=2, progress=False)
        print(f'  {len(many)} clips: peak memory of the parent {peak_rss_mb():.0f} MB, largest worker {peak_rss_mb(children=True):.0f} MB '
              f'(streamed to CSV: it does not grow with the number of clips)')


if __name__ == '__main__':
    sys.exit(main())
