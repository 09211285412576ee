"""The web demo in a real browser: headless Chromium (Debian's package) driven by Selenium uploads real music and a
file that is not audio; the same endpoint through gradio_client."""
import os, shutil, sys
from pathlib import Path

import pytest

from conftest import free_port, running_server

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCREENSHOT = REPO / 'nbs' / 'images' / 'app.png'


def _browser_or_fail():
    "Debian's chromium and chromedriver (`.ci/run` installs them): a failure in CI when missing, else a skip."
    if shutil.which('chromium') and shutil.which('chromedriver'): return
    message = 'headless Chromium is needed (apt-get install chromium chromium-driver)'
    if os.environ.get('CI'): pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope='module')
def app_url(served_models, tmp_path_factory):
    "`pipeline app` on a free loopback port, serving the small models; stopped after the tests."
    port = free_port()
    log = tmp_path_factory.mktemp('app') / 'app.log'
    with running_server([str(BIN / 'pipeline'), 'app', '--port', str(port), '--models_dir', str(served_models)],
                        f'http://127.0.0.1:{port}/', {**os.environ, 'GRADIO_ANALYTICS_ENABLED': 'False'}, log):
        yield f'http://127.0.0.1:{port}/'
    print(log.read_text()[-2000:])


@pytest.fixture
def browser(tmp_path):
    _browser_or_fail()
    from selenium import webdriver
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which('chromium')
    for flag in ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync', '--window-size=1400,1500',
                 f'--user-data-dir={tmp_path / "chromium"}']:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which('chromedriver')), options=options)
    try: yield driver
    finally: driver.quit()


def _upload_and_analyse(driver, path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    wait = WebDriverWait(driver, 120)
    clear = driver.find_elements(By.CSS_SELECTOR, '#song button[aria-label="Clear"]')
    if clear: clear[0].click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#song input[type=file]'))[0].send_keys(str(path))
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, '#song input[type=file]') or d.find_elements(By.CSS_SELECTOR, '#song audio'))
    driver.find_element(By.CSS_SELECTOR, '#analyse').click()


