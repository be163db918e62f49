"""The math of a network, written once against the array API: activations, losses, initializers,
layers with hand-written backward passes, the network, and gradient checking. It knows nothing of
training loops, files, datasets or the command line."""
