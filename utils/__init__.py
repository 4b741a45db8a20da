"""What the notebooks import at run time (the models themselves live in the notebooks).

batches (``stream``, the one batch feeder; ResidentBatches) · checks (one-line input checks:
sizes, channels, ids, pixel ranges, NaN, loaders) · classifier (the MNIST judge) · data
(offline-first loaders) · losses · metrics (Fréchet distance, active units) · parallel
(independent runs side by side on a CPU) · plotting · record (a run against the committed record)
· runtime (setup: device, mode, the settings table, seed, banner, output folders) · stats (the
per-seed comparison) · training (``fit``, the one training loop, and ``make_adam``). Tooling lives
in tools/, benchmarks in bench/.
"""
