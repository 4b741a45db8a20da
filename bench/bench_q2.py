"""Benchmark: the course skeleton's VQ-VAE training loop against Q2_VQVAE.ipynb's loop, same
device, one run.

    python bench/bench_q2.py                           # 1,000 timed updates after 50 warm-up ones
    python bench/bench_q2.py --updates 15000 --warmup 0      # the whole course workload
    FAST=1 python bench/bench_q2.py --updates 5 --warmup 2 --test-limit 256   # smoke (runs/fast/)

*skeleton*: exactly the skeleton's loop -- a torchvision-style CIFAR-10 Dataset (uint8 HWC array,
a PIL image and ``ToTensor()`` + ``Normalize((0.5,)*3, (1,)*3)`` per sample),
``DataLoader(batch_size, shuffle=True, pin_memory=True)`` and ``next(iter(loader))`` every update,
fp32, plain Adam, two ``.item()`` per update, the skeleton's EMA codebook init and constant
learning rate.
*ours_eager*: the notebook's ``train_vqvae`` as the notebook runs it -- data resident on the device
(``ResidentBatches``), no per-update host syncs, fused Adam, with the notebook's "ours" settings
(EMA-sum fix, k-means++ codebook seeding, dead-code restart). *ours_graph* is the same update
replayed as one CUDA graph (``bench/cuda_graph.py``; on a machine without CUDA it runs eagerly and
says so). *ours_channels_last* is ours_eager with the channels_last memory format.

Both use the model classes defined in the notebook (``tools.notebooks.load_definitions``) and the
skeleton's hyperparameters from the notebook's settings table (``tools.notebooks.load_settings``,
full mode: batch_size 256, num_hiddens 128, ...). Prints updates/s, their ratio, and the test
normalised MSE each loop reaches after warm-up + timed updates; writes ``bench_q2.json`` to
``output_dir("results", mode)`` (runs/fast/ with FAST=1).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench import count_arg  # noqa: E402
from tools.notebooks import load_definitions, load_settings  # noqa: E402
from utils.batches import ResidentBatches, stream  # noqa: E402
from utils.data import load_dataset, load_raw  # noqa: E402
from utils.runtime import (env_number, get_device, get_mode, hardware, output_dir,  # noqa: E402
                           rel, save_json)

NOTEBOOK = "Q2_VQVAE.ipynb"
SKELETON_KEYS = ("batch_size", "num_training_updates", "num_hiddens", "num_residual_hiddens",
                 "num_residual_layers", "embedding_dim", "num_embeddings", "commitment_cost",
                 "decay", "learning_rate")            # the skeleton's names: rows of the table


def skeleton_settings():
    """The skeleton's hyperparameters, from the notebook's own settings table (full mode):
    S.batch_size, S.num_hiddens, S.learning_rate, ... (the skeleton's names)."""
    return load_settings(NOTEBOOK, "full")


class SkeletonCIFAR10(torch.utils.data.Dataset):
    """What ``torchvision.datasets.CIFAR10`` does per item: uint8 HWC -> PIL image -> transform."""

    def __init__(self, images_nchw_uint8: torch.Tensor, labels: torch.Tensor, transform):
        # (N, 32, 32, 3) like the pickles
        self.data = images_nchw_uint8.permute(0, 2, 3, 1).contiguous().numpy()
        self.targets = labels.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        from PIL import Image

        return self.transform(Image.fromarray(self.data[index])), self.targets[index]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def skeleton_loop(nb, S, device, train_u8, train_y, data_variance, warmup, updates, batch_size,
                  seed):
    """The skeleton's loop, verbatim apart from names (the baseline this bench times, so not
    ``fit``); hyperparameters ``S`` (the notebook's table); returns (model, timed seconds)."""
    from torchvision import transforms

    torch.manual_seed(seed)
    training_data = SkeletonCIFAR10(train_u8, train_y, transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (1.0, 1.0, 1.0))]))
    training_loader = torch.utils.data.DataLoader(training_data, batch_size=batch_size,
                                                  shuffle=True, pin_memory=device.type == "cuda")
    model = nb.Model(S.num_hiddens, S.num_residual_layers, S.num_residual_hiddens,
                     S.num_embeddings, S.embedding_dim, S.commitment_cost, S.decay).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=S.learning_rate, amsgrad=False)
    model.train()
    train_res_recon_error, train_res_perplexity = [], []
    t0 = time.perf_counter()
    for i in range(warmup + updates):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        (data, _) = next(iter(training_loader))
        data = data.to(device)
        optimizer.zero_grad()
        vq_loss, data_recon, perplexity = model(data)
        recon_error = F.mse_loss(data_recon, data) / data_variance
        loss = recon_error + vq_loss
        loss.backward()
        optimizer.step()
        train_res_recon_error.append(recon_error.item())
        train_res_perplexity.append(perplexity.item())
    sync(device)
    return model.eval(), time.perf_counter() - t0


