import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from utils.plotting import image_grid, plot_curves, show_images, smooth


def test_grid_layout_and_range():
    grid = image_grid(torch.zeros(20, 1, 28, 28) - 0.5, nrow=10, value_range=(-0.5, 0.5))
    assert grid.shape == (2 * 30 + 2, 10 * 30 + 2, 3)
    assert grid.min() == 0.0 and grid.max() == 1.0  # images at 0 after rescaling, padding white


def test_show_images_saves(tmp_path):
    fig = show_images(torch.rand(10, 3, 32, 32), nrow=5, title="t", save=tmp_path / "g.png",
                      row_labels=["a", "b"])
    assert (tmp_path / "g.png").stat().st_size > 0
    plt.close(fig)


@pytest.mark.parametrize("shape", [(4, 784), (4, 2, 8, 8), (8,)])
def test_bad_image_shape(shape):
    with pytest.raises(ValueError, match="images must be"):
        image_grid(torch.zeros(shape))


def test_curves_and_smoothing(tmp_path):
    assert np.allclose(smooth([1, 2, 3, 4], 2), [1.5, 2.5, 3.5])
    fig = plot_curves({"a": [3, 2, 1], "b": ([10, 20, 30], [1, 2, 3])}, logy=True, window=2, save=tmp_path / "c.png")
    assert len(fig.axes[0].lines) == 2 and (tmp_path / "c.png").exists()
    plt.close(fig)
