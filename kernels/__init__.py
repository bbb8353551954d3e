"""The engine's hot ops: `kernels.ops` dispatches each to its Triton kernel (`kernels.triton`, CUDA), its C++ CPU
kernel (`kernels.cpu`, compiled on first use), or its plain-torch reference (`kernels.reference`, the test oracle
and the fallback). Importing this package imports neither triton nor torch."""