def ours_settings(nb):
    """The notebook's "ours" row (EMA-sum fix, k-means++ seeding, dead-code restart)."""
    return next(settings for name, settings, _ in nb.ablation_plan(1, 1)
                if name.endswith("= ours"))


def ours_loop(nb, S, device, x_train, data_variance, warmup, updates, batch_size, seed, *,
              cuda_graph, channels_last, restart_every):
    """The notebook's "ours" model, seeded by k-means++; returns (model, timed seconds, step mode).

    Eager: the notebook's own ``train_vqvae``, called for the warm-up updates and then for the timed
    ones (each call builds its Adam afresh: the speed is the same). Graph: the same update written
    out and wrapped in ``CUDAGraphStep`` (Adam from ``graph_adam``); where capture fails it runs
    eagerly and says so."""
    from bench.cuda_graph import CUDAGraphStep, graph_adam

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = x_train.contiguous(memory_format=fmt)
    torch.manual_seed(seed)
    model = nb.build_model(ours_settings(nb), S, restart_every=restart_every)
    model = model.to(device, memory_format=fmt)
    nb.seed_codebook(model, x, min(S.init_images, len(x)), batch_size, S.kmeans_iters, seed)
    loader = ResidentBatches(x, batch_size=batch_size, seed=seed)
    if not cuda_graph:
        if warmup:
            nb.train_vqvae(model, loader, warmup, data_variance, S.learning_rate,
                           desc="ours (warm-up)")
        sync(device)
        hist = nb.train_vqvae(model, loader, updates, data_variance, S.learning_rate, desc="ours")
        return model, hist["seconds"], "eager"
    opt = graph_adam([p for p in model.parameters() if p.requires_grad], S.learning_rate, device)
    batches = stream(loader, device)

    def update(data):                     # train_vqvae's update, without fit's host-side check
        opt.zero_grad(set_to_none=True)
        vq_loss, data_recon, perplexity = model(data)
        recon_error = F.mse_loss(data_recon, data) / data_variance
        (recon_error + vq_loss).backward()
        opt.step()
        return torch.stack([recon_error.detach(), perplexity.detach()])

    step = CUDAGraphStep(update)
    model.train()
    for i in range(warmup + updates):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        step(next(batches)[0])
    sync(device)
    return model.eval(), time.perf_counter() - t0, step.mode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--updates", type=count_arg(1), default=1000, help="timed updates per loop (default 1000)")
    add("--warmup", type=count_arg(0), default=50,
        help="untimed updates before timing (default 50)")
    add("--batch-size", type=count_arg(1), default=None,
        help="default: the skeleton's batch_size (the notebook's settings table)")
    add("--variants", default="ours_eager,ours_graph",
        help="comma list of: ours_eager, ours_graph, ours_channels_last (default: the first two)")
    add("--test-limit", type=count_arg(1), default=None,
        help="test images for the NMSE (default: all)")
    add("--train-limit", type=count_arg(1), default=None,
        help="training images (default: all 50,000)")
    add("--restart-every", type=count_arg(0), default=100,
        help="dead-code restart period of ours (0: off)")
    add("--seed", type=int, default=0)
    add("--device", default=None, help="default: cuda if available, else cpu")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    known = ("ours_eager", "ours_graph", "ours_channels_last")
    unknown = set(variants) - set(known)
    if unknown or not variants:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(known)}")
    S = skeleton_settings()
    batch_size = args.batch_size or S.batch_size
    if args.train_limit is not None and args.train_limit < batch_size:
        parser.error(f"--train-limit {args.train_limit} is smaller than one batch "
                     f"(--batch-size {batch_size})")

    device = get_device(args.device)
    mode = get_mode(device)
    out_path = output_dir("results", mode) / "bench_q2.json"   # writable now, not after the loops
    threads = env_number("CPU_THREADS", int, low=1)            # checked like the notebooks' setup()
    if device.type == "cpu" and threads:
        torch.set_num_threads(threads)
    nb = load_definitions(NOTEBOOK)
    print(hardware(), "|", device, "| mode", mode, "| threads", torch.get_num_threads())

    raw = load_raw("cifar10")
    train_u8, train_y = raw["train_x"], raw["train_y"]
    if args.train_limit is not None and args.train_limit < len(train_u8):
        order = torch.randperm(len(train_u8), generator=torch.Generator().manual_seed(0))
        keep = order[:args.train_limit].sort().values
        train_u8, train_y = train_u8[keep], train_y[keep]
    x_train = (train_u8.to(device).float() / 255.0) - 0.5
    data_variance = float(np.var(train_u8.numpy() / 255.0))          # the skeleton's formula
    x_test, _ = load_dataset("cifar10", "test", device=device, limit=args.test_limit)
    x_test = x_test - 0.5

    out = {"device": hardware(), "mode": mode, "updates": args.updates, "warmup": args.warmup,
           "batch_size": batch_size, "train_images": len(train_u8), "test_images": len(x_test),
           "skeleton_settings": {k: S[k] for k in SKELETON_KEYS}}

    model, secs = skeleton_loop(nb, S, device, train_u8, train_y, data_variance, args.warmup,
                                args.updates, batch_size, args.seed)
    ev = nb.evaluate_vqvae(model, x_test, data_variance)
    out["skeleton_updates_per_s"] = args.updates / secs
    out["skeleton_test_nmse"] = ev["test_nmse"]
    out["skeleton_test_perplexity"] = ev["test_perplexity"]
    print(f"skeleton: {out['skeleton_updates_per_s']:.2f} updates/s "
          f"({15000 / out['skeleton_updates_per_s']:.0f} s per 15,000), "
          f"test NMSE {ev['test_nmse']:.4f} after {args.warmup + args.updates} updates")
    del model

    out["variants"] = {}
    for name in variants:
        model, secs, step_mode = ours_loop(nb, S, device, x_train, data_variance, args.warmup,
                                           args.updates, batch_size, args.seed,
                                           cuda_graph=name == "ours_graph",
                                           channels_last=name == "ours_channels_last",
                                           restart_every=args.restart_every)
        fmt = torch.channels_last if name == "ours_channels_last" else torch.contiguous_format
        ev = nb.evaluate_vqvae(model, x_test.contiguous(memory_format=fmt), data_variance)
        ups = args.updates / secs
        speedup = ups / out["skeleton_updates_per_s"]
        out["variants"][name] = {"updates_per_s": ups, "speedup": speedup,
                                 "test_nmse": ev["test_nmse"],
                                 "test_perplexity": ev["test_perplexity"],
                                 "code_usage": ev["code_usage"], "step_mode": step_mode,
                                 "seconds_per_15000": 15000 / ups}
        print(f"{name}: {ups:.2f} updates/s ({15000 / ups:.0f} s per 15,000), "
              f"speedup x{speedup:.2f}, test NMSE {ev['test_nmse']:.4f} "
              f"after {args.warmup + args.updates} updates ({step_mode})")
        del model
    main_name = "ours_eager" if "ours_eager" in out["variants"] else variants[0]
    out["ours_variant"] = main_name
    out["ours_updates_per_s"] = out["variants"][main_name]["updates_per_s"]
    out["speedup"] = out["ours_updates_per_s"] / out["skeleton_updates_per_s"]
    out["ours_test_nmse"] = out["variants"][main_name]["test_nmse"]
    path = save_json(out, out_path)
    print(f"speedup ({main_name} / skeleton): x{out['speedup']:.2f}; test NMSE skeleton "
          f"{out['skeleton_test_nmse']:.4f} vs ours {out['ours_test_nmse']:.4f} -> {rel(path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
