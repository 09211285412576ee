"""The pretrained music tagger: TensorFlow checkpoint reading (good, truncated and corrupt files), getting the weights,
the ONNX tagger written from them against what musicnn's own TensorFlow code computes, and the PyTorch port against it."""
import json, shutil, struct

import numpy as np
import pytest

from genre_classification.core import BadInputError
from genre_classification.pretrained import (MUSICNN_MODELS, checkpoint_index, masked_crc32c, musicnn_input_of_file,
                                             musicnn_weights_dir, read_checkpoint, unpack_musicnn_wheel)


def _varint(n: int) -> bytes:
    out = b''
    while True:
        out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)]); n >>= 7
        if not n: return out

def _field(number: int, value) -> bytes:
    if isinstance(value, int): return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value

def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    body = b''.join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    return body + struct.pack('<II', 0, 1)

def _with_trailer(block: bytes) -> bytes: return block + b'\x00' + struct.pack('<I', masked_crc32c(block + b'\x00'))

def write_checkpoint(index_file, tensors: dict[str, np.ndarray]) -> None:
    "A TensorFlow tensor bundle (float32 tensors), written independently of the reader, as TensorFlow lays it out."
    data, entries = b'', [(b'', _field(1, 1))]                   # header: one shard, little-endian
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name], np.float32).tobytes()
        shape = b''.join(_field(2, _field(1, d)) for d in tensors[name].shape)
        entries.append((name.encode(), _field(1, 1) + _field(2, shape) + _field(4, len(data)) + _field(5, len(raw))
                        + _varint(6 << 3 | 5) + struct.pack('<I', masked_crc32c(raw))))
        data += raw
    data_block = _block(entries)
    index_block = _block([(entries[-1][0], _varint(0) + _varint(len(data_block)))])
    table = _with_trailer(data_block)
    footer = (_varint(0) + _varint(0) + _varint(len(table)) + _varint(len(index_block))).ljust(40, b'\x00')
    index_file.write_bytes(table + _with_trailer(index_block) + footer + struct.pack('<Q', 0xDB4775248B80FB57))
    index_file.with_name(index_file.name.removesuffix('.index') + '.data-00000-of-00001').write_bytes(data)


@pytest.fixture
def small_checkpoint(tmp_path):
    tensors = {'conv2d/kernel': np.arange(24, dtype=np.float32).reshape(2, 3, 1, 4), 'dense/bias': np.array([0.5, -1.5], np.float32),
               'scalar': np.array(3.0, np.float32)}
    index = tmp_path / 'model.ckpt.index'
    write_checkpoint(index, tensors)
    return index, tensors


def test_reads_what_was_written(small_checkpoint):
    index, tensors = small_checkpoint
    got = read_checkpoint(index)
    assert sorted(got) == sorted(tensors)
    for name, value in tensors.items():
        assert got[name].shape == value.shape and np.array_equal(got[name], value)
    assert list(read_checkpoint(index, ['dense/bias'])) == ['dense/bias']
    with pytest.raises(BadInputError, match='lacks tensor'): read_checkpoint(index, ['nope'])


def test_truncated_and_corrupt_files_are_clear_errors(small_checkpoint, tmp_path):
    index, _ = small_checkpoint
    data = index.with_name('model.ckpt.data-00000-of-00001')
    original_index, original_data = index.read_bytes(), data.read_bytes()

    data.write_bytes(original_data[:-10])                                  # truncated data
    with pytest.raises(BadInputError, match='truncated') as e: read_checkpoint(index)
    assert str(data) in str(e.value) and 'fetch the weights anew' in str(e.value)

    corrupt = bytearray(original_data); corrupt[5] ^= 0xFF; data.write_bytes(bytes(corrupt))   # one flipped byte
    with pytest.raises(BadInputError, match='fails its checksum'): read_checkpoint(index)

    data.unlink()
    with pytest.raises(BadInputError, match='data file is missing'): read_checkpoint(index)
    data.write_bytes(original_data)

    index.write_bytes(original_index[:-20])                                # truncated index: no footer
    with pytest.raises(BadInputError, match='not a TensorFlow checkpoint index'): read_checkpoint(index)
    bad = bytearray(original_index); bad[3] ^= 0x01; index.write_bytes(bytes(bad))   # a flipped bit in a block
    with pytest.raises(BadInputError, match='corrupt'): read_checkpoint(index)
    index.write_bytes(b'hello')
    with pytest.raises(BadInputError, match='not a TensorFlow checkpoint index'): read_checkpoint(index)
    index.unlink()
    with pytest.raises(BadInputError, match='no such checkpoint index'): read_checkpoint(index)


