import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from utils.plotting import (image_grid, moving_average, plot_curves, save_figure, savgol_smooth,
                            show_images)


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
    assert np.allclose(moving_average([1, 2, 3, 4], 3), [1.5, 2, 3, 3.5])
    fig = plot_curves({"a": [3, 2, 1], "b": ([10, 20, 30], [1, 2, 3])}, logy=True, window=2,
                      save=tmp_path / "c.png")
    assert len(fig.axes[0].lines) == 2 and (tmp_path / "c.png").exists()
    plt.close(fig)


def test_smoothing_keeps_curves_possible():
    """The skeleton's savgol_filter(x, 201, 7) overshoots at a jump (a perplexity below 1); the
    moving average stays within the values' range; savgol_smooth equals SciPy's filter where SciPy
    is well conditioned, and a direct polynomial fit where it is not."""
    from scipy.signal import savgol_filter

    noise = np.random.default_rng(0).normal(0, 3, 1200)
    y = np.concatenate([np.ones(600), np.full(600, 400.0)]) + noise
    assert savgol_smooth(y).min() < 1                       # the overshoot the figure avoids
    m = moving_average(y)
    assert y.min() <= m.min() and m.max() <= y.max() and len(m) == len(y)
    np.testing.assert_allclose(savgol_smooth(y, 11, 3), savgol_filter(y, 11, 3),
                               rtol=1e-9, atol=1e-9)
    assert (10 ** savgol_smooth(np.log10(np.abs(y) + 1e-3)) > 0).all()


def test_savgol_at_the_skeletons_window_is_the_least_squares_polynomial():
    """Window 201, order 7: savgol_smooth equals numpy's polynomial fit at the window's centre (why
    it replaces scipy.signal.savgol_filter, whose fit on raw positions loses the interior)."""
    y = np.cumsum(np.random.default_rng(0).normal(size=1000))
    t = np.arange(-100, 101) / 100
    for i in (300, 500, 700):
        centre = np.polyval(np.polyfit(t, y[i - 100:i + 101], 7), 0.0)
        assert abs(savgol_smooth(y)[i] - centre) < 1e-8 * max(1.0, abs(centre))


def test_save_figure_writes_the_png_at_its_dpi_and_shows(tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(1))
    fig, ax = plt.subplots(figsize=(2, 1))
    save_figure(fig, tmp_path / "sub" / "f.png", dpi=50)
    assert (tmp_path / "sub" / "f.png").is_file() and shown == [1]
    plt.close(fig)
