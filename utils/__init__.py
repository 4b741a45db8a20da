"""Helpers shared by the notebooks: data, batches, device/run mode, plotting, metrics."""
from .batches import ResidentBatches
from .data import DataNotFoundError, load_cifar10, load_dataset, load_fashion_mnist, load_mnist
from .runtime import autocast, get_device, get_mode, hardware, output_dir, pick, save_json, seed_everything
