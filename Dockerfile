# nnflow on a CUDA PyTorch base image.
#   docker build -t nnflow .
#   docker run --gpus all -v $PWD/outputs:/work/outputs -v $PWD/data:/work/data \
#       nnflow experiment=quintic_mlp trainer=gpu
# The entry point is nnflow-train; the other console scripts are on PATH too
# (docker run --entrypoint nnflow-measure nnflow ...).
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    WANDB_MODE=offline \
    WANDB_DIR=/work/outputs \
    NNFLOW_DATA=/work/data

RUN useradd --create-home --uid 1000 nnflow
WORKDIR /opt/nnflow

# Dependencies first (cached layer): the base image's torch satisfies torch>=2.4,<2.14 and is
# kept; docker/constraints.txt pins the rest to versions tested together.
COPY pyproject.toml README.md docker/constraints.txt ./
COPY nnflow ./nnflow
COPY conf ./conf
RUN pip install -c constraints.txt -e . && nnflow-train --help > /dev/null

USER nnflow
WORKDIR /work
ENTRYPOINT ["nnflow-train"]
CMD ["--help"]
