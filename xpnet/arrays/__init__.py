"""Array libraries and devices: choosing a backend, host copies, random streams drawn on the device,
TF32 matrix multiplies and the memory a device has free. Everything else stands on this."""
