"""The engine's hot ops: `kernels.ops` dispatches each to its Triton kernel (`kernels.triton`) or to its plain-torch
reference (`kernels.reference`, the CPU path and the test oracle). Importing this package imports neither triton
nor torch."""
