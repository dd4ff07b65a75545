# erasure: the default command runs the offline proof of concept.
#   docker build -t erasure .
#   docker run --rm -v "$PWD/results:/app/results" erasure
#   docker run --rm erasure python main.py configs/examples/mnist_cnn_class.jsonc   # needs network for the data
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MPLBACKEND=Agg \
    WANDB_SILENT=true \
    ERASURE_CACHE_DIR=/app/.cache/models

WORKDIR /app
COPY requirements.txt pyproject.toml main.py README.md ./
COPY erasure ./erasure
RUN pip install -r requirements.txt
COPY configs ./configs

CMD ["python", "main.py", "configs/proof_of_concept.jsonc", "--no-progress"]
