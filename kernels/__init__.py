"""GPU kernels for the engine's hot ops, each with a plain-torch reference in `kernels.reference`."""
