"""The musicnn tagger quantized to int8 (onnxruntime static QDQ, per-channel weights), checked against musicnn's own outputs.

Calibrated on patches of the built-in synthetic music (10 genres x 12 s); accepted only if, on every file and tagger of
`../shared/data/musicnn_reference.json`, the top-5 tags equal musicnn's and every mean activation is within 0.02 (the fp32
tagger is checked the same way beside it); then its speed against fp32 at 1 and 2 threads. Prints figures, decides nothing.

    .venv/bin/python benchmarks/tagger_int8.py [--tagger models/musicnn_tagger.onnx] [--calibration MinMax|Percentile|Entropy] [--conv-only]
"""
import argparse, json, statistics, tempfile, time
from pathlib import Path

import numpy as np
import soxr

from genre_classification.core import GENRES
from genre_classification.onnx_files import load_onnx
from genre_classification.pretrained import musicnn_input_of_file, musicnn_patches
from genre_classification.synth.genres import synth_track

SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'data'


def calibration_patches() -> list[np.ndarray]:
    return [p for i, g in enumerate(GENRES) for p in musicnn_patches([soxr.resample(synth_track(g, 100 + i, 12.0), 22050, 16000).astype(np.float32)])]


def quantize(tagger: Path, target: Path, method: str, conv_only: bool) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    pre = target.with_name('pre.onnx'); quant_pre_process(str(tagger), str(pre))
    patches = calibration_patches()
    class Reader(CalibrationDataReader):
        def __init__(self): self.it = iter(patches)
        def get_next(self): x = next(self.it, None); return None if x is None else {'input': x[None]}
    quantize_static(str(pre), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QUInt8, calibrate_method=getattr(CalibrationMethod, method),
                    op_types_to_quantize=['Conv', 'MatMul', 'Gemm'] if conv_only else None)
    print(f'calibrated on {len(patches)} patches ({method}{", convolutions and dense layers only" if conv_only else ""})')
    return target


def parity(session, meta, reference: dict) -> tuple[float, int, int]:
    "Largest mean-activation difference from musicnn's own, and how many (file, tagger) pairs keep the same top-5, of how many."
    worst, same, pairs = 0.0, 0, 0
    for name, per_model in reference.items():
        if name == 'about': continue
        x = musicnn_input_of_file(SHARED / name)
        outs = [np.concatenate(parts) for parts in zip(*(session.run(None, {'input': p[None]})[:-1] for p in x))]
        for k, m in enumerate(meta.taggers):
            means = dict(zip(meta.tags[m], outs[k].mean(0)))
            worst = max(worst, max(abs(means[t] - v) for t, v in per_model[m]['mean_activation'].items()))
            same += sorted(means, key=means.get, reverse=True)[:5] == per_model[m]['top5']; pairs += 1
    return worst, same, pairs


def ms_per_patch(session, patch) -> float:
    for _ in range(3): session.run(None, {'input': patch})
    return 1000 * statistics.median(timed(lambda: session.run(None, {'input': patch})) for _ in range(15))


def timed(fn) -> float:
    t = time.perf_counter(); fn(); return time.perf_counter() - t


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument('--tagger', default='models/musicnn_tagger.onnx'); args.add_argument('--calibration', default='MinMax')
    args.add_argument('--conv-only', action='store_true')
    a = args.parse_args()
    tagger = Path(a.tagger)
    int8 = quantize(tagger, Path(tempfile.mkdtemp()) / 'tagger_int8.onnx', a.calibration, a.conv_only)
    reference = json.loads((SHARED / 'musicnn_reference.json').read_text())
    fp32, meta = load_onnx(tagger, 1)
    import onnxruntime as ort
    options = ort.SessionOptions(); options.intra_op_num_threads = 1
    quantized = ort.InferenceSession(str(int8), options, providers=['CPUExecutionProvider'])   # no metadata of ours: opened directly
    for label, session in (('fp32', fp32), ('int8', quantized)):
        worst, same, pairs = parity(session, meta, reference)
        verdict = 'accepted' if same == pairs and worst <= 0.02 else 'rejected'
        print(f'{label}: max |mean activation - musicnn| {worst:.4f} (allowed 0.02), same top-5 in {same}/{pairs} -> {verdict}')
    patch = calibration_patches()[0][None]
    for threads in (1, 2):
        options.intra_op_num_threads = threads
        t32 = ms_per_patch(load_onnx(tagger, threads)[0], patch); t8 = ms_per_patch(ort.InferenceSession(str(int8), options, providers=['CPUExecutionProvider']), patch)
        print(f'{threads} thread(s): fp32 {t32:.1f} ms/patch, int8 {t8:.1f} ms/patch, speed-up {t32 / t8:.2f}x')


if __name__ == '__main__':
    main()
