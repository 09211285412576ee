# The project's images, in stages (`make image` builds predict and dl_pipelines; README.md, "The container"):
#   base          Python 3.11 slim and uv: ffmpeg comes with the package (imageio-ffmpeg's static binary), libsndfile with soundfile
#   awscli        base + the AWS command line, for DVC remotes on S3
#   wheel         builds the project's wheel, and lists each image's requirements from settings.ini
#   predict       the inference image: the package with its base and serve extras, the real-music model made at build
#                 time and registered for `pipeline serve`; no torch, no compilers, a non-root user
#   app, batch    predict + the web demo (gradio) / + Ray batch prediction (also a Ray node image)
#   dl_pipelines  the training image: training extras (torch from TORCH_INDEX), the notebooks, data pulled with DVC
#
#   docker build --target predict -t genre-classification:predict .
#   docker run --rm -v ~/Music:/music:ro genre-classification:predict                     # predictors /music
#   docker run --rm -p 5001:5001 genre-classification:predict pipeline serve --host 0.0.0.0
#   docker build --target dl_pipelines -t genre-classification:dl_pipelines \
#     --secret id=aws_config,src=$HOME/.aws/config --secret id=aws_credentials,src=$HOME/.aws/credentials .
#   docker run --rm -v $PWD/runs:/app/runs genre-classification:dl_pipelines        # papermill nbs/03_train.ipynb -> runs/
# No `# syntax=` line: the engines' own front ends know RUN --mount (docker 23 and later, podman), and naming one would
# make docker fetch it from a registry, which a machine building on the stand-in base cannot reach.

FROM python:3.11-slim AS base
# No system audio libraries: soundfile's wheel carries libsndfile (MP3, Ogg, FLAC) and imageio-ffmpeg, a requirement of
# the package, its static ffmpeg for the rest; Debian's ffmpeg beside it would be a second copy (472 MB).
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    UV_SYSTEM_PYTHON=1 UV_COMPILE_BYTECODE=1 UV_NO_CACHE=1
# uv installs the requirements several times faster than pip: it fetches and unpacks in parallel. (A bind mount from a
# stage would keep it out of the images, but buildah 1.28 cannot mount a stage that it takes from its cache.) dumb-init
# runs as process 1 and passes signals on: Python there ignores SIGTERM, and `docker stop` would wait 10 s, then kill.
RUN pip install "uv>=0.13,<0.14" "dumb-init>=1.2,<2"
ENTRYPOINT ["dumb-init", "--"]
WORKDIR /app

FROM base AS awscli
RUN uv pip install "awscli>=1.33"

FROM base AS wheel
# Each image's requirements as a file of its own, taken from settings.ini's lines as setup.py takes them: the images
# install them in a layer that a change to the package alone leaves cached. torch and torchvision apart, from their own index.
COPY settings.ini ./
RUN mkdir /dist && req() { sed -n "s/^$1 *= *//p" settings.ini | xargs -n1; } \
 && { req requirements; req serve_requirements; } > /dist/predict.txt \
 && req app_requirements > /dist/app.txt && req batch_requirements > /dist/batch.txt \
 && req train_requirements | grep -E '^torch(vision)?[=<>~!]' > /dist/torch.txt \
 && { req requirements; req train_requirements | grep -vxFf /dist/torch.txt; req dvc_requirements; } > /dist/dl_pipelines.txt
COPY setup.py README.md ./
COPY genre_classification ./genre_classification
RUN pip wheel --no-deps --wheel-dir /dist/wheel .

FROM base AS predict
COPY --from=wheel /dist/predict.txt /tmp/
RUN uv pip install -r /tmp/predict.txt
COPY --from=wheel /dist/wheel /tmp/wheel/
RUN uv pip install --no-deps /tmp/wheel/*.whl && pip check && rm -r /tmp/wheel \
 && useradd --create-home --uid 1000 app && chown app /app
USER app
# The real-music model (musicnn's weights are fetched from PyPI for it, then dropped: the model holds them), registered
# in the image's MLflow registry so that `pipeline serve` starts serving at once.
RUN pipeline build-real-music-model --models_dir models && pipeline register-model && rm -rf ~/.cache/genre_classification
EXPOSE 5001
CMD ["predictors", "/music"]

FROM predict AS app
USER root
COPY --from=wheel /dist/app.txt /tmp/
RUN uv pip install -r /tmp/app.txt && pip check
USER app
EXPOSE 7860
CMD ["pipeline", "app", "--host", "0.0.0.0"]

FROM predict AS batch
USER root
COPY --from=wheel /dist/batch.txt /tmp/
RUN uv pip install -r /tmp/batch.txt && pip check
USER app
# Genres of a library mounted at /music as Parquet in /out; as a Ray node: `ray start --address=HEAD:6379 --block`.
CMD ["pipeline", "batch-predict", "/music", "--output", "/out"]

FROM awscli AS dl_pipelines
# PyTorch's CPU wheels by default: the image has no GPU runtime, and PyPI's Linux torch is the CUDA build (4 GB more).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY --from=wheel /dist/torch.txt /dist/dl_pipelines.txt /tmp/
RUN uv pip install --index-url "$TORCH_INDEX" -r /tmp/torch.txt
# dvc-s3: DVC's S3 remotes
RUN uv pip install -r /tmp/dl_pipelines.txt "dvc-s3>=3.2"
COPY --from=wheel /dist/wheel /tmp/wheel/
RUN uv pip install --no-deps /tmp/wheel/*.whl && pip check && rm -r /tmp/wheel \
 && useradd --create-home --uid 1000 app && mkdir -p data runs checkpoints models mlruns && chown -R app /app
# settings.ini marks /app as the project's root: data/, runs/, checkpoints/ and mlruns/ are taken below it. dvc.lock
# names the data and checkpoints of your last `dvc repro` (its pattern may match nothing: no lock, nothing to pull).
COPY --chown=app settings.ini dvc.yaml params.yaml .dvcignore dvc.loc[k] ./
COPY --chown=app .dvc ./.dvc
# The AWS files exist for this step alone. The image has no .git (no_scm), and a remote that is a folder outside the
# image cannot be pulled from in it.
RUN --mount=type=secret,id=aws_config,target=/root/.aws/config \
    --mount=type=secret,id=aws_credentials,target=/root/.aws/credentials \
    for f in /root/.aws/config /root/.aws/credentials; do [ -f $f ] && echo "dvc pull: $f mounted for this step"; done; \
    if [ ! -f dvc.lock ]; then echo 'dvc pull: no dvc.lock, nothing to pull'; \
    else dvc config --local core.no_scm true; url=$(dvc remote list | awk -v name="$(dvc remote default)" '$1 == name {print $2}'); \
         case "$url" in *://*) dvc pull --no-run-cache && chown -R app /app ;; \
                        *) echo "dvc pull: skipped, the default remote is a local folder ($url)" ;; esac; fi
# The notebooks last: editing one rebuilds this layer alone.
COPY nbs ./nbs
USER app
CMD ["papermill", "nbs/03_train.ipynb", "runs/03_train.ipynb", "-p", "model", "resnet18", "-p", "checkpoints_path", "runs/checkpoints", \
     "--no-progress-bar", "--stdout-file", "/dev/stdout"]
