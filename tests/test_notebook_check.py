"""The notebook check (tests/notebooks.py) holds on any x86-64 CPU and still catches a changed result: white space as white
space, whole numbers exact, decimals within their printed precision plus a small relative tolerance, a cell's own
`#| tolerance:` where its prose says why."""
from notebooks import REL_TOL, rel_tol_of, same_text, texts

# issue 30's failure: the same run on an AMD EPYC and an Intel Xeon, one of ten validation tracks flipped
SAVED = ('   epoch  train_loss  ...  valid_track_accuracy  valid_track_macro_f1\n'
         '0      1    2.969274  ...                   0.3              0.216667')
PADDED = ('   epoch  train_loss  ...  valid_track_accuracy  valid_track_macro_f1\n'
          '0      1    2.969274  ...                   0.3                   0.216667')


def test_white_space_counts_as_white_space_not_as_a_number_of_spaces():
    assert same_text(SAVED, PADDED)
    assert not same_text('valid accuracy', 'validaccuracy')
    assert not same_text('genre: blues', 'genre: jazz')


def test_a_changed_result_is_caught():
    assert not same_text(SAVED, SAVED.replace('0.216667', '0.3'))            # one track in ten: a different result
    assert not same_text('accuracy 0.50', 'accuracy 0.64')                   # what the old 0.15 + 10% let through
    assert not same_text('loss 2.969', 'loss 2.990')
    assert not same_text('10 tracks', '11 tracks') and not same_text('(10, 64)', '(10, 65)')
    assert not same_text('epoch 2/3: loss 2.915', 'epoch 3/3: loss 2.915') and not same_text('10 rows: blues', '10 rows: jazz')
    assert not same_text('a 1.0', 'a 1.0 b')


def test_decimals_agree_to_their_printed_precision():
    assert same_text('loss 2.969', 'loss 2.970')                              # rounding of a value near 2.9695
    assert same_text('0.3', '0.300000') and same_text('0.216667', '0.2166667') and not same_text('0.3', '0.302000')
    assert same_text('max error 1.5e-07', 'max error 1.6e-07') and not same_text('max error 1.5e-07', 'max error 9.5e-07')
    assert same_text('nan', 'nan') and not same_text('0.5', 'nan')
    assert same_text(f'{1000 * (1 + REL_TOL / 2):.3f} ms', '1000.000 ms') and not same_text(f'{1000 * (1 + 3 * REL_TOL):.3f} ms', '1000.000 ms')


def test_a_cell_may_say_its_own_tolerance():
    assert rel_tol_of('#| tolerance: 0.02\nfit(learn)') == 0.02 and rel_tol_of('fit(learn)') == REL_TOL
    assert same_text('loss 1.419', 'loss 1.440', rel_tol_of('#| tolerance: 0.02\n')) and not same_text('loss 1.419', 'loss 1.440')


def test_what_differs_from_run_to_run_is_left_out():
    run = lambda folder: texts([{'output_type': 'stream', 'name': 'stdout',
                                 'text': f'saved {folder}/ck/small_cnn-c584449fc856278b/model.pt, <Styler at 0x7fca80851ed0>'}])
    assert run('/tmp/tmpk8st49p9') == run('/tmp/tmp_other12') == ['saved <tmp>/ck/small_cnn-<hash>/model.pt, <Styler>']
    number = lambda x: texts([{'output_type': 'execute_result', 'data': {'text/plain': f'difference {x!r}'}}])[0]
    assert number(1.4901161193847656e-08) == 'difference 1.4901161193847656e-08' and not same_text(number(1.49e-08), number(2.98e-08))


def test_a_cell_that_prints_nothing_now_is_compared_as_printing_nothing(tmp_path):
    "A saved output is not carried over into the fresh run of a cell that no longer prints it."
    import json
    from notebooks import differences, execute
    stale = {'output_type': 'stream', 'name': 'stdout', 'text': ['saved by older code\n']}
    nb = {'cells': [{'cell_type': 'code', 'id': 'quiet', 'metadata': {}, 'execution_count': None, 'source': ['x = 1'], 'outputs': [stale]}],
          'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    path = tmp_path / 'quiet.ipynb'; path.write_text(json.dumps(nb))
    fresh = execute(path)
    assert fresh == {'quiet': []} and len(differences(path, fresh)) == 1
