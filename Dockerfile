# syntax=docker/dockerfile:1.7
# The project's image, in stages as in the origin project:
#   base          Python 3.11 slim with the system libraries audio needs (libsndfile, ffmpeg)
#   awscli        base + the AWS command line, for DVC remotes on S3
#   dl_pipelines  the package with its training extras, the notebooks, and data/models pulled with DVC
#
# Build (AWS files are BuildKit secrets: mounted for one RUN, never written into a layer):
#   DOCKER_BUILDKIT=1 docker build -t genre-classification \
#     --secret id=aws_config,src=$HOME/.aws/config --secret id=aws_credentials,src=$HOME/.aws/credentials .
# Run:
#   docker run --rm genre-classification                                   # pipeline --help
#   docker run --rm -v $PWD/runs:/app/runs genre-classification papermill nbs/03_train.ipynb runs/03_train.ipynb -p model resnet18
#   docker run --rm -v ~/Music:/music genre-classification predictors /music
#   docker run --rm --shm-size=1g -v ~/Music:/music genre-classification pipeline batch-predict /music --output /music/genres   # Ray; also a node image
#   docker run --rm -p 5001:5001 genre-classification pipeline serve --host 0.0.0.0       # HTTP: POST /invocations (MLflow)
#   docker run --rm -p 7860:7860 genre-classification pipeline app --host 0.0.0.0         # the web demo
# (serve and predictors make the real-music model on first start when the image holds none: the musicnn weights come
# from PyPI then; mount a models/ and mlruns/ from `make train` to skip that.) MLflow's own image of the registered
# model: `mlflow models build-docker -m models:/genre-classifier/latest -n genre-classifier`.

FROM python:3.11-slim AS base
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsndfile1 ffmpeg git make \
 && rm -rf /var/lib/apt/lists/*
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

FROM base AS awscli
RUN pip install "awscli>=1.33"

FROM awscli AS dl_pipelines
# Metadata and package first, so that editing a notebook does not re-install the dependencies.
COPY settings.ini setup.py README.md ./
COPY genre_classification ./genre_classification
# CPU wheels of torch (the image has no GPU runtime); everything else from PyPI.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu ".[train,dvc,app,batch]"
COPY nbs ./nbs
COPY .dvc ./.dvc
# dvc.lock names the data and checkpoints of your last `dvc repro`; it is optional: the pattern dvc.loc[k] may match
# nothing (Docker needs only some source of a COPY to exist).
COPY .dvcignore dvc.yaml params.yaml dvc.loc[k] ./
# Data and checkpoints from the DVC remote when the pipeline has outputs tracked (dvc.lock); the AWS files exist only
# for this step.
RUN --mount=type=secret,id=aws_config,target=/root/.aws/config \
    --mount=type=secret,id=aws_credentials,target=/root/.aws/credentials \
    if [ -f dvc.lock ]; then dvc pull --no-run-cache; fi
RUN useradd --create-home --uid 1000 app && mkdir -p data runs models checkpoints mlruns && chown -R app /app
USER app
EXPOSE 5001 7860
CMD ["pipeline", "--help"]
