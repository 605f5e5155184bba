"""Recursive forecasting: the feedback loop, its errors, the plot, and an LSTM on the sine."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.data.tasks import noisy_sine
from bptt.train.estimators import SequenceRegressor
from bptt.train.forecast import forecast, forecast_series, one_step_predictions, plot_forecast

W = 2 * np.pi / 50


class SineRecurrence:
    """An exact 'model' of a pure sine: x_{t+1} = 2 cos(w) x_t - x_{t-1}. Predicts (N,)."""

    def predict(self, X):
        return 2 * np.cos(W) * X[:, -1, 0] - X[:, -2, 0]


class LastValue:
    def predict(self, X):
        return X[:, -1]  # (N, D)


def test_feedback_reproduces_an_exact_recurrence():
    s = np.sin(W * np.arange(300))
    pred = forecast(SineRecurrence(), s[:10], steps=290)
    assert pred.shape == (290, 1)
    np.testing.assert_allclose(pred[:, 0], s[10:], atol=1e-9)
    np.testing.assert_allclose(forecast_series(SineRecurrence(), s, 100, 20, window=5)[:, 0],
                               s[100:120], atol=1e-10)


def test_forecast_uses_only_its_own_predictions_and_batches():
    s = np.stack([np.arange(20.0), -np.arange(20.0)], axis=1)
    pred = forecast(LastValue(), s[:5], steps=4)
    np.testing.assert_array_equal(pred, np.tile(s[4], (4, 1)))  # frozen at the last observed
    batch = forecast(LastValue(), np.stack([s[:5], s[5:10]]), steps=3)
    assert batch.shape == (2, 3, 2)
    np.testing.assert_array_equal(batch[1], np.tile(s[9], (3, 1)))
    assert forecast(LastValue(), s[:5], steps=0).shape == (0, 2)


def test_forecast_errors():
    with pytest.raises(ValueError, match="predict every input column"):
        forecast(SineRecurrence(), np.zeros((5, 2)), steps=2)
    with pytest.raises(ValueError, match="start must lie"):
        forecast_series(LastValue(), np.zeros(10), start=3, steps=2, window=5)
    with pytest.raises(ValueError, match="steps"):
        forecast(LastValue(), np.zeros(4), steps=-1)


def test_one_step_predictions_are_teacher_forced():
    s = np.sin(W * np.arange(100))
    y = one_step_predictions(SineRecurrence(), s, start=40, stop=60, window=3)
    np.testing.assert_allclose(y[:, 0], s[40:60], atol=1e-12)


def test_plot_forecast_writes_a_png(tmp_path):
    s = np.sin(W * np.arange(120))
    path = plot_forecast(s, s[60:] + 0.1, start=60, path=tmp_path / "sub" / "f.png", window=25,
                         one_step=s[60:])
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_lstm_forecasts_the_sine_for_a_quarter_period():
    """Trained on next-step prediction, the LSTM's closed-loop forecast of the test part stays
    close to the clean sine for 25 steps (a quarter period): far better than holding the last
    observed value (measured 0.010 vs 0.46)."""
    task = noisy_sine(seed=0)
    model = SequenceRegressor("lstm", hidden_size=32, lr=0.01, seed=0)
    model.fit(*task.train, epochs=10, batch_size=32)
    start = task.info["bounds"][1]
    pred = forecast_series(model, task.series, start, 25, window=25)[:, 0]
    clean = np.sin(2 * np.pi * np.arange(start, start + 25) / 100)
    hold = np.mean((task.series[start - 1, 0] - clean) ** 2)
    assert np.mean((pred - clean) ** 2) < 0.05 * hold
