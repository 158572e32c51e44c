#!/usr/bin/env bash
# Python packages for the PyTorch side of benchmarks, fixtures and the interop suite.
# torch 2.13.0 is the CPU build available locally on these machines (other versions pull CUDA wheels).
set -euo pipefail
if python3 -c "import torch, transformers, safetensors, pytest, tensorboard, zmq, yaml" 2>/dev/null; then exit 0; fi
python3 -m pip install -q torch==2.13.0 transformers safetensors pytest tensorboard pyzmq pyyaml
