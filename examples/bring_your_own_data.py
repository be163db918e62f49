"""Bring your own data: any NumPy arrays (samples, features) with integer labels 0..K-1.

Here: three interleaved spirals in the plane, a problem no straight line separates.
"""

import os

import numpy as np

import xpnet

QUICK = bool(os.environ.get("XPNET_EXAMPLE_QUICK"))  # XPNET_EXAMPLE_QUICK=1: a smoke test


def spirals(n_per_class: int, n_classes: int = 3, seed: int = 0):
    """Points on ``n_classes`` noisy spiral arms; the label is the arm."""
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.05, 1.0, n_per_class), n_classes)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    angle = 4 * np.pi * radius + labels * 2 * np.pi / n_classes + rng.normal(0, 0.3, radius.size)
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return points.astype(np.float32), labels.astype(np.int64)


x, y = spirals(n_per_class=500)
order = np.random.default_rng(1).permutation(len(y))  # shuffle inputs and labels together
x, y = x[order], y[order]
x_train, y_train, x_test, y_test = x[:1200], y[:1200], x[1200:], y[1200:]

model = xpnet.Model(hidden=[64, 64], lr=0.01, epochs=20 if QUICK else 100, batch_size=16, seed=0, device="cpu")
model.fit(x_train, y_train)
print(f"test accuracy {100 * model.evaluate(x_test, y_test)['accuracy']:.2f}% on {len(y_test)} held-out points")

new_points = np.array([[0.0, 0.0], [0.5, -0.5], [-0.8, 0.3]], dtype=np.float32)
probabilities = model.predict_proba(new_points)
for point, label, p in zip(new_points, model.predict(new_points), probabilities):
    print(f"point {point} -> arm {label} (probability {p[label]:.2f})")