def test_upload_shows_bars_timeline_and_spectrogram_and_survives_a_bad_file(app_url, browser, shared_data, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    genres = ['blues', 'classical', 'country', 'disco', 'hiphop', 'jazz', 'metal', 'pop', 'reggae', 'rock']
    wait = WebDriverWait(browser, 180)
    browser.get(app_url)
    song = shared_data / 'audio_formats' / 'Kevin_MacLeod_-_Vibe_Ace.hq.ogg'
    _upload_and_analyse(browser, song)
    wait.until(lambda d: any(g in d.find_element(By.CSS_SELECTOR, '#genres').text for g in genres))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#timeline img, #timeline svg, #timeline canvas'))
    assert browser.find_elements(By.CSS_SELECTOR, '#spectrogram img, #spectrogram svg, #spectrogram canvas')
    bars = browser.find_element(By.CSS_SELECTOR, '#genres').text
    browser.save_screenshot(str(tmp_path / 'app.png'))
    if os.environ.get('UPDATE_SCREENSHOT'):                                        # the README's picture, made small
        from PIL import Image
        shot = Image.open(tmp_path / 'app.png').convert('RGB')
        shot.resize((shot.width * 2 // 3, shot.height * 2 // 3), Image.LANCZOS).quantize(64).save(SCREENSHOT, optimize=True)
    print(bars)

    not_audio = tmp_path / 'notes.mp3'; not_audio.write_text('these are my notes, not a song\n' * 50)
    _upload_and_analyse(browser, not_audio)
    error = wait.until(lambda d: [e for e in d.find_elements(By.CSS_SELECTOR, '.toast-body, [data-testid="toast-body"]') if e.text.strip()])
    print('error shown:', error[0].text)
    assert 'not a readable audio file' in error[0].text, error[0].text
    assert 'Traceback' not in browser.page_source

    # two clips of different genres get their different genres (a model that always answers the same fails here)
    answers = {}
    for genre in ('classical', 'country'):
        _upload_and_analyse(browser, shared_data / 'gtzan_clips' / genre / f'{genre}.00000.wav')
        try: wait.until(lambda d: _top_genre(d, genres) == genre)
        except Exception: pass                                                     # the assertion below says what the page showed
        answers[genre] = _top_genre(browser, genres)
        why = browser.find_element(By.CSS_SELECTOR, '#why').text
        assert 'top tags:' in why and 'genre evidence:' in why, why                 # the tags behind the answer, as --explain lists them
    assert answers == {'classical': 'classical', 'country': 'country'}, answers


def _top_genre(driver, genres: list[str]) -> str | None:
    "The genre the bars put first: the first line of the label that is a genre's name."
    from selenium.webdriver.common.by import By
    lines = [l.strip() for l in driver.find_element(By.CSS_SELECTOR, '#genres').text.split('\n')]
    return next((l for l in lines if l in genres), None)


def test_the_page_plots_the_timeline_that_predictors_lists(served_models, shared_data):
    "The same answer, the same 3 s steps and the same tags on the page as from `predictors --timeline --explain`."
    from genre_classification.app import analyse
    from genre_classification.predict import open_predictor, predict_file
    clip, model = shared_data / 'gtzan_clips' / 'country' / 'country.00000.wav', served_models / 'real_music.json'
    genres, timeline, spectrogram, why = analyse(str(clip), model)
    listed = predict_file(clip, open_predictor(model), timeline=True)
    assert [round(float(t), 2) for t in timeline.axes[0].lines[0].get_xdata()] == [t for t, _, _ in listed.timeline]
    assert len(listed.timeline) == 10 and max(genres, key=genres.get) == listed.genre
    assert f'top tags: {listed.tags[0][0]}' in why


def test_the_same_endpoint_through_gradio_client(app_url, shared_data, served_models):
    from gradio_client import Client, handle_file
    client = Client(app_url, verbose=False)
    label, timeline, spectrogram, why = client.predict(handle_file(str(shared_data / 'gtzan_clips' / 'blues' / 'blues.00000.wav')),
                                                  'real music (default): musicnn tags + feature MLP', api_name='/analyse')
    assert label['label'] in {'blues', 'classical', 'country', 'disco', 'hiphop', 'jazz', 'metal', 'pop', 'reggae', 'rock'}
    assert len(label['confidences']) >= 5 and timeline and spectrogram and 'genre evidence:' in why


@pytest.fixture(scope='module')
def own_app_url(own_models, tmp_path_factory):
    "`pipeline app` on a models folder whose one model has labels of our own (an empty user cache: no real-music model to offer)."
    port, work = free_port(), tmp_path_factory.mktemp('own-app')
    env = {**os.environ, 'GRADIO_ANALYTICS_ENABLED': 'False', 'XDG_CACHE_HOME': str(work / 'cache')}
    with running_server([str(BIN / 'pipeline'), 'app', '--port', str(port), '--models_dir', str(own_models)],
                        f'http://127.0.0.1:{port}/', env, work / 'app.log', cwd=work):
        yield f'http://127.0.0.1:{port}/'
    print((work / 'app.log').read_text()[-2000:])


def test_the_page_shows_the_models_own_labels(own_app_url, browser, shared_data):
    "A model trained on labels that are none of GTZAN's: the bars and the timeline's legend name those labels, nothing else."
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from conftest import OURS
    browser.get(own_app_url)
    _upload_and_analyse(browser, shared_data / 'gtzan_clips' / 'country' / 'country.00000.wav')
    WebDriverWait(browser, 180).until(lambda d: _top_genre(d, OURS) is not None)
    lines = {l.strip() for l in browser.find_element(By.CSS_SELECTOR, '#genres').text.split('\n')}
    assert set(OURS) <= lines and not lines & {'blues', 'classical', 'country', 'jazz', 'pop', 'reggae'}, lines
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, '#timeline img, #timeline svg, #timeline canvas'))
    assert 'own_labels_cnn.onnx' in browser.find_element(By.CSS_SELECTOR, '#model').text or \
        'own_labels_cnn.onnx' in browser.page_source


def test_a_bad_option_is_one_line_before_the_page_is_built(tmp_path, monkeypatch, capsys):
    "`pipeline app --port 70000` is refused in one line naming the option (exit 2), before any model loads or page is built."
    import genre_classification.app as app
    from genre_classification.cli import pipeline_cli
    monkeypatch.setattr(app, 'build_app', lambda *a, **k: pytest.fail('the page was built'))
    assert pipeline_cli(['app', '--port', '70000', '--models_dir', str(tmp_path)]) == 2
    assert capsys.readouterr().err == "pipeline app: error: bad parameter 'port' = 70000: Input should be less than or equal to 65535\n"