@pytest.fixture(scope='module')
def weights():
    "The published weights: fetched from PyPI once into the user cache (pip download), as a first use does."
    return musicnn_weights_dir()


def test_weights_come_from_a_wheel_or_folder(weights, tmp_path):
    for m in MUSICNN_MODELS: assert checkpoint_index(weights, m).is_file()
    assert 'Permission to use' in (weights / 'LICENSE.md').read_text()
    assert musicnn_weights_dir(weights, cache=tmp_path / 'c') == weights        # an unpacked folder is used as it is
    with pytest.raises(BadInputError, match='no such musicnn wheel'): musicnn_weights_dir(tmp_path / 'missing.whl')
    (tmp_path / 'fake.whl').write_bytes(b'PK not really')
    with pytest.raises(BadInputError, match='cannot read the musicnn wheel'): unpack_musicnn_wheel(tmp_path / 'fake.whl', tmp_path / 'x')


def test_a_damaged_cached_checkpoint_is_an_error_not_a_wrong_model(weights, tmp_path):
    from genre_classification.musicnn import load_musicnn
    copy = shutil.copytree(weights, tmp_path / 'w')
    data = copy / 'MSD_musicnn' / '.data-00000-of-00001'
    from genre_classification.pretrained import read_table, tensor_entry
    kernel = tensor_entry(read_table(copy / 'MSD_musicnn' / '.index')[b'dense/kernel'])
    original = data.read_bytes()
    raw = bytearray(original); raw[kernel.offset + 100] ^= 0x40; data.write_bytes(bytes(raw))   # one bit of a weight the model uses
    with pytest.raises(BadInputError, match="'dense/kernel' fails its checksum"): load_musicnn('MSD_musicnn', copy)
    data.write_bytes(original[:kernel.offset + 100])
    with pytest.raises(BadInputError, match='truncated'): load_musicnn('MSD_musicnn', copy)


@pytest.fixture(scope='module')
def tagger(weights, tmp_path_factory):
    "The ONNX tagger that prediction runs, written from the published weights without torch: its session and record."
    from genre_classification.onnx_files import load_onnx
    from genre_classification.tagger import write_tagger
    return load_onnx(write_tagger(tmp_path_factory.mktemp('tagger') / 'musicnn_tagger.onnx', weights))


def test_parity_with_musicnn(tagger, shared_data):
    "The ONNX tagger: same top-5 tags and every mean activation within 0.01 of musicnn's own TensorFlow outputs, on all reference files."
    from functools import partial
    from genre_classification.tagger import parity_report, tagger_means
    reference = json.loads((shared_data / 'musicnn_reference.json').read_text())
    rows = parity_report(reference, partial(tagger_means, *tagger), shared_data)
    assert len(rows) == 8
    for r in rows:
        print(r['file'], r['model'], f"max |difference| {r['max_abs_difference']:.6f}", r['top5'])
        assert r['same_top5'], r
        assert r['max_abs_difference'] < 0.01, r


def test_the_onnx_tagger_is_the_pytorch_port(weights, tagger, shared_data):
    "On a real clip, the tagger written from the weights and the PyTorch port (the probe's backbone) agree within 1e-5 of each output's largest value."
    import torch
    from genre_classification.musicnn import MusicnnPair, load_musicnn
    session, meta = tagger
    pair = MusicnnPair({m: load_musicnn(m, weights) for m in meta.taggers}).eval()
    patches = musicnn_input_of_file(shared_data / 'gtzan_clips' / 'blues' / 'blues.00000.wav')
    with torch.no_grad(): ours = [t.numpy() for t in pair(torch.as_tensor(patches))]
    for name, onnx_out, torch_out in zip(meta.outputs, session.run(None, {'input': patches}), ours):
        scale = np.abs(torch_out).max()
        print(name, onnx_out.shape, f'max |difference| {np.abs(onnx_out - torch_out).max():.2e} of at most {scale:.2f}')
        assert onnx_out.shape == torch_out.shape and np.abs(onnx_out - torch_out).max() <= 1e-5 * scale, name
