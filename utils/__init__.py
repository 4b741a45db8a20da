"""Helpers the notebooks share (the models themselves live in the notebooks).

batches (ResidentBatches) · bootstrap (the notebooks' first cell) · classifier (the MNIST judge) ·
cuda_graph (opt-in CUDA-graph updates) · data (offline-first loaders) · metrics · notebooks (run /
load defs) · plotting · runtime (setup: device, mode, seed, banner) · training (Adam, batches on device)
"""
