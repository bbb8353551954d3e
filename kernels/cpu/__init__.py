"""C++ kernels for the CPU path, compiled on first use (build.py); each has its twin in `kernels.reference`."""
