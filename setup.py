"Package set-up. All metadata lives in settings.ini (nbdev 2's pattern): edit there, not here."
from configparser import ConfigParser
import setuptools, shlex

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + 'lib_name user branch license status min_python audience language'.split()
for o in expected: assert o in cfg, f'missing expected setting: {o}'
setup_cfg = {o: cfg[o] for o in cfg_keys}

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))

def requirements(key): return shlex.split(cfg.get(key, ''))

# Every `<group>_requirements` key in settings.ini becomes an extra; `all` is their union (without `dev`).
extras = {k[:-len('_requirements')]: requirements(k) for k in cfg if k.endswith('_requirements')}
extras['all'] = sorted({r for g, rs in extras.items() if g != 'dev' for r in rs})
lib = cfg['lib_name']

setuptools.setup(
    name=lib,
    license=lic[0],
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title(),
                 'Programming Language :: Python :: ' + cfg['min_python']]
                + (['License :: ' + lic[1]] if lic[1] else []),
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[lib, lib + '.*']),
    package_data={lib: ['resources/*', 'resources/*/*']},
    install_requires=requirements('requirements'),
    extras_require=extras,
    python_requires='>=' + cfg['min_python'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': cfg.get('console_scripts', '').split(),
                  'genre_classification.families': cfg.get('model_families', '').split(),
                  'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d']},
    **setup_cfg)
