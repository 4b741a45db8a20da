"""What the notebooks import at run time (the models themselves live in the notebooks).

batches (ResidentBatches) · checks (one-line input checks: sizes, channels, ids, pixel ranges, NaN, loaders) ·
classifier (the MNIST judge) · data (offline-first loaders) · metrics (Fréchet
distance, active units) · parallel (independent runs side by side on a CPU) · plotting · runtime (setup: device,
mode, budgets, seed, banner, output folders) · training (the one Adam constructor and the non-finite-loss check).
Tooling lives in tools/, benchmarks in bench/.
"""
