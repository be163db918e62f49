"""Train and evaluate from Python: a 64-128-10 network on the embedded digits, saved and reloaded."""

import os
import tempfile

import xpnet

epochs = 3 if os.environ.get("XPNET_EXAMPLE_QUICK") else 30  # XPNET_EXAMPLE_QUICK=1: a smoke test
x_train, y_train, x_test, y_test = xpnet.load_digits()
model = xpnet.Model(hidden=[128], optimizer="adam", lr=1e-3, epochs=epochs, device="auto")
model.fit(x_train, y_train, validation_data=(x_test, y_test))
print(f"test accuracy {100 * model.evaluate(x_test, y_test)['accuracy']:.2f}% after {epochs} epochs")

with tempfile.TemporaryDirectory() as folder:
    model.save(f"{folder}/digits.npz")
    same = xpnet.load(f"{folder}/digits.npz", device="cpu")
    print("reloaded model agrees:", bool((same.predict(x_test) == model.predict(x_test)).all()))
